// The key/value cache of an exported decoder on the ONNX Runtime side: past_key_i / past_value_i fed to a step,
// present_key_i / present_value_i taken back, rows reordered for beam search. Shared by the generator and the translator.
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Transformers.ML.Core.Onnx;

internal sealed class OnnxKeyValueCache
{
    /// <summary>The names of the cache inputs and outputs of every exported decoder (one place, for the exporters and the runners).</summary>
    public static string PastKey(int layer) => $"past_key_{layer}";

    /// <summary>Input of layer <paramref name="layer"/>'s past values.</summary>
    public static string PastValue(int layer) => $"past_value_{layer}";

    /// <summary>Output of layer <paramref name="layer"/>'s keys, past and new.</summary>
    public static string PresentKey(int layer) => $"present_key_{layer}";

    /// <summary>Output of layer <paramref name="layer"/>'s values, past and new.</summary>
    public static string PresentValue(int layer) => $"present_value_{layer}";

    private readonly TransformerConfig _config;
    private readonly int _rows;
    private DenseTensor<float>[] _tensors;

    /// <summary>An empty cache (past length 0) for <paramref name="rows"/> sequences.</summary>
    public OnnxKeyValueCache(TransformerConfig config, int rows)
    {
        _config = config;
        _rows = rows;
        _tensors = new DenseTensor<float>[config.NumLayers * 2];
        for (int l = 0; l < config.NumLayers; l++)
        {
            _tensors[2 * l] = new DenseTensor<float>(new[] { rows, config.NumHeads, 0, config.HeadKeyDimension });
            _tensors[2 * l + 1] = new DenseTensor<float>(new[] { rows, config.NumHeads, 0, config.HeadValueDimension });
        }
    }

    /// <summary>Positions held.</summary>
    public int Length => _tensors[0].Dimensions[2];

    /// <summary>Adds the past_key_i / past_value_i inputs.</summary>
    public void AddInputs(List<NamedOnnxValue> feeds)
    {
        for (int l = 0; l < _config.NumLayers; l++)
        {
            feeds.Add(NamedOnnxValue.CreateFromTensor(PastKey(l), _tensors[2 * l]));
            feeds.Add(NamedOnnxValue.CreateFromTensor(PastValue(l), _tensors[2 * l + 1]));
        }
    }

    /// <summary>Takes the present_key_i / present_value_i outputs of a step (copied: the results are freed after the step).</summary>
    public void Update(IReadOnlyDictionary<string, DisposableNamedOnnxValue> outputs)
    {
        for (int l = 0; l < _config.NumLayers; l++)
        {
            _tensors[2 * l] = outputs[PresentKey(l)].AsTensor<float>().ToDenseTensor();
            _tensors[2 * l + 1] = outputs[PresentValue(l)].AsTensor<float>().ToDenseTensor();
        }
    }

    /// <summary>Row r becomes the old row <paramref name="rows"/>[r].</summary>
    public void Reorder(int[] rows)
    {
        for (int i = 0; i < _tensors.Length; i++)
        {
            _tensors[i] = Rows(_tensors[i], rows);
        }
    }

    /// <summary>A new tensor whose row i (first axis) is row <paramref name="rows"/>[i] of <paramref name="source"/>.</summary>
    internal static DenseTensor<T> Rows<T>(Tensor<T> source, int[] rows)
    {
        int[] dimensions = source.Dimensions.ToArray();
        int rowSize = dimensions.Skip(1).Aggregate(1, (a, b) => a * b);
        dimensions[0] = rows.Length;
        var result = new DenseTensor<T>(dimensions);
        T[] from = source.ToArray();
        Span<T> to = result.Buffer.Span;
        for (int i = 0; i < rows.Length; i++)
        {
            from.AsSpan(rows[i] * rowSize, rowSize).CopyTo(to.Slice(i * rowSize, rowSize));
        }
        return result;
    }

    /// <summary>The last position's scores of each row of a (rows, T, V) output, without copying the whole output.</summary>
    public static float[][] LastPosition(Tensor<float> scores)
    {
        int rows = scores.Dimensions[0], length = scores.Dimensions[1], vocabulary = scores.Dimensions[2];
        ReadOnlySpan<float> flat = scores is DenseTensor<float> dense ? dense.Buffer.Span : scores.ToArray();
        var result = new float[rows][];
        for (int r = 0; r < rows; r++)
        {
            result[r] = flat.Slice((r * length + length - 1) * vocabulary, vocabulary).ToArray();
        }
        return result;
    }
}

// The key/value cache of an exported decoder on the ONNX Runtime side: past_key_i / past_value_i fed to a step,
// present_key_i / present_value_i taken back, rows reordered for beam search. Shared by the generator and the translator.
// The values stay ONNX Runtime's own OrtValues: a step's presents are the next step's pasts as they are, without being
// copied into managed tensors and back (the copies made ONNX Runtime slower than TorchSharp at long generations).
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Transformers.ML.Core.Onnx;

internal sealed class OnnxKeyValueCache : IDisposable
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
    private readonly OrtValue[] _values; // per layer: key, value
    private readonly string[] _pastNames;
    private readonly string[] _presentNames;

    /// <summary>An empty cache (past length 0) for <paramref name="rows"/> sequences.</summary>
    public OnnxKeyValueCache(TransformerConfig config, int rows)
    {
        _config = config;
        _values = new OrtValue[config.NumLayers * 2];
        _pastNames = new string[_values.Length];
        _presentNames = new string[_values.Length];
        for (int l = 0; l < config.NumLayers; l++)
        {
            _values[2 * l] = Empty(rows, config.NumHeads, config.HeadKeyDimension);
            _values[2 * l + 1] = Empty(rows, config.NumHeads, config.HeadValueDimension);
            (_pastNames[2 * l], _pastNames[2 * l + 1]) = (PastKey(l), PastValue(l));
            (_presentNames[2 * l], _presentNames[2 * l + 1]) = (PresentKey(l), PresentValue(l));
        }
        Length = 0;
    }

    /// <summary>Positions held.</summary>
    public int Length { get; private set; }

    /// <summary>The present_key_i / present_value_i output names, in the order <see cref="Update"/> takes them.</summary>
    public IReadOnlyList<string> PresentNames => _presentNames;

    /// <summary>Adds the past_key_i / past_value_i inputs (the cache keeps owning them).</summary>
    public void AddInputs(List<string> names, List<OrtValue> values)
    {
        names.AddRange(_pastNames);
        values.AddRange(_values);
    }

    /// <summary>
    /// Takes the presents of a step as the new pasts: <paramref name="outputs"/>[first + i] is the output named
    /// <see cref="PresentNames"/>[i]; the cache owns (and frees) them from now on, and frees the old pasts.
    /// </summary>
    public void Update(IReadOnlyList<OrtValue> outputs, int first)
    {
        for (int i = 0; i < _values.Length; i++)
        {
            _values[i].Dispose();
            _values[i] = outputs[first + i];
        }
        Length = (int)_values[0].GetTensorTypeAndShape().Shape[2];
    }

    private static readonly RunOptions StepOptions = new();

    /// <summary>
    /// One decoder step: <paramref name="names"/> / <paramref name="values"/> (the step's own inputs) and the pasts in; the
    /// last position's <paramref name="scoresOutput"/> (rows, V) out, the presents kept as the next pasts.
    /// </summary>
    public float[][] Step(InferenceSession session, List<string> names, List<OrtValue> values, string scoresOutput)
    {
        AddInputs(names, values);
        var outputNames = new List<string>(_presentNames.Length + 1) { scoresOutput };
        outputNames.AddRange(_presentNames);
        IDisposableReadOnlyCollection<OrtValue> outputs = session.Run(StepOptions, names, values, outputNames);
        using OrtValue scores = outputs[0];
        float[][] last = LastPosition(scores);
        Update(outputs, first: 1); // the cache owns the presents now
        return last;
    }

    /// <summary>Row r becomes the old row <paramref name="rows"/>[r] (a copy; beam search).</summary>
    public void Reorder(int[] rows)
    {
        for (int i = 0; i < _values.Length; i++)
        {
            OrtValue old = _values[i];
            _values[i] = Rows(old, rows);
            old.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (OrtValue value in _values)
        {
            value.Dispose();
        }
    }

    /// <summary>A (rows, heads, 0, size) float tensor: the past of a first step.</summary>
    private static OrtValue Empty(int rows, int heads, int size) =>
        OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, new long[] { rows, heads, 0, size });

    /// <summary>A new float tensor whose row i (first axis) is row <paramref name="rows"/>[i] of <paramref name="source"/>.</summary>
    internal static OrtValue Rows(OrtValue source, int[] rows)
    {
        long[] shape = source.GetTensorTypeAndShape().Shape;
        int rowSize = (int)shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        ReadOnlySpan<float> from = source.GetTensorDataAsSpan<float>();
        var to = new float[rows.Length * rowSize];
        for (int i = 0; i < rows.Length; i++)
        {
            from.Slice(rows[i] * rowSize, rowSize).CopyTo(to.AsSpan(i * rowSize, rowSize));
        }
        shape[0] = rows.Length;
        return OrtValue.CreateTensorValueFromMemory(to, shape);
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
    public static float[][] LastPosition(OrtValue scores)
    {
        long[] shape = scores.GetTensorTypeAndShape().Shape;
        int rows = (int)shape[0], length = (int)shape[1], vocabulary = (int)shape[2];
        ReadOnlySpan<float> flat = scores.GetTensorDataAsSpan<float>();
        var result = new float[rows][];
        for (int r = 0; r < rows; r++)
        {
            result[r] = flat.Slice((r * length + length - 1) * vocabulary, vocabulary).ToArray();
        }
        return result;
    }
}

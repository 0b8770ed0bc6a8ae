// The key/value cache of a decoder exported with OnnxExportOptions.SharedCacheBuffers, on the ONNX Runtime side: one
// buffer per layer and kind, (rows, heads, capacity, head size), bound through IOBinding as both past_key_i and
// present_key_i, so that ONNX Runtime's GroupQueryAttention writes each step's keys and values in place and nothing is
// copied from step to step. Shared by the generator (GPT) and the translator (its decoder); the concatenating graphs
// use OnnxKeyValueCache instead.
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Transformers.ML.Core.Onnx;

internal sealed class OnnxSharedCache : IDisposable
{
    /// <summary>The metadata key of an exported decoder's cache layout.</summary>
    public const string MetadataKey = "cache";

    /// <summary>The <see cref="MetadataKey"/> value of a graph exported with shared buffers.</summary>
    public const string SharedBuffers = "shared-buffers";

    /// <summary>The <see cref="MetadataKey"/> value of a graph that concatenates pasts and new keys into new presents.</summary>
    public const string Concatenated = "concatenated";

    /// <summary>Input of a shared-buffer graph: (batch, past + new) int64 ones, from which positions and lengths follow.</summary>
    public const string AttentionMask = "attention_mask";

    private static readonly RunOptions StepOptions = new();
    private readonly InferenceSession _session;
    private readonly OrtValue[] _buffers; // per layer: keys, values
    private readonly OrtIoBinding _binding; // the buffers bound once as past and present; each step rebinds its own inputs
    private readonly long[] _ones; // rows x capacity ones: the attention mask is a prefix of it
    private float[] _reorderScratch = Array.Empty<float>();

    /// <summary>Whether <paramref name="metadata"/> (an exported decoder's) says it was exported with shared buffers.</summary>
    public static bool IsShared(IReadOnlyDictionary<string, string> metadata) =>
        metadata.TryGetValue(MetadataKey, out string? layout) && layout == SharedBuffers;

    /// <summary>Empty buffers for <paramref name="rows"/> sequences of up to <paramref name="capacity"/> positions, bound to <paramref name="session"/>.</summary>
    public OnnxSharedCache(InferenceSession session, TransformerConfig config, int rows, int capacity)
    {
        if (rows < 1 || capacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), $"A shared cache needs at least one row and one position; found {rows} rows and {capacity} positions.");
        }
        _session = session;
        Rows = rows;
        Capacity = capacity;
        _buffers = new OrtValue[2 * config.NumLayers];
        _binding = session.CreateIoBinding();
        try
        {
            for (int i = 0; i < _buffers.Length; i++)
            {
                bool key = i % 2 == 0;
                _buffers[i] = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float,
                    new long[] { rows, config.NumHeads, capacity, key ? config.HeadKeyDimension : config.HeadValueDimension });
                int layer = i / 2;
                _binding.BindInput(key ? OnnxKeyValueCache.PastKey(layer) : OnnxKeyValueCache.PastValue(layer), _buffers[i]);
                _binding.BindOutput(key ? OnnxKeyValueCache.PresentKey(layer) : OnnxKeyValueCache.PresentValue(layer), _buffers[i]);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        _ones = new long[rows * capacity];
        Array.Fill(_ones, 1L);
    }

    /// <summary>Sequences held.</summary>
    public int Rows { get; }

    /// <summary>Most positions each buffer holds.</summary>
    public int Capacity { get; }

    /// <summary>Positions held.</summary>
    public int Length { get; private set; }

    /// <summary>Binds an input that stays the same for every step (the caller keeps owning it, and keeps it alive).</summary>
    public void BindFixed(string name, OrtValue value) => _binding.BindInput(name, value);

    /// <summary>
    /// One decoder step: <paramref name="ids"/> (rows x <paramref name="length"/>, row-major) as <paramref name="idsName"/>,
    /// the attention mask of the past and new positions, the buffers; the last position's <paramref name="scoresOutput"/>
    /// (rows, V) out. ONNX Runtime has written the new keys and values into the buffers after the past ones.
    /// </summary>
    public float[][] Step(string idsName, long[] ids, int length, string scoresOutput) =>
        Step(idsName, ids, length, scoresOutput, OnnxKeyValueCache.LastPosition);

    /// <summary>
    /// A step as <see cref="Step(string, long[], int, string)"/>, whose scores (rows, length, V) <paramref name="read"/>
    /// reads before they are freed. <paramref name="attentionMask"/> (rows x (Length + length), 1 at tokens, 0 at padding)
    /// replaces the mask of ones: a right-padded batch, whose rows GroupQueryAttention fills to lengths of their own.
    /// </summary>
    public T Step<T>(string idsName, long[] ids, int length, string scoresOutput, Func<OrtValue, T> read, long[]? attentionMask = null)
    {
        int total = Length + length;
        if (total > Capacity)
        {
            throw new InvalidOperationException($"A step of {length} tokens after {Length} cached ones exceeds the cache's {Capacity} positions.");
        }
        if (attentionMask is not null && attentionMask.Length != Rows * total)
        {
            throw new ArgumentException($"Expected an attention mask of {Rows} x {total}; found {attentionMask.Length} values.", nameof(attentionMask));
        }
        using OrtValue input = OrtValue.CreateTensorValueFromMemory(ids, new long[] { Rows, length });
        using OrtValue mask = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            attentionMask is null ? new Memory<long>(_ones, 0, Rows * total) : attentionMask, new long[] { Rows, total });
        _binding.BindInput(idsName, input);
        _binding.BindInput(AttentionMask, mask);
        // Rebound at every step: bound once, the greedy text no longer equals TorchSharp's (OnnxExportTests).
        _binding.BindOutputToDevice(scoresOutput, OrtMemoryInfo.DefaultInstance);
        _session.RunWithBinding(StepOptions, _binding);
        using IDisposableReadOnlyCollection<OrtValue> outputs = _binding.GetOutputValues();
        T scores = read(outputs[outputs.Count - 1]); // bound last: the scores
        Length = total;
        return scores;
    }

    /// <summary>Forgets the positions held (the buffers are reused; the next step starts at position 0).</summary>
    public void Reset() => Length = 0;

    /// <summary>
    /// Row r becomes the old row <paramref name="rows"/>[r] (beam search), in place: only the rows that change are written,
    /// only the rows they read are saved first, and only the <see cref="Length"/> filled positions of each.
    /// </summary>
    public void Reorder(int[] rows)
    {
        if (rows.Length != Rows || rows.Any(r => r < 0 || r >= Rows))
        {
            throw new ArgumentException($"A reorder of the shared cache needs {Rows} row indices in [0, {Rows}); found [{string.Join(", ", rows)}].", nameof(rows));
        }
        var source = new bool[Rows]; // rows read by a row that changes: saved before any is written
        for (int r = 0; r < Rows; r++)
        {
            source[rows[r]] |= rows[r] != r;
        }
        if (Length == 0 || !source.Contains(true))
        {
            return;
        }
        foreach (OrtValue buffer in _buffers)
        {
            long[] shape = buffer.GetTensorTypeAndShape().Shape;
            int heads = (int)shape[1], size = (int)shape[3];
            int filled = Length * size, headStride = Capacity * size, rowStride = heads * headStride;
            Span<float> data = buffer.GetTensorMutableDataAsSpan<float>();
            if (_reorderScratch.Length < Rows * heads * filled)
            {
                _reorderScratch = new float[Rows * heads * filled];
            }
            Span<float> scratch = _reorderScratch.AsSpan(0, Rows * heads * filled);
            for (int r = 0; r < Rows; r++)
            {
                if (!source[r])
                {
                    continue;
                }
                for (int h = 0; h < heads; h++)
                {
                    data.Slice(r * rowStride + h * headStride, filled).CopyTo(scratch.Slice((r * heads + h) * filled, filled));
                }
            }
            for (int r = 0; r < Rows; r++)
            {
                if (rows[r] == r)
                {
                    continue;
                }
                for (int h = 0; h < heads; h++)
                {
                    scratch.Slice((rows[r] * heads + h) * filled, filled).CopyTo(data.Slice(r * rowStride + h * headStride, filled));
                }
            }
        }
    }

    public void Dispose()
    {
        _binding?.Dispose();
        foreach (OrtValue? buffer in _buffers)
        {
            buffer?.Dispose();
        }
    }
}

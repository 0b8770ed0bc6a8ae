// The TorchSharp side of the causal decoding loop: a decoder-only model (ICausalLanguageModel) with its key/value cache.
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Generation;

internal sealed class TorchCausalStepper : ICausalStepper
{
    private readonly ICausalLanguageModel _model;
    private readonly Device _device;
    private KeyValueCache? _cache;
    private int _reserved;

    /// <param name="useCache">Keep keys and values of earlier positions (true) or run the whole window every step.</param>
    public TorchCausalStepper(ICausalLanguageModel model, Device device, bool useCache = true)
    {
        _model = model;
        _device = device;
        HasCache = useCache;
        _cache = useCache ? model.CreateCache() : null;
    }

    public int ContextLength => _model.ContextLength;

    public bool HasCache { get; }

    public int CachedLength => (int)(_cache?.Length ?? 0);

    public bool AcceptsPadding => true;

    public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int>? leftPadding = null)
    {
        int rows = ids.Count, length = ids[0].Count;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Tensor input = tensor(CausalDecoding.Flatten(ids), new long[] { rows, length }, device: _device);
        Tensor? padding = leftPadding is null ? null : tensor(leftPadding.Select(p => (long)p).ToArray(), device: _device);
        Tensor last = _model.NextTokenLogits(input, _cache, padding).to(ScalarType.Float32).cpu().contiguous(); // (rows, V)
        int vocabulary = (int)last.shape[1];
        ReadOnlySpan<float> values = last.data<float>().ToArray();
        var scores = new float[rows][];
        for (int r = 0; r < rows; r++)
        {
            scores[r] = values.Slice(r * vocabulary, vocabulary).ToArray();
        }
        return scores;
    }

    public void ResetCache()
    {
        if (_cache is not null)
        {
            _cache.Dispose();
            _cache = _model.CreateCache();
            _cache.Reserve(_reserved);
        }
    }

    /// <summary>Sizes the key/value buffers for <paramref name="positions"/> positions at their first allocation (and after a reset).</summary>
    public void Reserve(int positions)
    {
        _reserved = positions;
        _cache?.Reserve(positions);
    }

    /// <summary>Positions the cache holds before its buffers grow (0 before the first step or without a cache).</summary>
    internal long CacheCapacity => _cache?.Capacity ?? 0;

    public void Dispose() => _cache?.Dispose();
}

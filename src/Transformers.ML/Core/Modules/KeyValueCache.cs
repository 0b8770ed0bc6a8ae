// The incremental key/value cache for autoregressive decoding: each new token attends to the keys
// and values of all earlier tokens, so they are kept instead of being projected again at every step.
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

/// <summary>
/// Keys and values of one attention sub-layer. Self-attention appends the new positions at every step, written in place
/// into buffers with room to spare: sized once for a whole generation when it is known (<see cref="Reserve"/>, as the
/// decoding loop does), else doubling when full (a generation of n tokens then copies O(n) positions in all instead of
/// the O(n^2) of growing by concatenation); cross-attention projects the encoder output once and keeps it
/// (<see cref="IsStatic"/>). The tensors live outside any dispose scope and are freed by <see cref="Dispose"/>.
/// </summary>
internal sealed class AttentionCache : IDisposable
{
    /// <summary>Positions of the first buffer when the first append is shorter and nothing was reserved.</summary>
    internal const long InitialCapacity = 32;

    private Tensor? _keyBuffer;   // (B, h, capacity, d_k); positions [0, Length) hold keys
    private Tensor? _valueBuffer; // (B, h, capacity, d_v)
    private long _reserved;

    /// <param name="isStatic">True for cross-attention: filled once from the encoder output, then reused.</param>
    public AttentionCache(bool isStatic)
    {
        IsStatic = isStatic;
    }

    /// <summary>Keys, shape (B, h, T, d_k): a view of the buffer; null before the first step.</summary>
    public Tensor? Key { get; private set; }

    /// <summary>Values, shape (B, h, T, d_v): a view of the buffer; null before the first step.</summary>
    public Tensor? Value { get; private set; }

    /// <summary>True for cross-attention: keys and values never change once stored.</summary>
    public bool IsStatic { get; }

    /// <summary>True once keys and values are stored.</summary>
    public bool IsFilled => Key is not null;

    /// <summary>Positions held (T).</summary>
    public long Length => Key?.shape[2] ?? 0;

    /// <summary>Positions the buffers hold before they grow again (0 before the first step).</summary>
    public long Capacity => _keyBuffer?.shape[2] ?? 0;

    /// <summary>
    /// Positions to allocate room for at the next allocation (a generation's prompt plus its new tokens, at most the
    /// context): the buffers are then allocated once and never copied during the generation.
    /// </summary>
    public void Reserve(long positions) => _reserved = Math.Max(0, positions);

    /// <summary>Appends (B, h, t, d) keys and values; returns the whole (B, h, T + t, d) tensors (owned by the cache).</summary>
    public (Tensor Key, Tensor Value) Append(Tensor key, Tensor value)
    {
        long length = Length, added = key.shape[2], total = length + added;
        if (_keyBuffer is null || _valueBuffer is null || total > _keyBuffer.shape[2])
        {
            long capacity = Math.Max(total, Math.Max(_reserved > 0 ? _reserved : InitialCapacity, 2 * Capacity));
            Tensor keys = Grow(_keyBuffer, length, key, capacity);
            Tensor values = Grow(_valueBuffer, length, value, capacity);
            SetBuffers(keys, values);
        }
        using (no_grad())
        {
            _keyBuffer!.narrow(2, length, added).copy_(key);
            _valueBuffer!.narrow(2, length, added).copy_(value);
        }
        SetViews(_keyBuffer!.narrow(2, 0, total), _valueBuffer!.narrow(2, 0, total));
        return (Key!, Value!);
    }

    /// <summary>Stores cross-attention keys and values computed once from the encoder output.</summary>
    public void SetStatic(Tensor key, Tensor value)
    {
        SetBuffers(key.alias(), value.alias());
        SetViews(_keyBuffer!.alias(), _valueBuffer!.alias());
    }

    /// <summary>Keeps the batch rows named by <paramref name="batchIndices"/> (beam search reordering).</summary>
    public void Reorder(Tensor batchIndices)
    {
        if (_keyBuffer is null || _valueBuffer is null)
        {
            return;
        }
        long length = Length;
        SetBuffers(_keyBuffer.index_select(0, batchIndices), _valueBuffer.index_select(0, batchIndices));
        SetViews(_keyBuffer!.narrow(2, 0, length), _valueBuffer!.narrow(2, 0, length));
    }

    /// <summary>A buffer of <paramref name="capacity"/> positions holding the first <paramref name="length"/> of <paramref name="old"/>.</summary>
    private static Tensor Grow(Tensor? old, long length, Tensor like, long capacity)
    {
        Tensor buffer = empty(new[] { like.shape[0], like.shape[1], capacity, like.shape[3] }, like.dtype, like.device);
        if (old is not null && length > 0)
        {
            using (no_grad())
            {
                buffer.narrow(2, 0, length).copy_(old.narrow(2, 0, length));
            }
        }
        return buffer;
    }

    private void SetBuffers(Tensor keys, Tensor values)
    {
        _keyBuffer?.Dispose();
        _valueBuffer?.Dispose();
        _keyBuffer = keys.DetachFromDisposeScope();
        _valueBuffer = values.DetachFromDisposeScope();
    }

    private void SetViews(Tensor key, Tensor value)
    {
        Key?.Dispose();
        Value?.Dispose();
        Key = key.DetachFromDisposeScope();
        Value = value.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        Key?.Dispose();
        Value?.Dispose();
        _keyBuffer?.Dispose();
        _valueBuffer?.Dispose();
        Key = null;
        Value = null;
        _keyBuffer = null;
        _valueBuffer = null;
    }
}

/// <summary>The caches of a whole decoder stack: one self-attention and one cross-attention cache per layer.</summary>
internal sealed class KeyValueCache : IDisposable
{
    public KeyValueCache(int numLayers)
    {
        SelfAttention = Enumerable.Range(0, numLayers).Select(_ => new AttentionCache(isStatic: false)).ToArray();
        CrossAttention = Enumerable.Range(0, numLayers).Select(_ => new AttentionCache(isStatic: true)).ToArray();
    }

    /// <summary>Per layer, the growing self-attention keys and values.</summary>
    public AttentionCache[] SelfAttention { get; }

    /// <summary>Per layer, the encoder's projected keys and values (unused by decoder-only models).</summary>
    public AttentionCache[] CrossAttention { get; }

    /// <summary>Positions already decoded: the offset of the next token's position.</summary>
    public long Length => SelfAttention.Length == 0 ? 0 : SelfAttention[0].Length;

    /// <summary>Positions the self-attention buffers hold before they grow (0 before the first step).</summary>
    public long Capacity => SelfAttention.Length == 0 ? 0 : SelfAttention[0].Capacity;

    /// <summary>Room for <paramref name="positions"/> positions in every self-attention cache, allocated at once (see <see cref="AttentionCache.Reserve"/>).</summary>
    public void Reserve(long positions)
    {
        foreach (AttentionCache cache in SelfAttention)
        {
            cache.Reserve(positions);
        }
    }

    /// <summary>Reorders every cache along the batch axis (beam search keeps the rows of the surviving beams).</summary>
    public void Reorder(Tensor batchIndices)
    {
        foreach (AttentionCache cache in SelfAttention.Concat(CrossAttention))
        {
            cache.Reorder(batchIndices);
        }
    }

    public void Dispose()
    {
        foreach (AttentionCache cache in SelfAttention.Concat(CrossAttention))
        {
            cache.Dispose();
        }
    }
}

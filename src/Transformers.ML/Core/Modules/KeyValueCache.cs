// The incremental key/value cache for autoregressive decoding: each new token attends to the keys
// and values of all earlier tokens, so they are kept instead of being projected again at every step.
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

/// <summary>
/// Keys and values of one attention sub-layer. Self-attention appends the new positions at every step;
/// cross-attention projects the encoder output once and keeps it (<see cref="IsStatic"/>).
/// The tensors live outside any dispose scope and are freed by <see cref="Dispose"/>.
/// </summary>
internal sealed class AttentionCache : IDisposable
{
    /// <param name="isStatic">True for cross-attention: filled once from the encoder output, then reused.</param>
    public AttentionCache(bool isStatic)
    {
        IsStatic = isStatic;
    }

    /// <summary>Keys, shape (B, h, T, d_k); null before the first step.</summary>
    public Tensor? Key { get; private set; }

    /// <summary>Values, shape (B, h, T, d_v); null before the first step.</summary>
    public Tensor? Value { get; private set; }

    /// <summary>True for cross-attention: keys and values never change once stored.</summary>
    public bool IsStatic { get; }

    /// <summary>True once keys and values are stored.</summary>
    public bool IsFilled => Key is not null;

    /// <summary>Positions held (T).</summary>
    public long Length => Key?.shape[2] ?? 0;

    /// <summary>Appends (B, h, t, d) keys and values; returns the whole (B, h, T + t, d) tensors (owned by the cache).</summary>
    public (Tensor Key, Tensor Value) Append(Tensor key, Tensor value)
    {
        Tensor newKey = Key is null ? key.alias() : cat(new[] { Key, key }, 2);
        Tensor newValue = Value is null ? value.alias() : cat(new[] { Value, value }, 2);
        Replace(newKey, newValue);
        return (Key!, Value!);
    }

    /// <summary>Stores cross-attention keys and values computed once from the encoder output.</summary>
    public void SetStatic(Tensor key, Tensor value)
    {
        Replace(key.alias(), value.alias());
    }

    /// <summary>Keeps the batch rows named by <paramref name="batchIndices"/> (beam search reordering).</summary>
    public void Reorder(Tensor batchIndices)
    {
        if (Key is null || Value is null)
        {
            return;
        }
        Replace(Key.index_select(0, batchIndices), Value.index_select(0, batchIndices));
    }

    private void Replace(Tensor key, Tensor value)
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
        Key = null;
        Value = null;
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

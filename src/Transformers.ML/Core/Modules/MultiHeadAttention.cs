// Multi-head attention, Vaswani et al. (2017), section 3.2:
//   Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
//   MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
// One module serves self-attention (encoder, decoder, GPT, ViT) and cross-attention (decoder over
// encoder output), with a causal mask, a key padding mask, optional attention weights and a cache.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

/// <summary>The output of an attention sub-layer, with the attention probabilities when they were asked for.</summary>
internal readonly record struct AttentionOutput(Tensor Output, Tensor? Weights);

internal sealed class MultiHeadAttention : nn.Module
{
    [ComponentName(Name = "q_proj")]
    private readonly Linear _qProj;

    [ComponentName(Name = "k_proj")]
    private readonly Linear _kProj;

    [ComponentName(Name = "v_proj")]
    private readonly Linear _vProj;

    [ComponentName(Name = "out_proj")]
    private readonly Linear _outProj;

    private readonly int _modelDim;
    private readonly int _heads;
    private readonly int _dk;
    private readonly int _dv;
    private readonly double _attentionDropout;

    public MultiHeadAttention(string name, int modelDim, int heads, int dk, int dv, double attentionDropout, bool bias)
        : base(name)
    {
        _modelDim = modelDim;
        _heads = heads;
        _dk = dk;
        _dv = dv;
        _attentionDropout = attentionDropout;
        _qProj = nn.Linear(modelDim, heads * dk, hasBias: bias);
        _kProj = nn.Linear(modelDim, heads * dk, hasBias: bias);
        _vProj = nn.Linear(modelDim, heads * dv, hasBias: bias);
        _outProj = nn.Linear(heads * dv, modelDim, hasBias: bias);
        RegisterComponents();
    }

    public MultiHeadAttention(string name, TransformerConfig config)
        : this(name, config.ModelDimension, config.NumHeads, config.HeadKeyDimension, config.HeadValueDimension, config.AttentionDropout, config.AttentionBias)
    {
    }

    /// <summary>
    /// Attends from <paramref name="query"/> (B, Tq, d_model) to <paramref name="keyValue"/> (B, S, d_model);
    /// pass the same tensor twice for self-attention.
    /// </summary>
    /// <param name="keyPaddingMask">(B, S) bool, true where the key is padding; or null.</param>
    /// <param name="causal">Position i attends only to keys at positions &lt;= i (counting the cached past).</param>
    /// <param name="cache">Self-attention: the past keys/values, extended in place. Cross-attention: projected once, then reused.</param>
    /// <param name="needWeights">Return the attention probabilities (B, h, Tq, S) (slower: no fused kernel).</param>
    public AttentionOutput Forward(Tensor query, Tensor keyValue, Tensor? keyPaddingMask = null, bool causal = false,
        AttentionCache? cache = null, bool needWeights = false)
    {
        CheckShapes(query, keyValue, keyPaddingMask, cache);
        using var scope = NewDisposeScope();
        long batch = query.shape[0];
        long tq = query.shape[1];

        // (B, T, h*d) -> (B, h, T, d): one slice of the projection per head.
        Tensor q = SplitHeads(Autocast.Linear(_qProj, query), _dk);
        Tensor k, v;
        if (cache is { IsStatic: true, IsFilled: true })
        {
            (k, v) = (cache.Key!, cache.Value!);
        }
        else
        {
            k = SplitHeads(Autocast.Linear(_kProj, keyValue), _dk);
            v = SplitHeads(Autocast.Linear(_vProj, keyValue), _dv);
            if (cache is { IsStatic: true })
            {
                cache.SetStatic(k, v);
            }
            else if (cache is not null)
            {
                (k, v) = cache.Append(k, v);
            }
        }

        long s = k.shape[2];
        long past = s - tq;
        double dropout = training ? _attentionDropout : 0.0;
        // Under autocast the two attention products run in the low type and the softmax in float32, as torch.autocast
        // does; libtorch's fused CPU kernel is slower in bfloat16 than this explicit form (its backward several times so).
        ScalarType? low = Autocast.Current is ScalarType a && a != q.dtype && q.device_type != DeviceType.META ? a : null;
        // Attention dropout in a training step on the CPU draws from the step's generator (StepRandom), which the fused
        // kernel cannot take; there that kernel computes the same form when it drops out (libtorch's math fallback).
        bool stepDropout = dropout > 0 && StepRandom.Current is not null && q.device_type == DeviceType.CPU;
        bool explicitForm = needWeights || q.device_type == DeviceType.META || low is not null || stepDropout;
        // Two common cases need no mask tensor: one new query over the cache sees every key (decoding), and a
        // causal pass without cache or padding is the fused kernel's own is_causal (it skips the masked blocks).
        bool causalFlag = causal && past == 0 && tq > 1 && keyPaddingMask is null && !explicitForm;
        bool causalNeedsMask = causal && tq > 1 && !causalFlag;
        Tensor? mask = causalNeedsMask || keyPaddingMask is not null
            ? BuildAdditiveMask(batch, tq, s, past, causalNeedsMask, keyPaddingMask, q.dtype, q.device)
            : null;

        Tensor context;
        Tensor? weights = null;
        // The explicit form when the probabilities are wanted, under autocast, with the step's attention dropout, and on the
        // meta device, where libtorch's fused kernel falls back to an op (_safe_softmax) without a meta kernel. The forms
        // are tested equal.
        if (explicitForm)
        {
            // Explicit form, so that the probabilities can be returned: (B, h, Tq, d_k) x (B, h, d_k, S) -> (B, h, Tq, S).
            Tensor scores = low is ScalarType l1
                ? matmul(q.to(l1), k.to(l1).transpose(-2, -1)).to(q.dtype)
                : matmul(q, k.transpose(-2, -1));
            scores = scores.TimesInPlace(1.0 / Math.Sqrt(_dk));
            if (mask is not null)
            {
                scores = scores.add_(mask, Scalars.One);
            }
            weights = F.softmax(scores, -1);
            Tensor attended = dropout > 0 ? StepRandom.Dropout(weights, dropout, training) : weights;
            context = low is ScalarType l2
                ? matmul(attended.to(l2), v.to(l2)).to(q.dtype)
                : matmul(attended, v); // (B, h, Tq, d_v)
        }
        else
        {
            // Fused kernel; the additive mask carries both causality and padding.
            context = F.scaled_dot_product_attention(q, k, v, mask, dropout, causalFlag);
        }

        // (B, h, Tq, d_v) -> (B, Tq, h*d_v) -> W^O -> (B, Tq, d_model)
        Tensor merged = context.transpose(1, 2).reshape(batch, tq, _heads * _dv);
        Tensor output = Autocast.Linear(_outProj, merged);
        return new AttentionOutput(output.MoveToOuterDisposeScope(), needWeights ? weights?.MoveToOuterDisposeScope() : null);
    }

    private Tensor SplitHeads(Tensor x, int headDim) =>
        x.view(x.shape[0], x.shape[1], _heads, headDim).transpose(1, 2);

    /// <summary>
    /// An additive mask (B or 1, 1, Tq, S): 0 where attention is allowed, the dtype's lowest finite value where not.
    /// A finite value (not -inf) keeps fully masked rows (a padded query) finite instead of NaN.
    /// </summary>
    internal static Tensor? BuildAdditiveMask(long batch, long tq, long s, long past, bool causal, Tensor? keyPaddingMask,
        ScalarType dtype, Device device)
    {
        if (!causal && keyPaddingMask is null)
        {
            return null;
        }

        // Only ops with meta kernels (triu, bitwise_or, mul), so the same code runs on the meta device.
        Tensor blocked = causal
            // Query i sits at absolute position past + i and may see keys 0..past + i.
            ? ones(new long[] { tq, s }, ScalarType.Bool, device).triu(past + 1).view(1, 1, tq, s)
            : zeros(new long[] { 1, 1, tq, s }, ScalarType.Bool, device);
        if (keyPaddingMask is not null)
        {
            blocked = blocked.bitwise_or(keyPaddingMask.to(ScalarType.Bool).view(batch, 1, 1, s));
        }
        double lowest = finfo(dtype).min;
        return blocked.to(dtype).Times(lowest);
    }

    private void CheckShapes(Tensor query, Tensor keyValue, Tensor? keyPaddingMask, AttentionCache? cache)
    {
        if (query.dim() != 3 || query.shape[2] != _modelDim)
        {
            throw new ArgumentException(
                $"{GetName()}: expected query of shape (batch, length, {_modelDim}); found ({string.Join(", ", query.shape)}).");
        }
        if (keyValue.dim() != 3 || keyValue.shape[2] != _modelDim || keyValue.shape[0] != query.shape[0])
        {
            throw new ArgumentException(
                $"{GetName()}: expected keys/values of shape ({query.shape[0]}, length, {_modelDim}); found ({string.Join(", ", keyValue.shape)}).");
        }
        if (keyPaddingMask is not null)
        {
            long expectedS = cache switch
            {
                { IsStatic: true, IsFilled: true } => cache.Length,
                { IsStatic: false } => cache.Length + keyValue.shape[1],
                _ => keyValue.shape[1],
            };
            if (keyPaddingMask.dim() != 2 || keyPaddingMask.shape[0] != query.shape[0] || keyPaddingMask.shape[1] != expectedS)
            {
                throw new ArgumentException(
                    $"{GetName()}: expected a key padding mask of shape ({query.shape[0]}, {expectedS}); found ({string.Join(", ", keyPaddingMask.shape)}).");
            }
        }
        if (cache is { Key: not null } && cache.Key.shape[0] != query.shape[0])
        {
            throw new ArgumentException(
                $"{GetName()}: the key/value cache holds {cache.Key.shape[0]} sequences but the query has {query.shape[0]}.");
        }
    }
}

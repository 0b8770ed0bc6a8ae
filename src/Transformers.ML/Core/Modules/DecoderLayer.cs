// Decoder layer, Vaswani et al. (2017), section 3.1: masked self-attention ("ensures that the
// predictions for position i can depend only on the known outputs at positions less than i"),
// then multi-head attention over the encoder output, then the feed-forward network. Without the
// cross-attention sub-layer it is a GPT-2 block.
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

/// <summary>The output of a decoder layer, with the self- and cross-attention probabilities when asked for.</summary>
internal readonly record struct DecoderLayerOutput(Tensor Output, Tensor? SelfAttentionWeights, Tensor? CrossAttentionWeights);

internal sealed class DecoderLayer : nn.Module
{
    [ComponentName(Name = "self_attn")]
    private readonly MultiHeadAttention _selfAttention;

    [ComponentName(Name = "self_attn_residual")]
    private readonly ResidualNorm _selfAttentionResidual;

    [ComponentName(Name = "cross_attn")]
    private readonly MultiHeadAttention? _crossAttention;

    [ComponentName(Name = "cross_attn_residual")]
    private readonly ResidualNorm? _crossAttentionResidual;

    [ComponentName(Name = "ffn")]
    private readonly FeedForward _feedForward;

    [ComponentName(Name = "ffn_residual")]
    private readonly ResidualNorm _feedForwardResidual;

    public DecoderLayer(string name, TransformerConfig config, bool crossAttention)
        : base(name)
    {
        _selfAttention = new MultiHeadAttention("self_attn", config);
        _selfAttentionResidual = new ResidualNorm("self_attn_residual", config);
        if (crossAttention)
        {
            _crossAttention = new MultiHeadAttention("cross_attn", config);
            _crossAttentionResidual = new ResidualNorm("cross_attn_residual", config);
        }
        _feedForward = new FeedForward("ffn", config);
        _feedForwardResidual = new ResidualNorm("ffn_residual", config);
        RegisterComponents();
    }

    public bool HasCrossAttention => _crossAttention is not null;

    /// <summary>
    /// (B, T, d_model) -> (B, T, d_model). <paramref name="memory"/> is the encoder output (B, S, d_model),
    /// required exactly when the layer has cross-attention; <paramref name="memoryPaddingMask"/> (B, S) masks its padding.
    /// </summary>
    public DecoderLayerOutput Forward(Tensor x, Tensor? selfPaddingMask, Tensor? memory, Tensor? memoryPaddingMask,
        AttentionCache? selfCache = null, AttentionCache? crossCache = null, bool needWeights = false)
    {
        if ((memory is null && crossCache is not { IsFilled: true }) == HasCrossAttention)
        {
            throw new ArgumentException(HasCrossAttention
                ? $"{GetName()}: this decoder layer attends to an encoder output, but none was given."
                : $"{GetName()}: this decoder layer has no cross-attention, but an encoder output was given.");
        }

        using var scope = NewDisposeScope();
        Tensor normed = _selfAttentionResidual.Input(x);
        AttentionOutput self = _selfAttention.Forward(normed, normed, selfPaddingMask, causal: true, selfCache, needWeights);
        x = _selfAttentionResidual.Output(x, self.Output);

        Tensor? crossWeights = null;
        if (_crossAttention is not null)
        {
            Tensor query = _crossAttentionResidual!.Input(x);
            // With a filled cache the encoder output is not needed again; the query stands in for its shape.
            AttentionOutput cross = _crossAttention.Forward(query, memory ?? query, memoryPaddingMask, causal: false, crossCache, needWeights);
            x = _crossAttentionResidual.Output(x, cross.Output);
            crossWeights = cross.Weights;
        }

        x = _feedForwardResidual.Output(x, _feedForward.forward(_feedForwardResidual.Input(x)));
        return new DecoderLayerOutput(x.MoveToOuterDisposeScope(), self.Weights?.MoveToOuterDisposeScope(), crossWeights?.MoveToOuterDisposeScope());
    }
}

// Encoder layer, Vaswani et al. (2017), section 3.1: "two sub-layers. The first is a multi-head
// self-attention mechanism, and the second is a simple, position-wise fully connected feed-forward
// network", each inside a residual connection with layer normalisation. ViT's layer is the same
// with pre-LN and GELU.
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

internal sealed class EncoderLayer : nn.Module
{
    [ComponentName(Name = "self_attn")]
    private readonly MultiHeadAttention _selfAttention;

    [ComponentName(Name = "self_attn_residual")]
    private readonly ResidualNorm _attentionResidual;

    [ComponentName(Name = "ffn")]
    private readonly FeedForward _feedForward;

    [ComponentName(Name = "ffn_residual")]
    private readonly ResidualNorm _feedForwardResidual;

    public EncoderLayer(string name, TransformerConfig config)
        : base(name)
    {
        _selfAttention = new MultiHeadAttention("self_attn", config);
        _attentionResidual = new ResidualNorm("self_attn_residual", config);
        _feedForward = new FeedForward("ffn", config);
        _feedForwardResidual = new ResidualNorm("ffn_residual", config);
        RegisterComponents();
    }

    /// <summary>(B, S, d_model) -> (B, S, d_model); padding keys are masked out of every query's attention.</summary>
    public AttentionOutput Forward(Tensor x, Tensor? paddingMask, bool needWeights = false)
    {
        using var scope = NewDisposeScope();
        Tensor normed = _attentionResidual.Input(x);
        AttentionOutput attention = _selfAttention.Forward(normed, normed, paddingMask, causal: false, cache: null, needWeights);
        x = _attentionResidual.Output(x, attention.Output);
        x = _feedForwardResidual.Output(x, _feedForward.forward(_feedForwardResidual.Input(x)));
        return new AttentionOutput(x.MoveToOuterDisposeScope(), attention.Weights?.MoveToOuterDisposeScope());
    }
}

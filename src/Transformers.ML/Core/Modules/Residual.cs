// Residual connection around a sub-layer with layer normalisation, Vaswani et al. (2017), section 3.1:
// post-LN "LayerNorm(x + Dropout(Sublayer(x)))" as in the paper, or pre-LN
// "x + Dropout(Sublayer(LayerNorm(x)))" as in GPT-2 and ViT (more stable for deep stacks; Xiong et al. 2020).
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

internal sealed class ResidualNorm : nn.Module
{
    [ComponentName(Name = "norm")]
    private readonly TransformerLayerNorm _norm;

    [ComponentName(Name = "dropout")]
    private readonly StepDropout _dropout;

    private readonly NormPosition _position;

    public ResidualNorm(string name, TransformerConfig config)
        : base(name)
    {
        _norm = new TransformerLayerNorm(config.ModelDimension, config.LayerNormEpsilon);
        _dropout = new StepDropout(config.Dropout);
        _position = config.NormPosition;
        RegisterComponents();
    }

    /// <summary>The input of the sub-layer: x itself (post-LN) or LayerNorm(x) (pre-LN).</summary>
    public Tensor Input(Tensor x) => _position == NormPosition.Pre ? _norm.forward(x) : x.alias();

    /// <summary>Combines the residual stream x with the sub-layer output y (P_drop on y).</summary>
    public Tensor Output(Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        Tensor sum = x.add(_dropout.forward(y), Scalars.One);
        return (_position == NormPosition.Post ? _norm.forward(sum) : sum).MoveToOuterDisposeScope();
    }
}

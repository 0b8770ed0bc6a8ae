// Layer normalisation (Ba et al. 2016): y = (x - mean) / sqrt(var + eps) * gain + bias over the last axis.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

/// <summary>
/// LayerNorm with PyTorch's parameter names (weight, bias). It calls libtorch's fused kernel, except on the
/// meta device, where libtorch (C++, without Python's meta registrations) has none and the same formula is
/// written out, so that the meta-device test can run the whole model.
/// </summary>
internal sealed class TransformerLayerNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;

    [ComponentName(Name = "bias")]
    private readonly Parameter _bias;

    private readonly long[] _shape;
    private readonly double _eps;

    public TransformerLayerNorm(long dimension, double eps)
        : base("layer_norm")
    {
        _shape = new[] { dimension };
        _eps = eps;
        _weight = new Parameter(ones(dimension));
        _bias = new Parameter(zeros(dimension));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.device_type != DeviceType.META)
        {
            return F.layer_norm(x, _shape, _weight, _bias, _eps);
        }
        using var scope = NewDisposeScope();
        Tensor mean = x.mean(new long[] { -1 }, keepdim: true);
        Tensor centered = x.sub(mean);
        Tensor variance = centered.Squared().mean(new long[] { -1 }, keepdim: true); // biased, as LayerNorm
        return centered.mul(variance.Plus(_eps).rsqrt()).mul(_weight).add(_bias, Scalars.One).MoveToOuterDisposeScope();
    }
}

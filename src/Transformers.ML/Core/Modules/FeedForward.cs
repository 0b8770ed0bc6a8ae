// Position-wise feed-forward network, Vaswani et al. (2017), section 3.3:
//   FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, the same at every position; GELU for GPT-2 and ViT.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

internal sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "fc1")]
    private readonly Linear _fc1;

    [ComponentName(Name = "fc2")]
    private readonly Linear _fc2;

    private readonly FeedForwardActivation _activation;

    public FeedForward(string name, TransformerConfig config)
        : base(name)
    {
        _fc1 = nn.Linear(config.ModelDimension, config.FeedForwardDimension);
        _fc2 = nn.Linear(config.FeedForwardDimension, config.ModelDimension);
        _activation = config.Activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor hidden = Autocast.Linear(_fc1, x); // (B, T, d_ff)
        hidden = _activation switch
        {
            FeedForwardActivation.Relu => hidden.device_type == DeviceType.META
                ? hidden.mul(hidden.Above(0).to(hidden.dtype)) // relu; libtorch has no meta kernel for relu or its backward
                : F.relu(hidden),
            FeedForwardActivation.Gelu => F.gelu(hidden),
            FeedForwardActivation.GeluTanh => F.gelu(hidden, GELU.Approximate.tanh),
            _ => throw new InvalidOperationException($"Unknown activation {_activation}."),
        };
        return Autocast.Linear(_fc2, hidden).MoveToOuterDisposeScope(); // (B, T, d_model)
    }
}

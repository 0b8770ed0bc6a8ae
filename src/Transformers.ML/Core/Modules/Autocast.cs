// Mixed precision as torch.autocast(dtype=torch.bfloat16) does it for linear layers: inside a scope, the Core's
// linear layers multiply in the lower precision (inputs and weights cast on the way in, the product cast back),
// while the weights, the optimizer state, normalisation, softmax and the loss stay in float32. The casts are
// ordinary differentiable ops, so the gradients reach the float32 weights through them.
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

internal static class Autocast
{
    /// <summary>The type the Core's linear layers multiply in on this thread; null outside an autocast scope.</summary>
    public static ScalarType? Current => ThreadScoped<Tag, ScalarType?>.Value;

    /// <summary>Linear layers multiply in <paramref name="dtype"/> (null: their own type) until the returned scope is disposed.</summary>
    public static ThreadScoped<Tag, ScalarType?>.Scope Enable(ScalarType? dtype) => ThreadScoped<Tag, ScalarType?>.Set(dtype);

    /// <summary><paramref name="layer"/> applied to <paramref name="x"/>, in the autocast type when one is set; the result has <paramref name="x"/>'s type.</summary>
    public static Tensor Linear(Linear layer, Tensor x)
    {
        if (Current is not ScalarType low || !x.is_floating_point())
        {
            return layer.forward(x);
        }
        using var scope = NewDisposeScope();
        Tensor product = F.linear(x.to(low), layer.weight!.to(low), layer.bias?.to(low));
        return product.to(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The owner of the autocast setting.</summary>
    internal sealed class Tag
    {
    }
}

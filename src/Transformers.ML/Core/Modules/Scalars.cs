using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

/// <summary>
/// Tensor-and-number operations that keep their Scalar alive across the native call. TorchSharp 0.107 turns a number
/// into a temporary Scalar whose finalizer may run while libtorch still reads it (under allocation pressure, e.g. batched
/// beam search: "Unknown scalar type"); here the Scalar is disposed only after the call returns.
/// </summary>
internal static class Scalars
{
    /// <summary>The alpha of tensor additions: <c>x.add(y)</c> itself makes a temporary Scalar 1 for it.</summary>
    public static readonly Scalar One = 1.0.ToScalar();

    public static Tensor Times(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.mul(s);
    }

    public static Tensor TimesInPlace(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.mul_(s);
    }

    public static Tensor Over(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.div(s);
    }

    public static Tensor OverInPlace(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.div_(s);
    }

    public static Tensor Plus(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.add(s);
    }

    public static Tensor PlusInPlace(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.add_(s);
    }

    public static Tensor FillWhere(this Tensor x, Tensor mask, double value)
    {
        using Scalar s = value.ToScalar();
        return x.masked_fill(mask, s);
    }

    public static Tensor Above(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.gt(s);
    }

    public static Tensor AtLeast(this Tensor x, double value)
    {
        using Scalar s = value.ToScalar();
        return x.ge(s);
    }

    public static Tensor Squared(this Tensor x)
    {
        using Scalar s = 2.0.ToScalar();
        return x.pow(s);
    }
}

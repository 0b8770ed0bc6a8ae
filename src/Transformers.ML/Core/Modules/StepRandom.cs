// The random source of a training step: dropout, attention dropout, image augmentation and masked-autoencoder masks draw
// from the generator the training loop sets for the step on its own thread (seeded from (seed, step)), not from
// libtorch's one process-wide generator. So Fits that run at the same time on several threads draw what each would draw
// alone, and a run still resumes exactly from a checkpoint. Outside a step (no generator set) they draw from libtorch's
// generator, as torch.nn.Dropout does.
//
// On the CPU the draws are libtorch's own dropout, step for step: at::dropout there fills a tensor like the input with
// bernoulli(1 - p), divides it by 1 - p and multiplies, which is what Dropout below does with the step's generator.
// TorchSharp 0.107 makes CPU generators only (THSGenerator_new ignores its device), and libtorch refuses a CPU
// generator for a CUDA tensor. So on another device the small draws (augmentation's per-image numbers, masks, noise)
// are made on the CPU and moved, while dropout, whose masks are as large as the activations, uses libtorch's fused
// kernel and generator there, which the training loop seeds per step as before.
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

internal static class StepRandom
{
    /// <summary>The generator of the training step running on this thread; null outside a step.</summary>
    public static Generator? Current => ThreadScoped<Tag, Generator>.Value;

    /// <summary>Draws on this thread come from <paramref name="generator"/> until the returned scope is disposed.</summary>
    public static ThreadScoped<Tag, Generator>.Scope Use(Generator? generator) => ThreadScoped<Tag, Generator>.Set(generator);

    /// <summary>Inverted dropout: in training, each element is zeroed with probability <paramref name="p"/> and the rest scaled by 1 / (1 - p).</summary>
    public static Tensor Dropout(Tensor x, double p, bool training)
    {
        if (!training || p <= 0 || x.numel() == 0)
        {
            return x.alias();
        }
        if (Current is not Generator generator || x.device_type != DeviceType.CPU)
        {
            return F.dropout(x, p, training);
        }
        if (p >= 1)
        {
            return x.Times(0.0);
        }
        using var scope = NewDisposeScope();
        Tensor keep = empty_like(x).bernoulli_(1 - p, generator).OverInPlace(1 - p);
        return x.mul(keep).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Uniform numbers in [0, 1) of <paramref name="shape"/> on <paramref name="device"/>, from <paramref name="generator"/>
    /// (null: the step's; outside a step libtorch's).
    /// </summary>
    public static Tensor Uniform(long[] shape, Device device, Generator? generator = null)
    {
        generator ??= Current;
        if (generator is null || device.type == DeviceType.CPU)
        {
            return rand(shape, device: device, generator: generator);
        }
        using var scope = NewDisposeScope();
        return rand(shape, generator: generator).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>Standard normal numbers of <paramref name="like"/>'s shape, type and device from the step's generator.</summary>
    public static Tensor NormalLike(Tensor like)
    {
        Generator? generator = Current;
        if (generator is null || like.device_type == DeviceType.CPU)
        {
            return randn(like.shape, dtype: like.dtype, device: like.device, generator: generator);
        }
        using var scope = NewDisposeScope();
        return randn(like.shape, dtype: like.dtype, generator: generator).to(like.device).MoveToOuterDisposeScope();
    }

    /// <summary>The owner of the step's generator setting.</summary>
    internal sealed class Tag
    {
    }
}

/// <summary>torch.nn.Dropout drawing from the training step's generator (<see cref="StepRandom"/>).</summary>
internal sealed class StepDropout : nn.Module<Tensor, Tensor>
{
    private readonly double _p;

    public StepDropout(double p)
        : base(nameof(StepDropout))
    {
        _p = p;
    }

    public override Tensor forward(Tensor input) => StepRandom.Dropout(input, _p, training);
}

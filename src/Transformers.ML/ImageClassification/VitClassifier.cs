// A trained ViT with what inference needs besides the weights: the device, the class names, whether it is a binary
// (Boolean label) classifier, and the per-channel mean and standard deviation of the training pixels.
using static TorchSharp.torch;
using TorchSharp;
using Transformers.ML.Core.Modules;

namespace Transformers.ML.ImageClassification;

/// <summary>What a batch of images gives: class probabilities, embeddings and, when asked, attention.</summary>
internal sealed record VitPredictions(float[][] Probabilities, float[][] Embeddings, float[][]? ClsAttention, float[][]? Rollout);

internal sealed class VitClassifier : IDisposable
{
    public VitClassifier(VitModel model, Device device, IReadOnlyList<string> classNames, bool binary, float[] mean, float[] std)
    {
        Model = model;
        Device = device;
        ClassNames = classNames;
        Binary = binary;
        Mean = mean;
        Std = std;
        _mean = tensor(mean, device: device).view(1, -1, 1, 1);
        _std = tensor(std, device: device).view(1, -1, 1, 1);
    }

    private readonly Tensor _mean;
    private readonly Tensor _std;

    public VitModel Model { get; }

    public Device Device { get; }

    /// <summary>The classes, in key order (multiclass) or "False", "True" (binary).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    public bool Binary { get; }

    public float[] Mean { get; }

    public float[] Std { get; }

    /// <summary>Average the probabilities of each image and its left-right mirror (see <see cref="ImageClassificationOptions.TestTimeFlip"/>).</summary>
    public bool TestTimeFlip { get; set; }

    /// <summary>(x - mean) / std per channel.</summary>
    public Tensor Normalize(Tensor images) => images.sub(_mean).div(_std);

    /// <summary>Classifies raw images (B, C, S, S) (any device) in eval mode.</summary>
    public VitPredictions Predict(Tensor images, bool needAttention)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Model.eval();
        Tensor x = Normalize(images.to(Device));
        VitOutput output = Model.Forward(x, needAttention);
        Tensor p = output.Logits.softmax(-1);
        if (TestTimeFlip)
        {
            p = p.add(Model.Forward(x.flip(3)).Logits.softmax(-1), Scalars.One).div(Two); // the mean of the image's and its mirror's
        }
        float[][] probabilities = Rows(p);
        float[][] embeddings = Rows(output.Features);
        float[][]? cls = null, rollout = null;
        if (needAttention)
        {
            // (B, L, H, T): the [CLS] row of every layer and head.
            Tensor stacked = stack(output.Attention!.ToArray(), 1); // (B, L, H, T, T)
            cls = Rows(stacked.select(3, 0).flatten(1));
            rollout = Rows(AttentionRollout(stacked));
        }
        return new VitPredictions(probabilities, embeddings, cls, rollout);
    }

    /// <summary>
    /// Attention rollout (Abnar and Zuidema 2020): per layer, the head-averaged attention plus the identity (the residual),
    /// rows renormalised; the product over layers; the [CLS] row over the patches, scaled to sum 1. (B, L, H, T, T) -> (B, N).
    /// </summary>
    internal static Tensor AttentionRollout(Tensor attention)
    {
        using var scope = NewDisposeScope();
        long batch = attention.shape[0], layers = attention.shape[1], tokens = attention.shape[3];
        Tensor identity = eye(tokens, dtype: attention.dtype, device: attention.device).unsqueeze(0);
        Tensor rollout = identity.expand(batch, tokens, tokens);
        for (long l = 0; l < layers; l++)
        {
            Tensor a = attention.select(1, l).mean(new long[] { 1 }).Times(0.5).add(identity.Times(0.5), Scalars.One); // (B, T, T)
            a = a.div(a.sum(-1, keepdim: true));
            rollout = a.bmm(rollout);
        }
        Tensor map = rollout.select(1, 0).narrow(1, 1, tokens - 1); // [CLS] -> patches
        return map.div(map.sum(-1, keepdim: true)).MoveToOuterDisposeScope();
    }

    private static readonly Scalar Two = 2f.ToScalar(); // long-lived: see ImageInput's Constant

    private static float[][] Rows(Tensor matrix)
    {
        Tensor cpu = matrix.detach().to(ScalarType.Float32).cpu().contiguous();
        long rows = cpu.shape[0], columns = cpu.numel() / Math.Max(1, rows);
        float[] flat = cpu.data<float>().ToArray();
        return Enumerable.Range(0, (int)rows).Select(r => flat.AsSpan((int)(r * columns), (int)columns).ToArray()).ToArray();
    }

    public void Dispose()
    {
        _mean.Dispose();
        _std.Dispose();
        Model.Dispose();
    }
}

// The masked autoencoder of He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", section 3:
//   - random masking: each image keeps a random 25 % of its patches (a per-image shuffle of the patch indices);
//   - the encoder, a ViT, sees only the kept patches (with their positions) and [CLS];
//   - a light decoder sees the encoded kept patches and a shared, learned mask token for every removed one, each with a
//     decoder position, and predicts the pixels of every patch;
//   - the loss is the mean squared error on the removed patches only, against pixels normalised per patch.
// After pretraining the decoder is dropped: the encoder embeds images, or starts a classifier.
using TorchSharp;
using TorchSharp.Modules;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using TransformerEncoder = Transformers.ML.Core.Modules.TransformerEncoder;
using TorchSharp.Utils;

namespace Transformers.ML.ImageClassification;

/// <summary>The decoder's shape and the masking of a masked autoencoder (saved with the model).</summary>
internal sealed record MaskedAutoencoderShape(int DecoderWidth, int DecoderDepth, int DecoderHeads, double MaskRatio, bool NormalizePixelLoss)
{
    public static MaskedAutoencoderShape From(MaskedAutoencoderOptions options) =>
        new(options.DecoderWidth, options.DecoderDepth, options.DecoderHeads, options.MaskRatio, options.NormalizePixelLoss);

    public TransformerConfig Decoder(int tokens) => new()
    {
        NumLayers = DecoderDepth,
        ModelDimension = DecoderWidth,
        FeedForwardDimension = 4 * DecoderWidth,
        NumHeads = DecoderHeads,
        Dropout = 0,
        NormPosition = NormPosition.Pre,
        Activation = FeedForwardActivation.Gelu,
        LayerNormEpsilon = 1e-6,
        PositionalEncoding = PositionalEncodingKind.Learned,
        MaxSequenceLength = tokens,
        LabelSmoothing = 0,
    };
}

internal sealed class MaskedAutoencoder : nn.Module
{
    [ComponentName(Name = "encoder")]
    private readonly VitModel _encoder;

    [ComponentName(Name = "decoder_embed")]
    private readonly Linear _decoderEmbedding;

    [ComponentName(Name = "mask_token")]
    private readonly Parameter _maskToken;

    [ComponentName(Name = "decoder_pos_embed")]
    private readonly Parameter _decoderPositions;

    [ComponentName(Name = "decoder")]
    private readonly TransformerEncoder _decoder;

    [ComponentName(Name = "decoder_pred")]
    private readonly Linear _prediction;

    public MaskedAutoencoder(VitConfig encoder, MaskedAutoencoderShape shape)
        : base("mae")
    {
        Shape = shape;
        int patches = encoder.GridSize * encoder.GridSize;
        _encoder = new VitModel(encoder, classes: 1); // its head is not used: fine-tuning puts a new one
        _decoderEmbedding = nn.Linear(encoder.Width, shape.DecoderWidth);
        _maskToken = new Parameter(zeros(1, 1, shape.DecoderWidth));
        _decoderPositions = new Parameter(zeros(1, patches + 1, shape.DecoderWidth));
        _decoder = new TransformerEncoder("decoder", shape.Decoder(patches + 1));
        _prediction = nn.Linear(shape.DecoderWidth, encoder.PatchSize * encoder.PatchSize * encoder.Channels);
        RegisterComponents();
        using (no_grad())
        {
            nn.init.normal_(_maskToken, std: 0.02);
            nn.init.trunc_normal_(_decoderPositions, std: 0.02);
        }
    }

    public VitModel Encoder => _encoder;

    public VitConfig Config => _encoder.Config;

    public MaskedAutoencoderShape Shape { get; }

    /// <summary>
    /// The summed loss over the removed patches of normalised images (B, C, S, S), and how many patches were removed.
    /// The mask is drawn from <paramref name="generator"/> (null: the training step's, <see cref="StepRandom"/>, which the
    /// training loop seeds per step; outside a step libtorch's).
    /// </summary>
    public LossSum Loss(Tensor images, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        long batch = images.shape[0];
        int patches = Config.GridSize * Config.GridSize;
        int keep = (int)Math.Round(patches * (1 - Shape.MaskRatio));

        // Random masking: sort uniform noise per image; the first `keep` of the order stay.
        Tensor noise = StepRandom.Uniform(new long[] { batch, patches }, images.device, generator); // (B, N)
        Tensor shuffle = noise.argsort(1);                                  // (B, N): patch indices, kept ones first
        Tensor restore = shuffle.argsort(1);                                // (B, N): where each patch went in the shuffle
        Tensor kept = shuffle.narrow(1, 0, keep);                           // (B, K)

        Tensor latent = _encoder.EncodeKept(images, kept);                  // (B, 1 + K, D)
        Tensor x = _decoderEmbedding.forward(latent);                       // (B, 1 + K, Dd)
        Tensor masks = _maskToken.expand(batch, patches - keep, -1);        // (B, N - K, Dd)
        Tensor shuffled = cat(new[] { x.narrow(1, 1, keep), masks }, 1);    // (B, N, Dd) in shuffle order
        Tensor unshuffled = shuffled.gather(1, restore.unsqueeze(-1).expand(-1, -1, shuffled.shape[2])); // (B, N, Dd) in patch order
        x = cat(new[] { x.narrow(1, 0, 1), unshuffled }, 1).add(_decoderPositions);                     // (B, 1 + N, Dd)
        x = _decoder.Forward(x, null, false).Hidden;                        // final LayerNorm included
        Tensor predicted = _prediction.forward(x.narrow(1, 1, patches));    // (B, N, P * P * C)

        Tensor target = Patchify(images);                                   // (B, N, P * P * C)
        if (Shape.NormalizePixelLoss)
        {
            Tensor mean = target.mean(new long[] { -1 }, keepdim: true);
            Tensor variance = target.var(-1, keepdim: true);
            target = target.sub(mean).div(variance.add(Epsilon).sqrt());
        }
        Tensor perPatch = predicted.sub(target).square().mean(new long[] { -1 }); // (B, N)
        Tensor removed = ones(batch, patches, device: images.device);
        removed.narrow(1, 0, keep).fill_(Zero);
        removed = removed.gather(1, restore);                               // 1 where the patch was removed, in patch order
        return new LossSum(perPatch.mul(removed).sum().MoveToOuterDisposeScope(), removed.sum().to(ScalarType.Int64).MoveToOuterDisposeScope());
    }

    /// <summary>Images (B, C, S, S) -> the mean of the encoder's patch features over every patch (B, D): the embedding.</summary>
    public Tensor Embed(Tensor images)
    {
        using var scope = NewDisposeScope();
        Tensor hidden = _encoder.EncodeKept(images, kept: null);            // (B, 1 + N, D)
        return hidden.narrow(1, 1, hidden.shape[1] - 1).mean(new long[] { 1 }).MoveToOuterDisposeScope();
    }

    /// <summary>(B, C, S, S) -> (B, N, P * P * C): each patch's pixels, patches in the patch embedding's row-major order.</summary>
    internal Tensor Patchify(Tensor images)
    {
        long batch = images.shape[0];
        int c = Config.Channels, p = Config.PatchSize, g = Config.GridSize;
        return images.reshape(batch, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(batch, g * g, p * p * c);
    }

    // Constants as long-lived scalars (TorchSharp frees temporary ones in a finalizer: see ImageInput's Constant).
    private static readonly Scalar Epsilon = 1e-6.ToScalar();
    private static readonly Scalar Zero = 0.ToScalar();
}

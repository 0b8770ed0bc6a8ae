// The Vision Transformer, Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", section 3.1:
//   z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos        (patch embedding, [CLS] token, learned positions)
//   z_l = encoder layer l (pre-LN: MSA and MLP with GELU)  (the Core's TransformerEncoder)
//   y   = LN(z_L^0) -> head                                (the [CLS] output classifies)
// The patch embedding is a convolution with kernel and stride P, the same as a linear map of flattened P x P patches
// (with PatchWindow > P, a larger kernel and zero padding: overlapping windows, still one token per P x P patch).
using TorchSharp;
using TorchSharp.Modules;
using TransformerEncoder = Transformers.ML.Core.Modules.TransformerEncoder;
using TorchSharp.Utils;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.ImageClassification;

/// <summary>The architecture of a ViT: image geometry and the encoder's width, depth, heads and MLP ratio.</summary>
public sealed class VitConfig
{
    /// <summary>Side of the (square) input image, in pixels. Range 1..4096; default 32.</summary>
    public int ImageSize { get; set; } = 32;

    /// <summary>Side of a patch, in pixels; the image size must be a multiple of it. Range 1..ImageSize; default 4.</summary>
    public int PatchSize { get; set; } = 4;

    /// <summary>Colour channels: 1 (grayscale, OCT) or 3. Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>Encoder width D. Default 128.</summary>
    public int Width { get; set; } = 128;

    /// <summary>Encoder layers L. Default 4.</summary>
    public int Depth { get; set; } = 4;

    /// <summary>Attention heads. Default 4.</summary>
    public int Heads { get; set; } = 4;

    /// <summary>MLP size as a multiple of the width (the paper: 4). Default 4.</summary>
    public double MlpRatio { get; set; } = 4;

    /// <summary>Dropout after the embeddings and each sub-layer. Range [0, 1); default 0.1.</summary>
    public double Dropout { get; set; } = 0.1;

    /// <summary>
    /// Channels of a convolutional stem before the patch embedding: a 3x3 convolution (stride 1) and GELU whose feature map
    /// is then cut into patches, a small case of the paper's hybrid architecture (section 3.1: patches "from feature maps of
    /// a CNN"; Xiao et al. 2021, "Early convolutions help transformers see better"). It helps on small images and little
    /// data. 0 (default): raw pixel patches, the plain ViT.
    /// </summary>
    public int StemChannels { get; set; }

    /// <summary>
    /// Stride-2 layers after the stem's first convolution (a deeper convolutional stem, as Xiao et al.'s ViTc): each a 3x3
    /// convolution with stride 2 that doubles the channels, and GELU. Each halves the feature map, so the patch embedding
    /// cuts PatchSize / 2^StemDownsampling pixels of it per token (a token still covers PatchSize x PatchSize pixels of the
    /// image). Needs StemChannels > 0 and a PatchSize divisible by 2^StemDownsampling. Range 0..4; default 0.
    /// </summary>
    public int StemDownsampling { get; set; }

    /// <summary>Channels of the feature map the patch embedding reads: the image's, or the stem's last layer's.</summary>
    internal int StemOutputChannels => StemChannels == 0 ? Channels : StemChannels << StemDownsampling;

    /// <summary>The patch embedding's stride on the stem's feature map.</summary>
    internal int EmbeddingStride => PatchSize >> StemDownsampling;

    /// <summary>
    /// Side of the patch embedding's window, in pixels: PatchSize (or 0, the default) cuts the image into disjoint patches as
    /// the paper does; a larger window (PatchSize + an even number) lets neighbouring patches overlap, with the image
    /// zero-padded by half the difference, so every token also sees the pixels around its patch (the overlapping patch
    /// embedding of Wang et al. 2022, PVT v2). The number of tokens does not change: ImageSize / PatchSize per side.
    /// </summary>
    public int PatchWindow { get; set; }

    /// <summary>The patch embedding's window side: <see cref="PatchWindow"/>, or <see cref="PatchSize"/> when that is 0.</summary>
    internal int EffectivePatchWindow => PatchWindow == 0 ? PatchSize : PatchWindow;

    /// <summary>Zero padding on each side of the image for the patch embedding: half of window - patch.</summary>
    internal int PatchPadding => (EffectivePatchWindow - PatchSize) / 2;

    /// <summary>ViT-Ti/16 (DeiT): width 192, depth 12, 3 heads, 224-pixel RGB images (5.7M parameters with 1000 classes).</summary>
    public static VitConfig Tiny16() => new() { ImageSize = 224, PatchSize = 16, Channels = 3, Width = 192, Depth = 12, Heads = 3, Dropout = 0 };

    /// <summary>ViT-S/16: width 384, depth 12, 6 heads (22M parameters with 1000 classes).</summary>
    public static VitConfig Small16() => new() { ImageSize = 224, PatchSize = 16, Channels = 3, Width = 384, Depth = 12, Heads = 6, Dropout = 0 };

    /// <summary>ViT-B/16 of the paper: width 768, depth 12, 12 heads, MLP 3072 (86M parameters with 1000 classes).</summary>
    public static VitConfig Base16() => new() { ImageSize = 224, PatchSize = 16, Channels = 3, Width = 768, Depth = 12, Heads = 12, Dropout = 0.1 };

    /// <summary>Patches along one side.</summary>
    public int GridSize => ImageSize / PatchSize;

    /// <summary>Checks every field; the message names the option, the value and the range.</summary>
    public void Validate()
    {
        void Check(bool ok, string name, object value, string expected)
        {
            if (!ok)
            {
                throw new ArgumentOutOfRangeException(name, value, $"ViT option {name} must be {expected}; found {value}.");
            }
        }
        Check(ImageSize is >= 1 and <= 4096, nameof(ImageSize), ImageSize, "in [1, 4096]");
        Check(PatchSize >= 1 && PatchSize <= ImageSize, nameof(PatchSize), PatchSize, $"in [1, ImageSize = {ImageSize}] (an image smaller than one patch has no patch)");
        Check(ImageSize % PatchSize == 0, nameof(ImageSize), ImageSize, $"a multiple of PatchSize ({PatchSize}); images are resized to ImageSize first");
        Check(Channels is 1 or 3, nameof(Channels), Channels, "1 or 3");
        Check(Width >= 1 && Heads >= 1 && Width % Heads == 0, nameof(Width), Width, $"positive and divisible by Heads ({Heads})");
        Check(Depth is >= 1 and <= 100, nameof(Depth), Depth, "in [1, 100]");
        Check(MlpRatio > 0, nameof(MlpRatio), MlpRatio, "> 0");
        Check(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "in [0, 1)");
        Check(StemChannels is >= 0 and <= 4096, nameof(StemChannels), StemChannels, "in [0, 4096] (0: no stem)");
        Check(StemDownsampling is >= 0 and <= 4 && (StemDownsampling == 0 || StemChannels > 0) && PatchSize % (1 << StemDownsampling) == 0,
            nameof(StemDownsampling), StemDownsampling, $"in [0, 4], with StemChannels > 0 and PatchSize ({PatchSize}) divisible by 2^StemDownsampling");
        Check(StemDownsampling == 0 || PatchWindow == 0 || PatchWindow == PatchSize, nameof(PatchWindow), PatchWindow, "0 (disjoint patches) with a downsampling stem");
        Check(PatchWindow == 0 || (PatchWindow >= PatchSize && PatchWindow <= ImageSize + PatchSize && (PatchWindow - PatchSize) % 2 == 0), nameof(PatchWindow), PatchWindow,
            $"0, or PatchSize ({PatchSize}) plus an even number of pixels, at most ImageSize + PatchSize ({ImageSize + PatchSize})");
    }

    /// <summary>The encoder's configuration: pre-LN, exact GELU, LayerNorm epsilon 1e-6 (as the paper's code).</summary>
    internal TransformerConfig Encoder() => new()
    {
        NumLayers = Depth,
        ModelDimension = Width,
        FeedForwardDimension = (int)Math.Round(Width * MlpRatio),
        NumHeads = Heads,
        Dropout = Dropout,
        NormPosition = NormPosition.Pre,
        Activation = FeedForwardActivation.Gelu,
        LayerNormEpsilon = 1e-6,
        PositionalEncoding = PositionalEncodingKind.Learned,
        MaxSequenceLength = GridSize * GridSize + 1,
        LabelSmoothing = 0,
    };

    internal VitConfig Clone() => (VitConfig)MemberwiseClone();
}

/// <summary>The [CLS] features, the class logits and, when asked, the attention of every layer.</summary>
internal sealed record VitOutput(Tensor Logits, Tensor Features, IReadOnlyList<Tensor>? Attention);

internal sealed class VitModel : nn.Module
{
    [ComponentName(Name = "stem")]
    private readonly Conv2d? _stem;

    [ComponentName(Name = "stem_down")]
    private readonly ModuleList<Conv2d>? _stemDown;

    [ComponentName(Name = "patch_embed")]
    private readonly Conv2d _patchEmbedding;

    [ComponentName(Name = "cls_token")]
    private readonly Parameter _classToken;

    [ComponentName(Name = "pos_embed")]
    private readonly Parameter _positions;

    [ComponentName(Name = "dropout")]
    private readonly StepDropout _dropout;

    [ComponentName(Name = "encoder")]
    private readonly TransformerEncoder _encoder;

    [ComponentName(Name = "head")]
    private readonly Linear _head;

    public VitModel(VitConfig config, int classes)
        : base("vit")
    {
        config.Validate();
        if (classes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(classes), classes, "A classifier needs at least one class.");
        }
        Config = config.Clone();
        Classes = classes;
        int patches = config.GridSize * config.GridSize;
        if (config.StemChannels > 0)
        {
            _stem = nn.Conv2d(config.Channels, config.StemChannels, 3, stride: 1, padding: 1);
        }
        if (config.StemDownsampling > 0)
        {
            _stemDown = nn.ModuleList(Enumerable.Range(0, config.StemDownsampling)
                .Select(i => nn.Conv2d(config.StemChannels << i, config.StemChannels << (i + 1), 3, stride: 2, padding: 1)).ToArray());
        }
        int embeddingWindow = config.StemDownsampling > 0 ? config.EmbeddingStride : config.EffectivePatchWindow;
        _patchEmbedding = nn.Conv2d(config.StemOutputChannels, config.Width, embeddingWindow,
            stride: config.EmbeddingStride, padding: config.StemDownsampling > 0 ? 0 : config.PatchPadding);
        _classToken = new Parameter(zeros(1, 1, config.Width));
        _positions = new Parameter(zeros(1, patches + 1, config.Width));
        _dropout = new StepDropout(config.Dropout);
        _encoder = new TransformerEncoder("encoder", config.Encoder());
        _head = nn.Linear(config.Width, classes);
        RegisterComponents();
        using (no_grad())
        {
            nn.init.trunc_normal_(_positions, std: 0.02);
            nn.init.trunc_normal_(_classToken, std: 0.02);
            nn.init.zeros_(_head.weight!); // the paper zero-initialises the head
            nn.init.zeros_(_head.bias!);
        }
    }

    public VitConfig Config { get; }

    public int Classes { get; }

    /// <summary>Images (B, C, H, W) with H = W = ImageSize -> logits (B, classes) and [CLS] features (B, D).</summary>
    public VitOutput Forward(Tensor images, bool needAttention = false)
    {
        if (images.dim() != 4 || images.shape[1] != Config.Channels || images.shape[2] != Config.ImageSize || images.shape[3] != Config.ImageSize)
        {
            throw new ArgumentException(
                $"Expected images of shape (batch, {Config.Channels}, {Config.ImageSize}, {Config.ImageSize}); found ({string.Join(", ", images.shape)}).");
        }
        using var scope = NewDisposeScope();
        Tensor x = _dropout.forward(Tokens(images, kept: null));                // (B, N + 1, D)
        StackOutput encoded = _encoder.Forward(x, null, needAttention);       // final LayerNorm included (pre-LN)
        Tensor features = encoded.Hidden.select(1, 0);                         // (B, D): the [CLS] position
        Tensor logits = _head.forward(features);
        return new VitOutput(logits.MoveToOuterDisposeScope(), features.MoveToOuterDisposeScope(),
            encoded.SelfAttentionWeights?.Select(w => w.MoveToOuterDisposeScope()).ToList());
    }

    /// <summary>
    /// The [CLS] token and the patch tokens, each with its position: (B, 1 + N, D), or with <paramref name="kept"/> (B, K)
    /// only the tokens of those patches, (B, 1 + K, D), in that order. Positions are added before patches are dropped, so a
    /// kept token knows where it came from (the masked autoencoder's encoder, He et al. 2022, section 3).
    /// </summary>
    private Tensor Tokens(Tensor images, Tensor? kept)
    {
        long batch = images.shape[0];
        Tensor pixels = _stem is null ? images : F.gelu(_stem.forward(images));      // the hybrid's feature map, or the pixels
        foreach (Conv2d down in _stemDown ?? Enumerable.Empty<Conv2d>())
        {
            pixels = F.gelu(down.forward(pixels));                                   // (B, C 2^i, S / 2^i, S / 2^i)
        }
        Tensor patches = _patchEmbedding.forward(pixels).flatten(2).transpose(1, 2); // (B, D, g, g) -> (B, N, D)
        patches = patches.add(_positions.narrow(1, 1, patches.shape[1]), Scalars.One);
        if (kept is not null)
        {
            patches = patches.gather(1, kept.unsqueeze(-1).expand(-1, -1, patches.shape[2])); // (B, K, D)
        }
        Tensor cls = _classToken.add(_positions.narrow(1, 0, 1), Scalars.One).expand(batch, -1, -1);     // (B, 1, D)
        return cat(new[] { cls, patches }, 1);
    }

    /// <summary>
    /// The encoder's output for the kept patches only (B, 1 + K, D) after the final LayerNorm: what a masked autoencoder
    /// encodes. Null <paramref name="kept"/> encodes every patch.
    /// </summary>
    public Tensor EncodeKept(Tensor images, Tensor? kept)
    {
        using var scope = NewDisposeScope();
        Tensor x = _dropout.forward(Tokens(images, kept));
        return _encoder.Forward(x, null, false).Hidden.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Adapts the model to another image size (fine-tuning at a higher resolution, section 3.2): the learned
    /// position embeddings of the patch grid are interpolated bicubically to the new grid; the [CLS] one is kept.
    /// </summary>
    public void ResizeImages(int imageSize)
    {
        var next = Config.Clone();
        next.ImageSize = imageSize;
        next.Validate();
        int oldGrid = Config.GridSize, newGrid = next.GridSize;
        if (newGrid != oldGrid)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            Tensor cls = _positions.narrow(1, 0, 1);
            Tensor grid = _positions.narrow(1, 1, oldGrid * oldGrid).reshape(1, oldGrid, oldGrid, -1).permute(0, 3, 1, 2); // (1, D, g, g)
            Tensor resized = F.interpolate(grid, new long[] { newGrid, newGrid }, mode: InterpolationMode.Bicubic, align_corners: false)
                .permute(0, 2, 3, 1).reshape(1, newGrid * newGrid, -1);
            // set_ swaps the parameter's storage and shape in place, keeping it the registered parameter.
            Tensor replacement = cat(new[] { cls, resized }, 1).contiguous().DetachFromDisposeScope();
            _positions.set_(replacement);
        }
        Config.ImageSize = imageSize;
    }
}

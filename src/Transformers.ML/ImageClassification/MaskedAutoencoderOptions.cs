namespace Transformers.ML.ImageClassification;

/// <summary>
/// Options of the masked autoencoder (He et al. 2022), self-supervised pretraining of a ViT encoder on unlabelled images:
/// columns, the encoder (a <see cref="VitConfig"/>, the same one a classifier fine-tunes), the light decoder, the masking,
/// input handling, augmentation and training.
/// </summary>
public sealed class MaskedAutoencoderOptions : ImageModelOptions
{
    /// <summary>Creates the options with the paper's optimiser (AdamW, betas 0.9 and 0.95, weight decay 0.05) and warmup + cosine decay.</summary>
    public MaskedAutoencoderOptions()
    {
        Beta2 = 0.95;
        Epochs = 50;
        Augmentation = new ImageAugmentation { RotationDegrees = 0, TranslationFraction = 0, CropMinScale = 0.5, Brightness = 0, Contrast = 0 };
    }

    /// <summary>Width of the decoder, which only pretraining uses (the paper: light, 512 for a 1024-wide encoder). Default 64.</summary>
    public int DecoderWidth { get; set; } = 64;

    /// <summary>Layers of the decoder (the paper: 8; 1 already works). Range 1..32; default 2.</summary>
    public int DecoderDepth { get; set; } = 2;

    /// <summary>Attention heads of the decoder; must divide <see cref="DecoderWidth"/>. Default 4.</summary>
    public int DecoderHeads { get; set; } = 4;

    /// <summary>Fraction of the patches removed from each image (the paper: 0.75). Range (0, 1); default 0.75.</summary>
    public double MaskRatio { get; set; } = 0.75;

    /// <summary>Reconstruct each patch's pixels normalised by that patch's mean and variance (the paper's better target). Default true.</summary>
    public bool NormalizePixelLoss { get; set; } = true;

    internal MaskedAutoencoderOptions Clone(bool keepProgress) => Copy<MaskedAutoencoderOptions>(keepProgress);

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Check(DecoderWidth >= 1 && DecoderHeads >= 1 && DecoderWidth % DecoderHeads == 0, nameof(DecoderWidth), DecoderWidth, $"positive and divisible by DecoderHeads ({DecoderHeads})");
        Check(DecoderDepth is >= 1 and <= 32, nameof(DecoderDepth), DecoderDepth, "in [1, 32]");
        Check(MaskRatio is > 0 and < 1, nameof(MaskRatio), MaskRatio, "in (0, 1)");
        VitConfig encoder = EffectiveModel;
        int kept = (int)Math.Round(encoder.GridSize * encoder.GridSize * (1 - MaskRatio));
        Check(kept >= 1 && kept < encoder.GridSize * encoder.GridSize, nameof(MaskRatio), MaskRatio,
            $"a ratio that keeps at least one of the {encoder.GridSize * encoder.GridSize} patches and removes at least one");
    }
}

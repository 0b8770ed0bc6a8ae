using System.Text.Json.Serialization;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// Options of the masked autoencoder (He et al. 2022), self-supervised pretraining of a ViT encoder on unlabelled images:
/// columns, the encoder (a <see cref="VitConfig"/>, the same one a classifier fine-tunes), the light decoder, the masking,
/// input handling, augmentation and training.
/// </summary>
public sealed class MaskedAutoencoderOptions : TrainingOptions
{
    /// <summary>Creates the options with the paper's optimiser (AdamW, betas 0.9 and 0.95, weight decay 0.05) and warmup + cosine decay.</summary>
    public MaskedAutoencoderOptions()
    {
        LearningRate = 1e-3;
        Schedule = LearningRateScheduleKind.WarmupCosine;
        WarmupSteps = 100;
        MinLearningRateRatio = 0.01;
        WeightDecay = 0.05;
        Beta1 = 0.9;
        Beta2 = 0.95;
        AdamEpsilon = 1e-8;
        GradientClipNorm = 1.0;
        Epochs = 50;
        LogEverySteps = 20;
    }

    /// <summary>Image column: an image (LoadImages), a Text path, or a known-size vector of Single, as the classifier takes. Default "Image".</summary>
    public string ImageColumnName { get; set; } = "Image";

    /// <summary>Output column of the embedding: the mean of the encoder's patch features for the whole (unmasked) image. Default "Embedding".</summary>
    public string EmbeddingColumnName { get; set; } = "Embedding";

    /// <summary>Folder that relative paths of a Text image column are read from; null: the working directory.</summary>
    public string? ImageFolder { get; set; }

    /// <summary>Height of the images in a float-vector image column; null: square.</summary>
    public int? VectorImageHeight { get; set; }

    /// <summary>Width of the images in a float-vector image column; null: length / (channels x height).</summary>
    public int? VectorImageWidth { get; set; }

    /// <summary>The encoder's architecture; null uses <see cref="Preset"/>. A classifier fine-tuned from this model keeps it.</summary>
    public VitConfig? Model { get; set; }

    /// <summary>The encoder's size when <see cref="Model"/> is null. Default <see cref="VitPreset.Small"/>.</summary>
    public VitPreset Preset { get; set; } = VitPreset.Small;

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

    /// <summary>What happens to each image before and after it is resized (as the classifier's option; use the same for both). Default: nothing.</summary>
    public ImagePreprocessing Preprocessing { get; set; } = new();

    /// <summary>Training augmentation (the paper: random resized crops and flips only). Default: flips and crops of 0.5 to 1 of the area.</summary>
    public ImageAugmentation? Augmentation { get; set; } = new() { RotationDegrees = 0, TranslationFraction = 0, CropMinScale = 0.5, Brightness = 0, Contrast = 0 };

    /// <summary>Images per optimizer step. Range 1..65536; default 64.</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>Fraction of the images held out (seeded) for the validation reconstruction loss; 0 turns it off. Range [0, 0.5]; default 0.1.</summary>
    public double ValidationFraction { get; set; } = 0.1;

    /// <summary>Skip images that cannot be read, counting them in the log, instead of failing (default false).</summary>
    public bool SkipUnreadableImages { get; set; }

    /// <summary>Rows embedded together by Transform. Range 1..65536; default 64.</summary>
    public int TransformBatchSize { get; set; } = 64;

    /// <summary>The encoder's architecture in use: <see cref="Model"/>, else the preset's.</summary>
    [JsonIgnore]
    public VitConfig EffectiveModel => (Model ?? ImageClassificationOptions.FromPreset(Preset)).Clone();

    internal MaskedAutoencoderOptions Clone(bool keepProgress)
    {
        var copy = (MaskedAutoencoderOptions)MemberwiseClone();
        copy.Model = Model?.Clone();
        copy.Preprocessing = Preprocessing.Clone();
        if (!keepProgress)
        {
            copy.Progress = null;
        }
        return copy;
    }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Check(!string.IsNullOrWhiteSpace(ImageColumnName), nameof(ImageColumnName), ImageColumnName, "a column name");
        Check(!string.IsNullOrWhiteSpace(EmbeddingColumnName), nameof(EmbeddingColumnName), EmbeddingColumnName, "a column name");
        Check(Enum.IsDefined(Preset), nameof(Preset), Preset, string.Join(", ", Enum.GetNames<VitPreset>()));
        Check(DecoderWidth >= 1 && DecoderHeads >= 1 && DecoderWidth % DecoderHeads == 0, nameof(DecoderWidth), DecoderWidth, $"positive and divisible by DecoderHeads ({DecoderHeads})");
        Check(DecoderDepth is >= 1 and <= 32, nameof(DecoderDepth), DecoderDepth, "in [1, 32]");
        Check(MaskRatio is > 0 and < 1, nameof(MaskRatio), MaskRatio, "in (0, 1)");
        Check(BatchSize is >= 1 and <= 65536, nameof(BatchSize), BatchSize, "[1, 65536]");
        Check(TransformBatchSize is >= 1 and <= 65536, nameof(TransformBatchSize), TransformBatchSize, "[1, 65536]");
        Check(ValidationFraction is >= 0 and <= 0.5, nameof(ValidationFraction), ValidationFraction, "[0, 0.5]");
        Check(VectorImageHeight is null or >= 1, nameof(VectorImageHeight), VectorImageHeight, ">= 1 or null");
        Check(VectorImageWidth is null or >= 1, nameof(VectorImageWidth), VectorImageWidth, ">= 1 or null");
        Check(Preprocessing is not null, nameof(Preprocessing), Preprocessing, "preprocessing options (new ImagePreprocessing() changes nothing)");
        Preprocessing!.Validate();
        Augmentation?.Validate();
        VitConfig encoder = EffectiveModel;
        encoder.Validate();
        int kept = (int)Math.Round(encoder.GridSize * encoder.GridSize * (1 - MaskRatio));
        Check(kept >= 1 && kept < encoder.GridSize * encoder.GridSize, nameof(MaskRatio), MaskRatio,
            $"a ratio that keeps at least one of the {encoder.GridSize * encoder.GridSize} patches and removes at least one");
    }
}

using System.Text.Json.Serialization;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// What the ViT image models (<see cref="ImageClassificationOptions"/>, <see cref="MaskedAutoencoderOptions"/>) share: the
/// image column and how it is read, the embedding column, the encoder's architecture, preprocessing, augmentation, batches
/// and validation, besides the training options.
/// </summary>
public abstract class ImageModelOptions : TrainingOptions
{
    /// <summary>The ViT recipes' shared optimiser settings: AdamW (beta1 0.9, weight decay 0.05), warmup + cosine decay, clipping at 1.</summary>
    private protected ImageModelOptions()
    {
        LearningRate = 1e-3;
        Schedule = LearningRateScheduleKind.WarmupCosine;
        WarmupSteps = 100;
        MinLearningRateRatio = 0.01;
        WeightDecay = 0.05;
        Beta1 = 0.9;
        AdamEpsilon = 1e-8;
        GradientClipNorm = 1.0;
        LogEverySteps = 20;
    }

    /// <summary>
    /// Image column: an image (ML.NET's MLImage, from <c>LoadImages</c>; grayscale or colour, any size), a path (Text,
    /// read from <see cref="ImageFolder"/>), or a vector of floats (pixels, e.g. from <c>ExtractPixels</c>, channel-major).
    /// Every image is resized to the model's image size (area averaging to shrink, bilinear to enlarge; the aspect ratio is not kept), so sizes need not divide by the patch size.
    /// Default "Image".
    /// </summary>
    public string ImageColumnName { get; set; } = "Image";

    /// <summary>Folder that relative paths of a Text image column are read from; null: the working directory.</summary>
    public string? ImageFolder { get; set; }

    /// <summary>Height of the images in a float-vector image column; null: square (side = sqrt(length / channels)).</summary>
    public int? VectorImageHeight { get; set; }

    /// <summary>Width of the images in a float-vector image column; null: length / (channels x height).</summary>
    public int? VectorImageWidth { get; set; }

    /// <summary>
    /// Output column of the image embedding, for any ML.NET trainer, anomaly detector or clustering to follow: the classifier's
    /// [CLS] features after the final LayerNorm, the masked autoencoder's mean of the patch features of the whole (unmasked)
    /// image. Default "Embedding".
    /// </summary>
    public string EmbeddingColumnName { get; set; } = "Embedding";

    /// <summary>Model size. Default <see cref="VitPreset.Small"/>; <see cref="Model"/> overrides it.</summary>
    public VitPreset Preset { get; set; } = VitPreset.Small;

    /// <summary>
    /// Every architecture knob (image size, patch size, channels, width, depth, heads, MLP ratio, dropout); null uses
    /// <see cref="Preset"/>. A classifier fine-tuned from a masked autoencoder keeps the autoencoder's.
    /// </summary>
    public VitConfig? Model { get; set; }

    /// <summary>
    /// What happens to each image before and after it is resized to the model's input (saved with the model; pretrain and
    /// fine-tune with the same). Default: nothing.
    /// </summary>
    public ImagePreprocessing Preprocessing { get; set; } = new();

    /// <summary>
    /// Training augmentation; <see cref="ImageAugmentation.None"/> (or null) for none. Default: the classifier's, the OCT-friendly
    /// defaults of <see cref="ImageAugmentation"/>; the masked autoencoder's, the paper's flips and crops of 0.5 to 1 of the area.
    /// </summary>
    public ImageAugmentation? Augmentation { get; set; } = new();

    /// <summary>Images per optimizer step (before gradient accumulation). Range 1..65536; default 64.</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>
    /// When Fit gets no validation set: the fraction of the training images held out (seeded; the classifier's stratified by
    /// class) for validation and early stopping. 0 turns validation off. Range [0, 0.5]; default 0.1.
    /// </summary>
    public double ValidationFraction { get; set; } = 0.1;

    /// <summary>Skip images that cannot be read (missing or corrupt files), counting them in the log, instead of failing (default false).</summary>
    public bool SkipUnreadableImages { get; set; }

    /// <summary>Rows that Transform runs through the model together. Range 1..65536; default 64.</summary>
    public int TransformBatchSize { get; set; } = 64;

    /// <summary>The architecture in use: <see cref="Model"/>, else the preset's.</summary>
    [JsonIgnore]
    public VitConfig EffectiveModel => (Model ?? FromPreset(Preset)).Clone();

    internal static VitConfig FromPreset(VitPreset preset) => preset switch
    {
        VitPreset.Small => new VitConfig { ImageSize = 64, PatchSize = 8, Channels = 1, Width = 128, Depth = 4, Heads = 4, MlpRatio = 2, Dropout = 0.1 },
        VitPreset.Tiny16 => VitConfig.Tiny16(),
        VitPreset.Small16 => VitConfig.Small16(),
        VitPreset.Base16 => VitConfig.Base16(),
        _ => throw new ArgumentOutOfRangeException(nameof(preset), preset, $"Unknown ViT preset; expected one of {string.Join(", ", Enum.GetNames<VitPreset>())}."),
    };

    /// <summary>A copy whose architecture and preprocessing are copies too; without the progress receiver and the cancellation token (the run's, not the model's) unless <paramref name="keepProgress"/>.</summary>
    private protected T Copy<T>(bool keepProgress) where T : ImageModelOptions
    {
        var copy = (T)MemberwiseClone();
        copy.Model = Model?.Clone();
        copy.Preprocessing = Preprocessing.Clone();
        if (!keepProgress)
        {
            copy.Progress = null;
            copy.Cancellation = default;
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
        Check(BatchSize is >= 1 and <= 65536, nameof(BatchSize), BatchSize, "[1, 65536]");
        Check(TransformBatchSize is >= 1 and <= 65536, nameof(TransformBatchSize), TransformBatchSize, "[1, 65536]");
        Check(ValidationFraction is >= 0 and <= 0.5, nameof(ValidationFraction), ValidationFraction, "[0, 0.5]");
        Check(VectorImageHeight is null or >= 1, nameof(VectorImageHeight), VectorImageHeight, ">= 1 or null");
        Check(VectorImageWidth is null or >= 1, nameof(VectorImageWidth), VectorImageWidth, ">= 1 or null");
        Check(Preprocessing is not null, nameof(Preprocessing), Preprocessing, "preprocessing options (new ImagePreprocessing() changes nothing)");
        Preprocessing!.Validate();
        Augmentation?.Validate();
        EffectiveModel.Validate();
    }
}

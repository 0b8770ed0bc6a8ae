namespace Transformers.ML.ImageClassification;

/// <summary>ViT sizes: a small one for CPUs and the three of the ViT/DeiT papers.</summary>
public enum VitPreset
{
    /// <summary>64x64 grayscale, patch 8, width 128, depth 4, 4 heads (0.8M parameters): trains in minutes on a 2-core CPU (default).</summary>
    Small,

    /// <summary>ViT-Ti/16: 224x224 RGB, width 192, depth 12, 3 heads.</summary>
    Tiny16,

    /// <summary>ViT-S/16: 224x224 RGB, width 384, depth 12, 6 heads.</summary>
    Small16,

    /// <summary>ViT-B/16 of the paper: 224x224 RGB, width 768, depth 12, 12 heads (86M parameters).</summary>
    Base16,
}

/// <summary>How an imbalanced training set is evened out.</summary>
public enum ClassBalance
{
    /// <summary>Every image counts the same (default).</summary>
    None,

    /// <summary>The loss of an image is weighted by the inverse frequency of its class (weights average 1 over the training set).</summary>
    WeightedLoss,

    /// <summary>Each epoch draws its images with replacement, each class equally likely.</summary>
    BalancedSampling,
}

/// <summary>How an image that is not square becomes the model's square input.</summary>
public enum ImageFit
{
    /// <summary>Resize both sides to the model's (the aspect ratio is not kept; every column and row of the image stays). Default.</summary>
    Stretch,

    /// <summary>
    /// Keep the aspect ratio: pad the short side with black to a square, then resize. The ONNX export pads as well; without a
    /// band or wedge masking it needs the images' own size (OnnxExportOptions.InputHeight and InputWidth), since images
    /// resized to a square before the graph have lost their aspect ratio.
    /// </summary>
    Pad,
}

/// <summary>
/// What happens to each image, at its own resolution, before it is resized to the model's input, and after. Applied the same
/// way in training, Transform, PredictionEngine and Explain, and saved with the model. <see cref="RetinalOct"/> is the
/// setting measured best on real OCT B-scans; the defaults change nothing.
/// </summary>
public sealed class ImagePreprocessing
{
    /// <summary>
    /// Set flat saturated regions to black (pixels that are bright, 245 of 255 or more, with every pixel around them bright
    /// too): the white wedges an OCT scanner leaves where it registered the scan, which hold no anatomy and mark the scanner,
    /// not the disease. Speckled tissue, however bright, is left alone. Default false.
    /// </summary>
    public bool MaskWedges { get; set; }

    /// <summary>
    /// Keep only a band of rows of this fraction of the image's height, centred on its bright tissue (for an OCT B-scan, the
    /// retina; the dark vitreous above and the choroid below are cut). 1 keeps every row. Range (0, 1]; default 1.
    /// </summary>
    public double BandHeight { get; set; } = 1;

    /// <summary>How a non-square image (or band) becomes square. Default <see cref="ImageFit.Stretch"/>.</summary>
    public ImageFit Fit { get; set; } = ImageFit.Stretch;

    /// <summary>
    /// After the resize, give each image zero mean and unit variance (scanners differ in brightness and gain); otherwise the
    /// model normalises by the training images' per-channel mean and standard deviation only. Default false.
    /// </summary>
    public bool PerImageNormalization { get; set; }

    /// <summary>The preprocessing chosen for real retinal OCT scans by the benchmark's cross-validation.</summary>
    public static ImagePreprocessing RetinalOct => new() { MaskWedges = true, BandHeight = 0.6, Fit = ImageFit.Stretch, PerImageNormalization = true };

    /// <summary>True when nothing is changed.</summary>
    internal bool IsIdentity => !MaskWedges && BandHeight >= 1 && Fit == ImageFit.Stretch && !PerImageNormalization;

    internal ImagePreprocessing Clone() => (ImagePreprocessing)MemberwiseClone();

    internal void Validate()
    {
        if (!(BandHeight is > 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(BandHeight), BandHeight, $"Preprocessing option {nameof(BandHeight)} must be in (0, 1]; found {BandHeight}.");
        }
        if (!Enum.IsDefined(Fit))
        {
            throw new ArgumentOutOfRangeException(nameof(Fit), Fit, $"Preprocessing option {nameof(Fit)} must be one of {string.Join(", ", Enum.GetNames<ImageFit>())}; found {Fit}.");
        }
    }
}

/// <summary>
/// Random changes applied to training images (never at validation or Transform): all drawn per image, combined into one
/// affine resampling. Defaults suit retinal OCT B-scans (left and right eyes mirror each other; small tilts and shifts).
/// </summary>
public sealed class ImageAugmentation
{
    /// <summary>Mirror left-right with probability 0.5. Default true.</summary>
    public bool HorizontalFlip { get; set; } = true;

    /// <summary>Largest rotation, degrees (uniform in [-r, r]). Range [0, 180]; default 5.</summary>
    public double RotationDegrees { get; set; } = 5;

    /// <summary>Largest shift, as a fraction of the image side (each axis uniform in [-t, t]). Range [0, 0.5]; default 0.05.</summary>
    public double TranslationFraction { get; set; } = 0.05;

    /// <summary>Random resized crop: the smallest fraction of the image area kept (the crop is resized back to the full size). 1 turns it off. Range (0, 1]; default 0.8.</summary>
    public double CropMinScale { get; set; } = 0.8;

    /// <summary>Largest brightness change, as a fraction of the pixel range (added). Range [0, 1]; default 0.1.</summary>
    public double Brightness { get; set; } = 0.1;

    /// <summary>Largest contrast change, as a factor around the image mean (multiplied by 1 +- c). Range [0, 1]; default 0.1.</summary>
    public double Contrast { get; set; } = 0.1;

    /// <summary>
    /// Largest standard deviation of Gaussian noise added to every pixel, as a fraction of the pixel range (each image draws its
    /// own level in [0, n]): the grain of OCT speckle, which differs between scanners and settings. Range [0, 1]; default 0.
    /// </summary>
    public double Noise { get; set; }

    /// <summary>No augmentation at all.</summary>
    public static ImageAugmentation None => new() { HorizontalFlip = false, RotationDegrees = 0, TranslationFraction = 0, CropMinScale = 1, Brightness = 0, Contrast = 0, Noise = 0 };

    internal bool IsIdentity => !HorizontalFlip && RotationDegrees == 0 && TranslationFraction == 0 && CropMinScale == 1 && Brightness == 0 && Contrast == 0 && Noise == 0;

    internal void Validate()
    {
        static void Check(bool ok, string name, double value, string range)
        {
            if (!ok)
            {
                throw new ArgumentOutOfRangeException(name, value, $"Augmentation option {name} must be in {range}; found {value}.");
            }
        }
        Check(RotationDegrees is >= 0 and <= 180, nameof(RotationDegrees), RotationDegrees, "[0, 180]");
        Check(TranslationFraction is >= 0 and <= 0.5, nameof(TranslationFraction), TranslationFraction, "[0, 0.5]");
        Check(CropMinScale is > 0 and <= 1, nameof(CropMinScale), CropMinScale, "(0, 1]");
        Check(Brightness is >= 0 and <= 1, nameof(Brightness), Brightness, "[0, 1]");
        Check(Contrast is >= 0 and <= 1, nameof(Contrast), Contrast, "[0, 1]");
        Check(Noise is >= 0 and <= 1, nameof(Noise), Noise, "[0, 1]");
    }
}

/// <summary>Options of the ViT image classifier: columns, model, augmentation, class balance, validation and training.</summary>
public sealed class ImageClassificationOptions : ImageModelOptions
{
    /// <summary>Creates the options with the ViT recipe: AdamW (0.9, 0.999, weight decay 0.05), warmup + cosine decay, clipping at 1.</summary>
    public ImageClassificationOptions()
    {
        Beta2 = 0.999;
        Epochs = 10;
    }

    /// <summary>
    /// Label column: a Key (from <c>MapValueToKey</c>; multiclass, output Score vector and PredictedLabel key) or a
    /// Boolean (binary, e.g. abnormal = true; output Score, Probability, PredictedLabel Boolean). Default "Label".
    /// </summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Output column of the class scores: a vector of probabilities (multiclass) or the logit (binary). Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of the predicted class: a key like the label (multiclass) or a Boolean (binary). Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>Output column of the probability of the positive class (binary only). Default "Probability".</summary>
    public string ProbabilityColumnName { get; set; } = "Probability";

    /// <summary>
    /// Also output the attention of the [CLS] token (column "ClsAttention": layers x heads x (patches + 1), row-major) and the
    /// attention rollout over the patch grid (column "AttentionRollout": grid x grid). Slower (no fused attention). Default false.
    /// </summary>
    public bool OutputAttention { get; set; }

    /// <summary>How an imbalanced training set is evened out. Default <see cref="ClassBalance.None"/>.</summary>
    public ClassBalance ClassBalance { get; set; } = ClassBalance.None;

    /// <summary>Label smoothing of the cross-entropy. Range [0, 1); default 0.1.</summary>
    public double LabelSmoothing { get; set; } = 0.1;

    /// <summary>
    /// At Transform (and validation), average the class probabilities of each image and of its left-right mirror (test-time
    /// augmentation; a left eye's B-scan mirrors a right eye's). Twice the inference work. Saved with the model. Default false.
    /// </summary>
    public bool TestTimeFlip { get; set; }

    /// <summary>
    /// The recipe for real retinal OCT B-scans (Kermany's OCT2017 classes CNV, DME, DRUSEN, NORMAL: grayscale, wide, with
    /// registration wedges) on a CPU, chosen by patient-grouped 5-fold cross-validation on 648 real scans in the benchmark
    /// (BENCHMARKS.md): wedges masked, the retina band (0.6 of the height) stretched to 64 x 64, per-image normalisation, the
    /// Small ViT (patch 8, width 128, depth 4), the default augmentation (flips, small rotations, shifts, crops, brightness and
    /// contrast), AdamW with warmup and cosine decay planned over <paramref name="trainingTime"/>. Training time is what buys
    /// accuracy here: on two cores, 1 minute gave 0.60, 3 minutes 0.77, 6 minutes 0.89 on the first fold.
    /// </summary>
    public static ImageClassificationOptions RetinalOct(TimeSpan trainingTime) => new()
    {
        Model = FromPreset(VitPreset.Small),
        Preprocessing = ImagePreprocessing.RetinalOct,
        Augmentation = new ImageAugmentation(),
        MaxTrainingTime = trainingTime,
    };

    /// <summary>A copy for a trained model (no progress receiver).</summary>
    internal ImageClassificationOptions Clone() => Copy<ImageClassificationOptions>(keepProgress: false);

    /// <summary>A copy for an estimator: later changes to these options do not reach it.</summary>
    internal ImageClassificationOptions CloneKeepingProgress() => Copy<ImageClassificationOptions>(keepProgress: true);

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        foreach ((string name, string? value) in new[] { (nameof(LabelColumnName), LabelColumnName), (nameof(ScoreColumnName), ScoreColumnName),
            (nameof(PredictedLabelColumnName), PredictedLabelColumnName), (nameof(ProbabilityColumnName), ProbabilityColumnName) })
        {
            Check(!string.IsNullOrWhiteSpace(value), name, value, "a column name");
        }
        Check(Enum.IsDefined(ClassBalance), nameof(ClassBalance), ClassBalance, string.Join(", ", Enum.GetNames<ClassBalance>()));
        Check(LabelSmoothing is >= 0 and < 1, nameof(LabelSmoothing), LabelSmoothing, "[0, 1)");
    }
}

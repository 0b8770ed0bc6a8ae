using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Training;
using TorchSharp;
using static TorchSharp.torch;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// A trained ViT as an ML.NET transformer: Transform adds the columns of an ML.NET classifier (so that
/// <c>MulticlassClassification.Evaluate</c> or <c>BinaryClassification.Evaluate</c> work unchanged) and the image embedding,
/// classifying in batches; PredictionEngine works; the model also explains (attention), saves and loads.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | image (<see cref="ImageModelTransformer.ImageColumnName"/>) | image, Text path or vector of Single | input |
/// | Score | vector of Single (multiclass: class probabilities, slot names = classes) or Single (binary: logit) | output |
/// | Probability | Single | binary only: probability of true |
/// | PredictedLabel | key (multiclass, key values = classes) or Boolean (binary) | output |
/// | Embedding | vector of Single (width) | output: the [CLS] features |
/// | ClsAttention, AttentionRollout | vector of Single | with OutputAttention: layers x heads x (patches + 1), and grid x grid |
/// Rows whose image cannot be read fail with a message naming the row and file, or, with SkipUnreadableImages, get NaN scores
/// and a missing PredictedLabel (key 0; false when binary).
/// </remarks>
public sealed class ImageClassificationTransformer : ImageModelTransformer
{
    internal const string Capability = "image-classification";

    internal ImageClassificationTransformer(VitClassifier classifier, ImageClassificationOptions options, Action<string>? log)
        : base(options, log, "LoadImageClassification", ", or export to ONNX for an ML.NET pipeline that Model.Save can hold")
    {
        Classifier = classifier;
        Options = options;
    }

    internal VitClassifier Classifier { get; }

    /// <summary>The options the model was trained with (columns, input handling); changes apply to later Transform calls.</summary>
    internal ImageClassificationOptions Options { get; }

    /// <summary>The label column the model was trained on (checked, when present at Transform, for classes unseen in training).</summary>
    public string LabelColumnName => Options.LabelColumnName;

    /// <summary>The classes, in the order of the Score vector (key order); "False", "True" for a binary classifier.</summary>
    public IReadOnlyList<string> ClassNames => Classifier.ClassNames;

    /// <summary>True when trained on a Boolean label (Score, Probability, PredictedLabel as ML.NET's binary classifiers).</summary>
    public bool IsBinary => Classifier.Binary;

    /// <summary>Parameters of the model.</summary>
    public long ParameterCount => Classifier.Model.parameters().Sum(p => p.numel());

    /// <summary>Also output ClsAttention and AttentionRollout (slower).</summary>
    public bool OutputAttention { get => Options.OutputAttention; set => Options.OutputAttention = value; }

    /// <summary>Transform averages the probabilities of each image and its left-right mirror (see <see cref="ImageClassificationOptions.TestTimeFlip"/>).</summary>
    public bool TestTimeFlip
    {
        get => Options.TestTimeFlip;
        set => Options.TestTimeFlip = Classifier.TestTimeFlip = value;
    }

    private protected override VitConfig Encoder => Classifier.Model.Config;

    private protected override string MissingOutputs => "NaN scores and a missing PredictedLabel";

    /// <summary>
    /// The attention of the [CLS] token for one image: per layer and head, and the rollout over the patch grid (sums to 1),
    /// e.g. for <see cref="AttentionHeatmap.Save(Microsoft.ML.Data.MLImage, AttentionMap, string, float)"/>.
    /// </summary>
    public AttentionMap Explain(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var scope = NewDisposeScope();
        var input = new ImageInput(SingleImageSchema, "Image", Classifier.Model.Config, null, null, null, Options.Preprocessing);
        (Tensor pixels, ImageRegion region) = input.ToTensorAndRegion(image, 0);
        VitPredictions predictions = Classifier.Predict(pixels.unsqueeze(0), needAttention: true);
        VitConfig config = Classifier.Model.Config;
        return new AttentionMap(config.GridSize, config.Depth, config.Heads, predictions.Rollout![0], predictions.ClsAttention![0], predictions.Probabilities[0])
        {
            Region = region,
        };
    }

    private static readonly DataViewSchema SingleImageSchema = BuildImageSchema();

    private static DataViewSchema BuildImageSchema()
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn("Image", new Microsoft.ML.Transforms.Image.ImageDataViewType());
        return builder.ToSchema();
    }

    /// <summary>Writes the model (configuration, classes, normalisation, column settings, weights) to one safetensors file, atomically.</summary>
    public void Save(string path)
    {
        var columns = new SavedColumns
        {
            Label = Options.LabelColumnName, Score = Options.ScoreColumnName, PredictedLabel = Options.PredictedLabelColumnName,
            Probability = Options.ProbabilityColumnName, OutputAttention = Options.OutputAttention, TestTimeFlip = Options.TestTimeFlip,
        };
        columns.From(Options);
        ImageModelFile.Save(path, Capability, Classifier.Model.Config, Classifier.Model, Classifier.Mean, Classifier.Std, Options.Preprocessing, "options", columns,
            new Dictionary<string, string>
            {
                ["classes"] = JsonSerializer.Serialize(Classifier.ClassNames),
                ["binary"] = Classifier.Binary ? "true" : "false",
            });
    }

    private sealed class SavedColumns : ImageModelFile.Columns
    {
        public string Label { get; set; } = "Label";
        public string Score { get; set; } = "Score";
        public string PredictedLabel { get; set; } = "PredictedLabel";
        public string Probability { get; set; } = "Probability";
        public bool OutputAttention { get; set; }
        public bool TestTimeFlip { get; set; }
    }

    internal static ImageClassificationTransformer Load(string path, string device, Action<string>? log)
    {
        Device target = DeviceSelector.Resolve(device, allowCpuFallback: false, log);
        using ModelFileContents contents = ModelFile.Load(path, Capability);
        (VitConfig config, float[] mean, float[] std, ImagePreprocessing preprocessing) = ImageModelFile.Read(contents);
        string[] classes = contents.Json<string[]>("classes");
        bool binary = (contents.Metadata.TryGetValue("binary", out string? b) ? b
            : throw new InvalidDataException($"'{path}' has no 'binary' entry in its metadata; it was not written by ImageClassificationTransformer.Save.")) == "true";
        contents.Parse("classes", () => classes.Length >= 2 && classes.All(c => c is not null) && (!binary || classes.Length == 2)
            ? true : throw new FormatException($"{classes.Length} classes{(binary ? " for a binary model" : "")}"));
        SavedColumns columns = ImageModelFile.ReadColumns<SavedColumns>(contents, "options");
        var model = new VitModel(config, binary ? 2 : classes.Length);
        ModelFile.LoadForInference(contents, model, target, d => model.Forward(ImageModelFile.Black(config, d)).Logits);
        var options = new ImageClassificationOptions
        {
            LabelColumnName = columns.Label, ScoreColumnName = columns.Score, PredictedLabelColumnName = columns.PredictedLabel,
            ProbabilityColumnName = columns.Probability, OutputAttention = columns.OutputAttention,
            Model = config, Preprocessing = preprocessing, TestTimeFlip = columns.TestTimeFlip,
        };
        columns.ApplyTo(options);
        return new ImageClassificationTransformer(new VitClassifier(model, target, classes, binary, mean, std) { TestTimeFlip = columns.TestTimeFlip }, options, log);
    }

    /// <summary>
    /// Exports the classifier to ONNX (opset 17): input "pixels" (batch, 3, H, W) RGB in [0, 1] (or the model's channels),
    /// (H, W) = <see cref="OnnxInputSize"/>, outputs "logits", "probabilities" (batch, classes) and "embedding" (batch,
    /// width); preprocessing and normalisation inside; classes and configuration in the model's metadata. For ML.NET:
    /// LoadImages -> ResizeImages(W, H) -> ExtractPixels("pixels", scaleImage: 1/255) -> ApplyOnnxModel. Written atomically.
    /// </summary>
    public void ExportToOnnx(string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        OnnxGraph.Save(VitOnnxExport.Build(Classifier, options ?? new OnnxExportOptions(), Options.Preprocessing), path);
    }

    /// <summary>Exports the classifier to ONNX into a stream (see <see cref="ExportToOnnx(string, OnnxExportOptions?)"/>).</summary>
    public void ExportToOnnx(Stream stream, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Google.Protobuf.MessageExtensions.WriteTo(VitOnnxExport.Build(Classifier, options ?? new OnnxExportOptions(), Options.Preprocessing), stream);
    }

    /// <summary>
    /// The (height, width) of the "pixels" input of <see cref="ExportToOnnx(string, OnnxExportOptions?)"/>, the size to
    /// ResizeImages to before it: <see cref="OnnxExportOptions.InputHeight"/> x <see cref="OnnxExportOptions.InputWidth"/>
    /// when set; else the model's side, or, when its preprocessing masks wedges or crops a band, the size the graph
    /// preprocesses at. A model that pads images to a square (<see cref="ImageFit.Pad"/>) without a band needs those
    /// options (the images' own size, whose aspect ratio the graph keeps as the model does); without them this throws.
    /// </summary>
    public (int Height, int Width) OnnxInputSize(OnnxExportOptions? options = null) =>
        VitOnnxExport.InputSizeFor(Options.Preprocessing, options, options?.ImageSize ?? Config.ImageSize);

    /// <summary>Frees the model's tensors.</summary>
    public override void Dispose() => Classifier.Dispose();

    /// <summary>The columns Transform adds, with the annotations ML.NET's evaluators and MapKeyToValue read.</summary>
    private protected override IReadOnlyList<OutputColumn> OutputColumns()
    {
        int k = ClassNames.Count;
        VitConfig config = Classifier.Model.Config;
        var columns = new List<OutputColumn>();
        if (IsBinary)
        {
            columns.Add(new OutputColumn(Options.ScoreColumnName, NumberDataViewType.Single, ScoreAnnotations("BinaryClassification", null)));
            columns.Add(new OutputColumn(Options.ProbabilityColumnName, NumberDataViewType.Single, ScoreAnnotations("BinaryClassification", "Probability")));
            columns.Add(new OutputColumn(Options.PredictedLabelColumnName, BooleanDataViewType.Instance, ScoreAnnotations("BinaryClassification", "PredictedLabel")));
        }
        else
        {
            columns.Add(new OutputColumn(Options.ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, k), SlotNames(ClassNames, ScoreAnnotations("MulticlassClassification", null))));
            var keyValues = new DataViewSchema.Annotations.Builder();
            keyValues.Add(KeyValuesKind, new VectorDataViewType(TextDataViewType.Instance, k), TextVector(ClassNames));
            keyValues.Add(ScoreAnnotations("MulticlassClassification", "PredictedLabel"), _ => true);
            columns.Add(new OutputColumn(Options.PredictedLabelColumnName, new KeyDataViewType(typeof(uint), k), keyValues.ToAnnotations()));
        }
        columns.Add(new OutputColumn(Options.EmbeddingColumnName, new VectorDataViewType(NumberDataViewType.Single, config.Width)));
        if (Options.OutputAttention)
        {
            int tokens = config.GridSize * config.GridSize + 1;
            columns.Add(new OutputColumn(ClsAttentionColumn, new VectorDataViewType(NumberDataViewType.Single, config.Depth, config.Heads, tokens)));
            columns.Add(new OutputColumn(RolloutColumn, new VectorDataViewType(NumberDataViewType.Single, config.GridSize, config.GridSize)));
        }
        return columns;
    }

    /// <summary>Name of the [CLS] attention column (with OutputAttention).</summary>
    public const string ClsAttentionColumn = "ClsAttention";

    /// <summary>Name of the attention rollout column (with OutputAttention).</summary>
    public const string RolloutColumn = "AttentionRollout";

    // ML.NET's annotation kinds (AnnotationUtils.Kinds is internal; the strings are part of its saved-model format).
    private const string KeyValuesKind = "KeyValues";
    private const string SlotNamesKind = "SlotNames";

    private static ValueGetter<VBuffer<ReadOnlyMemory<char>>> TextVector(IReadOnlyList<string> values) =>
        (ref VBuffer<ReadOnlyMemory<char>> destination) => destination = new VBuffer<ReadOnlyMemory<char>>(values.Count, values.Select(v => v.AsMemory()).ToArray());

    private static DataViewSchema.Annotations SlotNames(IReadOnlyList<string> names, DataViewSchema.Annotations others)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(SlotNamesKind, new VectorDataViewType(TextDataViewType.Instance, names.Count), TextVector(names));
        builder.Add(others, _ => true);
        return builder.ToAnnotations();
    }

    /// <summary>The annotations ML.NET's scorers put on their columns (score column kind and value kind), so tools that look for them find them.</summary>
    private static DataViewSchema.Annotations ScoreAnnotations(string kind, string? valueKind)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add("ScoreColumnKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = kind.AsMemory());
        builder.Add("ScoreValueKind", TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = (valueKind ?? "Score").AsMemory());
        return builder.ToAnnotations();
    }

    /// <summary>When the data carries the training label as a key, its classes must be the model's, in the same order.</summary>
    private protected override void CheckInput(DataViewSchema schema)
    {
        DataViewSchema.Column? label = schema.GetColumnOrNull(Options.LabelColumnName);
        if (IsBinary || label is not { Type: KeyDataViewType } column || !column.HasKeyValues())
        {
            return;
        }
        string[] names = LabelInfo.Of(schema, column.Name).Names;
        if (!names.SequenceEqual(ClassNames))
        {
            string[] unseen = names.Except(ClassNames).ToArray();
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Label column '{column.Name}' has the classes [{string.Join(", ", names)}], but the model was trained on [{string.Join(", ", ClassNames)}]" +
                (unseen.Length > 0 ? $"; unseen in training: {string.Join(", ", unseen)}" : "; same classes in another order") +
                ". Map the labels with the MapValueToKey fitted on the training data (fit it once, on the training set, and reuse it).");
        }
    }

    private protected override object[][] Predict(Tensor images)
    {
        VitPredictions predictions = Classifier.Predict(images, Options.OutputAttention);
        var rows = new object[predictions.Probabilities.Length][];
        for (int j = 0; j < rows.Length; j++)
        {
            float[] p = predictions.Probabilities[j];
            var row = new List<object>();
            if (IsBinary)
            {
                // Score is the logit of "true" (log p1 - log p0), as ML.NET's binary trainers; Probability = sigmoid(Score).
                row.Add((float)(Math.Log(Math.Max(p[1], 1e-30)) - Math.Log(Math.Max(p[0], 1e-30))));
                row.Add(p[1]);
                row.Add(p[1] > 0.5f);
            }
            else
            {
                row.Add(new VBuffer<float>(p.Length, p));
                row.Add((uint)(Array.IndexOf(p, p.Max()) + 1)); // keys count from 1; 0 is missing
            }
            row.Add(new VBuffer<float>(predictions.Embeddings[j].Length, predictions.Embeddings[j]));
            if (Options.OutputAttention)
            {
                row.Add(new VBuffer<float>(predictions.ClsAttention![j].Length, predictions.ClsAttention[j]));
                row.Add(new VBuffer<float>(predictions.Rollout![j].Length, predictions.Rollout[j]));
            }
            rows[j] = row.ToArray();
        }
        return rows;
    }

    private protected override object[] MissingRow()
    {
        static VBuffer<float> NaNs(int n) => new(n, Enumerable.Repeat(float.NaN, n).ToArray());
        VitConfig config = Classifier.Model.Config;
        var row = new List<object>();
        if (IsBinary)
        {
            row.AddRange(new object[] { float.NaN, float.NaN, false });
        }
        else
        {
            row.AddRange(new object[] { NaNs(ClassNames.Count), 0u });
        }
        row.Add(NaNs(config.Width));
        if (Options.OutputAttention)
        {
            row.Add(NaNs(config.Depth * config.Heads * (config.GridSize * config.GridSize + 1)));
            row.Add(NaNs(config.GridSize * config.GridSize));
        }
        return row.ToArray();
    }
}

/// <summary>A row's image, converted to the model's input, or why it could not be.</summary>
internal readonly record struct ImageValue(Tensor? Pixels, Exception? Error)
{
    /// <summary>Reads and converts the image of the current row; a failure is thrown, or kept when <paramref name="skipUnreadable"/>.</summary>
    public static Func<ImageValue> Reader(ImageInput input, DataViewRow row, bool skipUnreadable)
    {
        Func<object?> getter = input.Getter(row);
        return () =>
        {
            try
            {
                return new ImageValue(input.ToTensor(getter(), row.Position), null);
            }
            catch (Exception e) when (skipUnreadable && e is not OutOfMemoryException and not InvalidOperationException)
            {
                return new ImageValue(null, e);
            }
            catch (Exception e) when (e is not UnreadableImageException and not OutOfMemoryException and not InvalidOperationException)
            {
                throw new UnreadableImageException($"The image in row {row.Position} of column '{input.Column.Name}' could not be read: {e.Message}", e);
            }
        };
    }
}

/// <summary>A rectangle of an image, in pixels; it may reach outside the image (padding).</summary>
/// <param name="X">Left edge.</param>
/// <param name="Y">Top edge.</param>
/// <param name="Width">Width.</param>
/// <param name="Height">Height.</param>
public readonly record struct ImageRegion(int X, int Y, int Width, int Height);

/// <summary>Where a ViT looked: the attention of its [CLS] token for one image.</summary>
/// <param name="GridSize">Patches per side.</param>
/// <param name="Layers">Encoder layers.</param>
/// <param name="Heads">Heads per layer.</param>
/// <param name="Rollout">Attention rollout over the grid, row-major (GridSize x GridSize), summing to 1.</param>
/// <param name="ClsAttention">[CLS] attention per layer, head and token (token 0 is [CLS] itself), row-major.</param>
/// <param name="Probabilities">The class probabilities of the image.</param>
public sealed record AttentionMap(int GridSize, int Layers, int Heads, float[] Rollout, float[] ClsAttention, float[] Probabilities)
{
    /// <summary>The part of the original image that the patch grid covers (after preprocessing's band crop or padding); null: all of it.</summary>
    public ImageRegion? Region { get; init; }

    /// <summary>The [CLS] attention of one layer and head over the patch grid (GridSize x GridSize, row-major).</summary>
    public float[] Head(int layer, int head)
    {
        if (layer < 0 || layer >= Layers || head < 0 || head >= Heads)
        {
            throw new ArgumentOutOfRangeException(nameof(layer), $"Layer {layer} and head {head} must be in [0, {Layers}) and [0, {Heads}).");
        }
        int tokens = GridSize * GridSize + 1;
        return ClsAttention.AsSpan((layer * Heads + head) * tokens + 1, tokens - 1).ToArray();
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// Trains a Vision Transformer (Dosovitskiy et al. 2020) on an image column and a label column, and returns an
/// <see cref="ImageClassificationTransformer"/> whose output columns are those of ML.NET's classifiers.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | label (<see cref="ImageClassificationOptions.LabelColumnName"/>) | Key (multiclass) or Boolean (binary) | training only |
/// | image (<see cref="ImageModelOptions.ImageColumnName"/>) | image (LoadImages), Text path, or known-size vector of Single | |
/// Rows with a missing label (key 0) are skipped and counted in the log.
/// </remarks>
public sealed class ImageClassificationEstimator : IEstimator<ImageClassificationTransformer>
{
    private readonly MLContext _context;
    private readonly ImageClassificationOptions _options;
    private readonly VitModel? _baseModel;

    /// <param name="baseModel">The ViT to start from: a classifier's, or a masked autoencoder's encoder; null trains from scratch.</param>
    internal ImageClassificationEstimator(MLContext context, ImageClassificationOptions options, VitModel? baseModel = null)
    {
        _context = context;
        _options = options;
        _baseModel = baseModel;
        options.Validate();
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => OutputShapes.Classifier(_context, inputSchema, _options);

    /// <summary>Trains on <paramref name="train"/>; validation on a stratified <see cref="ImageModelOptions.ValidationFraction"/> of it.</summary>
    public ImageClassificationTransformer Fit(IDataView train) => Fit(train, null);

    /// <summary>Trains on <paramref name="train"/>; validation loss and accuracy (and early stopping, when set) on <paramref name="validation"/>.</summary>
    public ImageClassificationTransformer Fit(IDataView train, IDataView? validation)
    {
        ArgumentNullException.ThrowIfNull(train);
        var recorder = new EpochRecorder(_options.Progress, _options.CurvesPath, "Image classification");
        using var reporter = new TrainingReporter(_context, "ImageClassification", recorder);
        Action<string>? log = TrainingReporter.LogTo(_context, "ImageClassification");
        Device device = TrainingSetup.Prepare(_options, reporter);

        LabelInfo labels = LabelInfo.Of(train.Schema, _options.LabelColumnName);
        VitConfig config = _baseModel?.Config.Clone() ?? _options.EffectiveModel;
        if (_baseModel is not null && _options.Model is not null)
        {
            config.ImageSize = _options.Model.ImageSize; // fine-tuning at another resolution: positions are interpolated
            config.Validate();
        }

        ImageSet all = ReadImages(train, labels, config, reporter, "training");
        ImageSet trainSet, validationSet;
        if (validation is not null)
        {
            LabelInfo validationLabels = LabelInfo.Of(validation.Schema, _options.LabelColumnName);
            validationLabels.CheckSameClasses(labels);
            trainSet = all;
            validationSet = ReadImages(validation, labels, config, reporter, "validation");
        }
        else
        {
            (trainSet, validationSet) = StratifiedSplit(all, _options.ValidationFraction, _options.Seed);
            if (!ReferenceEquals(all, trainSet))
            {
                all.Dispose();
            }
        }
        using (trainSet)
        using (validationSet)
        {
            int[] present = trainSet.Labels.Distinct().Select(l => (int)l).Order().ToArray();
            if (present.Length < 2)
            {
                throw new InvalidOperationException(
                    $"The training data has images of one class only ('{labels.Names[present.Single()]}' in column '{_options.LabelColumnName}'): a classifier needs at least two classes.");
            }
            reporter.Info($"Training on {trainSet.Count} images ({string.Join(", ", present.Select(c => $"{labels.Names[c]}: {trainSet.Labels.Count(l => l == c)}"))}); validating on {validationSet.Count}.");

            (float[] mean, float[] std, double range) = Statistics(trainSet.Images);
            VitModel model = BuildModel(config, labels.Classes, log);
            model.to(device);
            var classifier = new VitClassifier(model, device, labels.Names, labels.Binary, mean, std) { TestTimeFlip = _options.TestTimeFlip };
            ImageAugmenter? augmenter = _options.Augmentation is { IsIdentity: false } a ? new ImageAugmenter(a, range) : null;
            var task = new ImageClassificationTask(classifier, trainSet, validationSet.Count > 0 ? validationSet : null, _options.BatchSize,
                _options.LabelSmoothing, _options.ClassBalance, augmenter);
            ImageClassificationOptions options = _options.Clone();
            options.Model = config;
            new TrainingLoop<int[]>(model, _options, task, reporter, config.Width, System.Text.Json.JsonSerializer.Serialize(config)).Run();
            return new ImageClassificationTransformer(classifier, options, log) { EpochReports = recorder.Epochs, TrainingReports = recorder.All };
        }
    }

    private VitModel BuildModel(VitConfig config, int classes, Action<string>? log)
    {
        VitModel model = TrainingSetup.Seeded(_options, () => new VitModel(config, classes));
        if (_baseModel is null)
        {
            return model;
        }
        // Fine-tuning: the base model's weights; a new (zero) head when the classes differ; positions interpolated to the new size.
        VitModel source = _baseModel;
        using var noGrad = no_grad();
        var baseConfig = source.Config.Clone();
        var copy = new VitModel(baseConfig, source.Classes);
        ModelFile.LoadInto(copy, ModuleState.Of(source), "the base model");
        copy.ResizeImages(config.ImageSize);
        Dictionary<string, Tensor> target = ModuleState.Of(model);
        foreach ((string name, Tensor value) in ModuleState.Of(copy))
        {
            if (target[name].shape.SequenceEqual(value.shape))
            {
                target[name].copy_(value);
            }
            else
            {
                log?.Invoke($"Fine-tuning: '{name}' starts anew ({string.Join("x", value.shape)} in the base model, {string.Join("x", target[name].shape)} now).");
            }
        }
        copy.Dispose();
        return model;
    }

    /// <summary>Per-channel mean and standard deviation of the images, and the range of their values.</summary>
    internal static (float[] Mean, float[] Std, double Range) Statistics(Tensor images)
    {
        using var scope = NewDisposeScope();
        Tensor perChannel = images.transpose(0, 1).flatten(1).to(ScalarType.Float64); // (C, N*S*S)
        float[] mean = perChannel.mean(new long[] { 1 }).to(ScalarType.Float32).data<float>().ToArray();
        float[] std = perChannel.std(1).to(ScalarType.Float32).data<float>().Select(s => s > 1e-6f ? s : 1f).ToArray();
        double range = (images.max() - images.min()).item<float>();
        return (mean, std, range);
    }

    /// <summary>Holds out a fraction of each class (at least one image of a class with two or more), seeded.</summary>
    internal static (ImageSet Train, ImageSet Validation) StratifiedSplit(ImageSet all, double fraction, int seed)
    {
        if (fraction <= 0)
        {
            return (all, new ImageSet(zeros(0, all.Images.shape[1], all.Images.shape[2], all.Images.shape[3]), Array.Empty<long>()));
        }
        var random = new Random(seed);
        var train = new List<long>();
        var validation = new List<long>();
        foreach (var group in Enumerable.Range(0, all.Count).GroupBy(i => all.Labels[i]).OrderBy(g => g.Key))
        {
            long[] members = group.Select(i => (long)i).ToArray();
            random.Shuffle(members);
            int held = members.Length < 2 ? 0 : Math.Max(1, (int)Math.Round(members.Length * fraction));
            validation.AddRange(members.Take(held));
            train.AddRange(members.Skip(held));
        }
        train.Sort();
        validation.Sort();
        ImageSet Take(List<long> rows)
        {
            using Tensor index = tensor(rows.ToArray());
            return new ImageSet(all.Images.index_select(0, index), rows.Select(r => all.Labels[r]).ToArray());
        }
        return (Take(train), Take(validation));
    }

    /// <summary>Reads every row's label and image; rows without a label, and unreadable images when allowed, are skipped and counted.</summary>
    private ImageSet ReadImages(IDataView data, LabelInfo labels, VitConfig config, TrainingReporter reporter, string what)
    {
        var input = new ImageInput(data.Schema, _options.ImageColumnName, config, _options.ImageFolder, _options.VectorImageHeight, _options.VectorImageWidth,
            _options.Preprocessing);
        return ImageSets.Read(data, input, labels, _options.SkipUnreadableImages, reporter, what, _options.Cancellation);
    }
}

/// <summary>The label column: binary (Boolean) or multiclass (Key), its class count and class names.</summary>
internal sealed record LabelInfo(string Column, bool Binary, int Classes, string[] Names)
{
    public static LabelInfo Of(DataViewSchema schema, string name)
    {
        DataViewSchema.Column column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(name), $"The data has no label column '{name}'; it has: {string.Join(", ", schema.Select(c => c.Name))}.");
        switch (column.Type)
        {
            case BooleanDataViewType:
                return new LabelInfo(name, true, 2, new[] { "False", "True" });
            case KeyDataViewType key when key.Count is >= 1 and <= 100_000:
                return new LabelInfo(name, false, (int)key.Count, KeyNames(column, (int)key.Count));
            default:
                throw new ArgumentOutOfRangeException(nameof(name),
                    $"Label column '{name}' is {column.Type}; expected a Key (multiclass: ml.Transforms.Conversion.MapValueToKey(\"{name}\")) or a Boolean (binary).");
        }
    }

    public void CheckSameClasses(LabelInfo training)
    {
        if (Binary != training.Binary || !Names.SequenceEqual(training.Names))
        {
            throw new ArgumentOutOfRangeException(nameof(training),
                $"The validation label column '{Column}' has the classes [{string.Join(", ", Names)}]; the training data has [{string.Join(", ", training.Names)}]. " +
                "Map both with the same MapValueToKey (fitted on the training data).");
        }
    }

    /// <summary>The class index of the current row (0-based), or -1 when the label is missing.</summary>
    public Func<long> Getter(DataViewRow row)
    {
        DataViewSchema.Column column = row.Schema[Column];
        if (Binary)
        {
            ValueGetter<bool> getter = row.GetGetter<bool>(column);
            bool b = false;
            return () => { getter(ref b); return b ? 1 : 0; };
        }
        Type raw = column.Type.RawType;
        if (raw == typeof(uint)) { return KeyGetter<uint>(row, column, v => v); }
        if (raw == typeof(byte)) { return KeyGetter<byte>(row, column, v => v); }
        if (raw == typeof(ushort)) { return KeyGetter<ushort>(row, column, v => v); }
        return KeyGetter<ulong>(row, column, v => (long)v);
    }

    private static Func<long> KeyGetter<T>(DataViewRow row, DataViewSchema.Column column, Func<T, long> toLong)
    {
        ValueGetter<T> getter = row.GetGetter<T>(column);
        T value = default!;
        return () => { getter(ref value); return toLong(value) - 1; }; // keys count from 1; 0 is missing -> -1
    }

    /// <summary>The key values as text (any item type), or the key numbers when the column has none.</summary>
    private static string[] KeyNames(DataViewSchema.Column column, int count)
    {
        DataViewSchema.Column? values = column.Annotations.Schema.GetColumnOrNull("KeyValues");
        if (values is null)
        {
            return Enumerable.Range(1, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        }
        Type item = ((VectorDataViewType)values.Value.Type).ItemType.RawType;
        return item == typeof(ReadOnlyMemory<char>) ? Read<ReadOnlyMemory<char>>(column, v => v.ToString())
            : item == typeof(int) ? Read<int>(column, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))
            : item == typeof(uint) ? Read<uint>(column, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))
            : item == typeof(long) ? Read<long>(column, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))
            : item == typeof(float) ? Read<float>(column, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))
            : item == typeof(double) ? Read<double>(column, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))
            : item == typeof(bool) ? Read<bool>(column, v => v ? "True" : "False")
            : Enumerable.Range(1, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    private static string[] Read<T>(DataViewSchema.Column column, Func<T, string> format)
    {
        VBuffer<T> values = default;
        column.GetKeyValues(ref values);
        return values.DenseValues().Select(format).ToArray();
    }
}

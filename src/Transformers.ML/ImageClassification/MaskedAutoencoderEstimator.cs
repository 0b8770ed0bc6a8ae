using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using TorchSharp;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// Pretrains a ViT encoder on unlabelled images as a masked autoencoder (He et al. 2022) and returns a
/// <see cref="MaskedAutoencoderTransformer"/>, whose Transform adds an embedding column (for ML.NET's anomaly detectors,
/// clustering or any trainer) and whose encoder can start a classifier:
/// <c>mlContext.Transformers().ImageClassification(pretrained, options)</c>.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | image (<see cref="ImageModelOptions.ImageColumnName"/>) | image (LoadImages), Text path, or known-size vector of Single | no label needed |
/// </remarks>
public sealed class MaskedAutoencoderEstimator : IEstimator<MaskedAutoencoderTransformer>
{
    private readonly MLContext _context;
    private readonly MaskedAutoencoderOptions _options;

    internal MaskedAutoencoderEstimator(MLContext context, MaskedAutoencoderOptions options)
    {
        _context = context;
        _options = options;
        options.Validate();
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
        OutputShapes.WithEmbedding(_context, inputSchema, _options.ImageColumnName, _options.EmbeddingColumnName);

    /// <summary>Pretrains on the images of <paramref name="train"/>; a seeded <see cref="ImageModelOptions.ValidationFraction"/> of them is held out.</summary>
    public MaskedAutoencoderTransformer Fit(IDataView train) => Fit(train, null);

    /// <summary>Pretrains on the images of <paramref name="train"/>, with the validation reconstruction loss on <paramref name="validation"/>.</summary>
    public MaskedAutoencoderTransformer Fit(IDataView train, IDataView? validation)
    {
        ArgumentNullException.ThrowIfNull(train);
        var recorder = new EpochRecorder(_options.Progress, _options.CurvesPath, "Masked autoencoder");
        using var reporter = new TrainingReporter(_context, "MaskedAutoencoder", recorder);
        Action<string>? log = TrainingReporter.LogTo(_context, "MaskedAutoencoder");
        Device device = TrainingSetup.Prepare(_options, reporter);
        VitConfig config = _options.EffectiveModel;

        ImageSet Read(IDataView data, string what)
        {
            var input = new ImageInput(data.Schema, _options.ImageColumnName, config, _options.ImageFolder, _options.VectorImageHeight, _options.VectorImageWidth,
                _options.Preprocessing);
            return ImageSets.Read(data, input, labels: null, _options.SkipUnreadableImages, reporter, what, _options.Cancellation);
        }

        ImageSet all = Read(train, "training");
        ImageSet trainSet, validationSet;
        if (validation is not null)
        {
            (trainSet, validationSet) = (all, Read(validation, "validation"));
        }
        else
        {
            // Without labels the split is a seeded random one (ImageClassification's stratified split with one class).
            (trainSet, validationSet) = ImageClassificationEstimator.StratifiedSplit(all, _options.ValidationFraction, _options.Seed);
            if (!ReferenceEquals(all, trainSet))
            {
                all.Dispose();
            }
        }
        using (trainSet)
        using (validationSet)
        {
            reporter.Info($"Pretraining a masked autoencoder on {trainSet.Count} images; validating on {validationSet.Count}.");
            (float[] mean, float[] std, double range) = ImageClassificationEstimator.Statistics(trainSet.Images);
            var model = TrainingSetup.Seeded(_options, () => new MaskedAutoencoder(config, MaskedAutoencoderShape.From(_options)));
            model.to(device);
            ImageAugmenter? augmenter = _options.Augmentation is { IsIdentity: false } a ? new ImageAugmenter(a, range) : null;
            var task = new MaskedAutoencoderTask(model, device, mean, std, trainSet, validationSet.Count > 0 ? validationSet : null, _options.BatchSize, augmenter);
            new TrainingLoop<int[]>(model, _options, task, reporter, config.Width,
                System.Text.Json.JsonSerializer.Serialize(new { encoder = config, decoder = model.Shape })).Run();
            return new MaskedAutoencoderTransformer(model, device, mean, std, _options.Clone(keepProgress: false), log) { EpochReports = recorder.Epochs, TrainingReports = recorder.All };
        }
    }
}

/// <summary>Masked-autoencoder pretraining for the training loop: shuffled batches, augmentation, normalisation, the loss on removed patches.</summary>
internal sealed class MaskedAutoencoderTask : ITrainingTask<int[]>
{
    private readonly MaskedAutoencoder _model;
    private readonly Device _device;
    private readonly Tensor _mean;
    private readonly Tensor _std;
    private readonly ImageSet _train;
    private readonly ImageSet? _validation;
    private readonly int _batchSize;
    private readonly ImageAugmenter? _augmenter;

    public MaskedAutoencoderTask(MaskedAutoencoder model, Device device, float[] mean, float[] std, ImageSet train, ImageSet? validation, int batchSize,
        ImageAugmenter? augmenter)
    {
        _model = model;
        _device = device;
        _mean = tensor(mean, device: device).view(1, -1, 1, 1);
        _std = tensor(std, device: device).view(1, -1, 1, 1);
        _train = train;
        _validation = validation;
        _batchSize = batchSize;
        _augmenter = augmenter;
    }

    public string ThroughputUnit => "images";

    public IReadOnlyList<int[]> PlanEpoch(int epoch, Random random)
    {
        int[] order = Enumerable.Range(0, _train.Count).ToArray();
        random.Shuffle(order);
        return order.Chunk(_batchSize).ToList();
    }

    public LossSum ComputeLoss(int[] batch)
    {
        using var scope = NewDisposeScope();
        using Tensor index = tensor(batch.Select(i => (long)i).ToArray());
        Tensor images = _train.Images.index_select(0, index).to(_device);
        if (_augmenter is not null)
        {
            images = _augmenter.Apply(images);
        }
        LossSum loss = _model.Loss(images.sub(_mean).div(_std));
        return new LossSum(loss.Sum.MoveToOuterDisposeScope(), loss.Count.MoveToOuterDisposeScope());
    }

    /// <summary>The reconstruction loss on the validation images, with the same masks every epoch (a generator of a fixed seed).</summary>
    public ValidationResult? Validate()
    {
        if (_validation is null || _validation.Count == 0)
        {
            return null;
        }
        using var generator = new Generator(20220101); // a CPU generator (TorchSharp makes no other): masks drawn there, moved to the device
        double sum = 0;
        long count = 0;
        foreach (int[] batch in Enumerable.Range(0, _validation.Count).Chunk(Math.Max(_batchSize, 64)))
        {
            using var scope = NewDisposeScope();
            Tensor images = _validation.Images.narrow(0, batch[0], batch.Length).to(_device);
            LossSum loss = _model.Loss(images.sub(_mean).div(_std), generator);
            sum += loss.Sum.item<float>();
            count += loss.Count.item<long>();
        }
        return new ValidationResult("reconstruction loss", sum / Math.Max(1, count), HigherIsBetter: false);
    }

    public string? Sample(int epoch) => null;
}

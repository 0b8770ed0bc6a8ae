using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using TorchSharp;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// A pretrained masked autoencoder as an ML.NET transformer: Transform adds an embedding column (the mean of the encoder's
/// patch features for each whole image), in batches, for ML.NET's anomaly detectors (e.g. RandomizedPca fitted on normal
/// images only), clustering or any trainer; its encoder starts a classifier through
/// <c>mlContext.Transformers().ImageClassification(pretrained, options)</c>.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | image (<see cref="ImageColumnName"/>) | image, Text path or vector of Single | input |
/// | embedding (<see cref="EmbeddingColumnName"/>) | vector of Single (the encoder's width) | output; NaN for an unreadable image with SkipUnreadableImages |
/// </remarks>
public sealed class MaskedAutoencoderTransformer : ITransformer, IDisposable
{
    internal const string Capability = "masked-autoencoder";
    private readonly Action<string>? _log;
    private readonly Tensor _mean;
    private readonly Tensor _std;

    internal MaskedAutoencoderTransformer(MaskedAutoencoder model, Device device, float[] mean, float[] std, MaskedAutoencoderOptions options, Action<string>? log)
    {
        Model = model;
        Device = device;
        Mean = mean;
        Std = std;
        Options = options;
        _log = log;
        _mean = tensor(mean, device: device).view(1, -1, 1, 1);
        _std = tensor(std, device: device).view(1, -1, 1, 1);
    }

    internal MaskedAutoencoder Model { get; }

    internal Device Device { get; }

    internal float[] Mean { get; }

    internal float[] Std { get; }

    internal MaskedAutoencoderOptions Options { get; }

    /// <summary>The column that Transform reads.</summary>
    public string ImageColumnName => Options.ImageColumnName;

    /// <summary>The column that Transform adds.</summary>
    public string EmbeddingColumnName => Options.EmbeddingColumnName;

    /// <summary>The encoder's architecture (what a classifier fine-tuned from it keeps).</summary>
    public VitConfig Config => Model.Config.Clone();

    /// <summary>Parameters of the encoder (the decoder is only for pretraining).</summary>
    public long ParameterCount => Model.Encoder.parameters().Sum(p => p.numel());

    /// <summary>Per-epoch reports of pretraining (loss, validation reconstruction loss), when trained in this process.</summary>
    public IReadOnlyList<TrainingProgress> EpochReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <summary>Every progress report of training (steps and epochs), when trained in this process: e.g. for <see cref="Charts.SaveTrainingCurves"/>.</summary>
    public IReadOnlyList<TrainingProgress> TrainingReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema).RowMapper();

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => Mapper(input.Schema).Map(input);

    /// <summary>ML.NET's model format cannot hold components from outside ML.NET.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        $"A {nameof(MaskedAutoencoderTransformer)} cannot be written by mlContext.Model.Save (ML.NET keeps the writers of its model format internal). " +
        "Use model.Save(path) and mlContext.Transformers().LoadMaskedAutoencoder(path).");

    /// <summary>Writes the model (encoder, decoder, normalisation, preprocessing, columns) to one safetensors file, atomically.</summary>
    public void Save(string path)
    {
        var settings = new Dictionary<string, string>
        {
            ["decoder"] = JsonSerializer.Serialize(Model.Shape),
            ["normalization"] = JsonSerializer.Serialize(new { mean = Mean, std = Std }),
            ["preprocessing"] = JsonSerializer.Serialize(Options.Preprocessing),
            ["columns"] = JsonSerializer.Serialize(new SavedColumns
            {
                Image = Options.ImageColumnName, Embedding = Options.EmbeddingColumnName, ImageFolder = Options.ImageFolder,
                VectorHeight = Options.VectorImageHeight, VectorWidth = Options.VectorImageWidth,
                SkipUnreadable = Options.SkipUnreadableImages, TransformBatchSize = Options.TransformBatchSize,
            }),
        };
        ModelFile.Save(path, Capability, JsonSerializer.Serialize(Model.Config), null, Model, settings);
    }

    private sealed class SavedColumns
    {
        public string Image { get; set; } = "Image";
        public string Embedding { get; set; } = "Embedding";
        public string? ImageFolder { get; set; }
        public int? VectorHeight { get; set; }
        public int? VectorWidth { get; set; }
        public bool SkipUnreadable { get; set; }
        public int TransformBatchSize { get; set; } = 64;
    }

    /// <summary>Reads a model written by <see cref="Save(string)"/>; a damaged file fails with an <see cref="InvalidDataException"/> naming it.</summary>
    internal static MaskedAutoencoderTransformer Load(string path, string device, Action<string>? log)
    {
        Device target = DeviceSelector.Resolve(device, allowCpuFallback: false, log);
        using ModelFileContents contents = ModelFile.Load(path, Capability);
        VitConfig config = contents.Parse("configuration", () =>
        {
            VitConfig c = JsonSerializer.Deserialize<VitConfig>(contents.Config) ?? throw new FormatException("it is empty");
            c.Validate();
            return c;
        });
        MaskedAutoencoderShape shape = contents.Json<MaskedAutoencoderShape>("decoder");
        SavedColumns columns = contents.Json<SavedColumns>("columns");
        ImagePreprocessing preprocessing = contents.Json("preprocessing", new ImagePreprocessing());
        (float[] mean, float[] std) = contents.Parse("normalization", () =>
        {
            using JsonDocument normalization = JsonDocument.Parse(contents.Metadata.TryGetValue("normalization", out string? n) ? n : throw new FormatException("it is missing"));
            float[] m = normalization.RootElement.GetProperty("mean").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            float[] s = normalization.RootElement.GetProperty("std").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            return m.Length == config.Channels && s.Length == config.Channels && m.All(float.IsFinite) && s.All(v => v > 0 && float.IsFinite(v))
                ? (m, s)
                : throw new FormatException($"expected {config.Channels} finite means and positive standard deviations");
        });
        var options = new MaskedAutoencoderOptions
        {
            ImageColumnName = columns.Image, EmbeddingColumnName = columns.Embedding, ImageFolder = columns.ImageFolder,
            VectorImageHeight = columns.VectorHeight, VectorImageWidth = columns.VectorWidth, SkipUnreadableImages = columns.SkipUnreadable,
            TransformBatchSize = columns.TransformBatchSize, Model = config, Preprocessing = preprocessing,
            DecoderWidth = shape.DecoderWidth, DecoderDepth = shape.DecoderDepth, DecoderHeads = shape.DecoderHeads,
            MaskRatio = shape.MaskRatio, NormalizePixelLoss = shape.NormalizePixelLoss,
        };
        contents.Parse("settings", () =>
        {
            options.Validate();
            return true;
        });
        var model = new MaskedAutoencoder(config, shape);
        ModelFile.LoadInto(model, contents.Weights, path);
        model.to(target);
        model.eval();
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            Tensor image = zeros(new long[] { 1, config.Channels, config.ImageSize, config.ImageSize }, device: target);
            ModelFile.RefuseNonFiniteOutput(path, model, model.Embed(image));
        }
        return new MaskedAutoencoderTransformer(model, target, mean, std, options, log);
    }

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose()
    {
        _mean.Dispose();
        _std.Dispose();
        Model.Dispose();
    }

    private BatchMapper<ImageValue> Mapper(DataViewSchema inputSchema)
    {
        var input = new ImageInput(inputSchema, Options.ImageColumnName, Model.Config, Options.ImageFolder, Options.VectorImageHeight, Options.VectorImageWidth,
            Options.Preprocessing);
        int width = Model.Config.Width;
        var outputs = new[] { new OutputColumn(Options.EmbeddingColumnName, new VectorDataViewType(NumberDataViewType.Single, width)) };
        return new BatchMapper<ImageValue>(inputSchema, Options.ImageColumnName, outputs, values => MapBatch(values, width),
            Options.TransformBatchSize, row => ImageValue.Reader(input, row, Options.SkipUnreadableImages));
    }

    private object[][] MapBatch(IReadOnlyList<ImageValue> values, int width)
    {
        var readable = Enumerable.Range(0, values.Count).Where(i => values[i].Pixels is not null).ToList();
        float[][] embeddings = Array.Empty<float[]>();
        if (readable.Count > 0)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            Model.eval();
            Tensor batch = stack(readable.Select(i => values[i].Pixels!).ToArray()).to(Device);
            Tensor embedded = Model.Embed(batch.sub(_mean).div(_std)).cpu().contiguous(); // (B, D)
            float[] flat = embedded.data<float>().ToArray();
            embeddings = Enumerable.Range(0, readable.Count).Select(r => flat.AsSpan(r * width, width).ToArray()).ToArray();
        }
        foreach (ImageValue value in values)
        {
            value.Pixels?.Dispose();
        }
        if (readable.Count < values.Count)
        {
            _log?.Invoke($"{values.Count - readable.Count} image(s) could not be read: NaN embeddings ({values.First(v => v.Error is not null).Error!.Message}).");
        }
        var rows = new object[values.Count][];
        int next = 0;
        for (int i = 0; i < values.Count; i++)
        {
            float[] e = values[i].Pixels is null ? Enumerable.Repeat(float.NaN, width).ToArray() : embeddings[next++];
            rows[i] = new object[] { new VBuffer<float>(width, e) };
        }
        return rows;
    }
}

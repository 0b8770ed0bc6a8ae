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
/// | image (<see cref="ImageModelTransformer.ImageColumnName"/>) | image, Text path or vector of Single | input |
/// | embedding (<see cref="ImageModelTransformer.EmbeddingColumnName"/>) | vector of Single (the encoder's width) | output; NaN for an unreadable image with SkipUnreadableImages |
/// </remarks>
public sealed class MaskedAutoencoderTransformer : ImageModelTransformer
{
    internal const string Capability = "masked-autoencoder";
    private readonly Tensor _mean;
    private readonly Tensor _std;

    internal MaskedAutoencoderTransformer(MaskedAutoencoder model, Device device, float[] mean, float[] std, MaskedAutoencoderOptions options, Action<string>? log)
        : base(options, log, "LoadMaskedAutoencoder", "")
    {
        Model = model;
        Device = device;
        Mean = mean;
        Std = std;
        Options = options;
        _mean = tensor(mean, device: device).view(1, -1, 1, 1);
        _std = tensor(std, device: device).view(1, -1, 1, 1);
    }

    internal MaskedAutoencoder Model { get; }

    internal Device Device { get; }

    internal float[] Mean { get; }

    internal float[] Std { get; }

    internal MaskedAutoencoderOptions Options { get; }

    /// <summary>Parameters of the encoder (the decoder is only for pretraining).</summary>
    public long ParameterCount => Model.Encoder.parameters().Sum(p => p.numel());

    private protected override VitConfig Encoder => Model.Config;

    private protected override string MissingOutputs => "NaN embeddings";

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
    public override void Dispose()
    {
        _mean.Dispose();
        _std.Dispose();
        Model.Dispose();
    }

    private protected override IReadOnlyList<OutputColumn> OutputColumns() =>
        new[] { new OutputColumn(Options.EmbeddingColumnName, new VectorDataViewType(NumberDataViewType.Single, Model.Config.Width)) };

    private protected override object[][] Predict(Tensor images)
    {
        using var noGrad = no_grad();
        Model.eval();
        int width = Model.Config.Width;
        float[] flat = Model.Embed(images.to(Device).sub(_mean).div(_std)).cpu().contiguous().data<float>().ToArray(); // (B, D)
        return Enumerable.Range(0, (int)images.shape[0]).Select(r => new object[] { new VBuffer<float>(width, flat.AsSpan(r * width, width).ToArray()) }).ToArray();
    }

    private protected override object[] MissingRow() =>
        new object[] { new VBuffer<float>(Model.Config.Width, Enumerable.Repeat(float.NaN, Model.Config.Width).ToArray()) };
}

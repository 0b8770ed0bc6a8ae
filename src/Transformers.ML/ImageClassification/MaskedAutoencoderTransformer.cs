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
        var columns = new ImageModelFile.Columns();
        columns.From(Options);
        ImageModelFile.Save(path, Capability, Model.Config, Model, Mean, Std, Options.Preprocessing, "columns", columns,
            new Dictionary<string, string> { ["decoder"] = JsonSerializer.Serialize(Model.Shape) });
    }

    /// <summary>Reads a model written by <see cref="Save(string)"/>; a damaged file fails with an <see cref="InvalidDataException"/> naming it.</summary>
    internal static MaskedAutoencoderTransformer Load(string path, string device, Action<string>? log)
    {
        Device target = DeviceSelector.Resolve(device, allowCpuFallback: false, log);
        using ModelFileContents contents = ModelFile.Load(path, Capability);
        (VitConfig config, float[] mean, float[] std, ImagePreprocessing preprocessing) = ImageModelFile.Read(contents);
        MaskedAutoencoderShape shape = contents.Json<MaskedAutoencoderShape>("decoder");
        ImageModelFile.Columns columns = ImageModelFile.ReadColumns<ImageModelFile.Columns>(contents, "columns");
        var options = new MaskedAutoencoderOptions
        {
            Model = config, Preprocessing = preprocessing,
            DecoderWidth = shape.DecoderWidth, DecoderDepth = shape.DecoderDepth, DecoderHeads = shape.DecoderHeads,
            MaskRatio = shape.MaskRatio, NormalizePixelLoss = shape.NormalizePixelLoss,
        };
        columns.ApplyTo(options);
        contents.Parse("settings", () =>
        {
            options.Validate();
            return true;
        });
        var model = new MaskedAutoencoder(config, shape);
        ModelFile.LoadForInference(contents, model, target, d => model.Embed(ImageModelFile.Black(config, d)));
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

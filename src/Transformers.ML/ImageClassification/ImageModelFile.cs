// What the image models' files share (the classifier's and the masked autoencoder's): the encoder's configuration, the
// training normalisation, the preprocessing and the image columns in the metadata. Each model adds its own entries (classes, the decoder's shape) and keeps its own entry names, so
// that files written before stay readable.
using System.Text.Json;
using Transformers.ML.Core.IO;
using static TorchSharp.torch;

namespace Transformers.ML.ImageClassification;

internal static class ImageModelFile
{
    private const string NormalizationKey = "normalization";
    private const string PreprocessingKey = "preprocessing";

    /// <summary>The image columns and Transform's settings of <see cref="ImageModelOptions"/>, as a file keeps them.</summary>
    internal class Columns
    {
        public string Image { get; set; } = "Image";
        public string Embedding { get; set; } = "Embedding";
        public string? ImageFolder { get; set; }
        public int? VectorHeight { get; set; }
        public int? VectorWidth { get; set; }
        public bool SkipUnreadable { get; set; }
        public int TransformBatchSize { get; set; } = 64;

        public void From(ImageModelOptions options)
        {
            (Image, Embedding, ImageFolder) = (options.ImageColumnName, options.EmbeddingColumnName, options.ImageFolder);
            (VectorHeight, VectorWidth) = (options.VectorImageHeight, options.VectorImageWidth);
            (SkipUnreadable, TransformBatchSize) = (options.SkipUnreadableImages, options.TransformBatchSize);
        }

        public void ApplyTo(ImageModelOptions options)
        {
            (options.ImageColumnName, options.EmbeddingColumnName, options.ImageFolder) = (Image, Embedding, ImageFolder);
            (options.VectorImageHeight, options.VectorImageWidth) = (VectorHeight, VectorWidth);
            (options.SkipUnreadableImages, options.TransformBatchSize) = (SkipUnreadable, TransformBatchSize);
        }
    }

    /// <summary>What the loader needs besides the weights and the model's own entries.</summary>
    internal sealed record Contents(VitConfig Config, float[] Mean, float[] Std, ImagePreprocessing Preprocessing);

    /// <summary>
    /// Writes <paramref name="model"/> with its configuration, the normalisation, the preprocessing, the columns under
    /// <paramref name="columnsKey"/> and the model's own <paramref name="entries"/>, atomically.
    /// </summary>
    public static void Save(string path, string capability, VitConfig config, nn.Module model, float[] mean, float[] std, ImagePreprocessing preprocessing,
        string columnsKey, Columns columns, IReadOnlyDictionary<string, string> entries)
    {
        var metadata = new Dictionary<string, string>(entries, StringComparer.Ordinal)
        {
            [NormalizationKey] = JsonSerializer.Serialize(new { mean, std }),
            [PreprocessingKey] = JsonSerializer.Serialize(preprocessing),
            [columnsKey] = JsonSerializer.Serialize(columns, columns.GetType()),
        };
        ModelFile.Save(path, capability, JsonSerializer.Serialize(config), null, model, metadata);
    }

    /// <summary>The configuration, normalisation and preprocessing of a file, each checked; a damaged entry fails naming the file and the entry.</summary>
    public static Contents Read(ModelFileContents contents)
    {
        VitConfig config = contents.Parse("configuration", () =>
        {
            VitConfig c = JsonSerializer.Deserialize<VitConfig>(contents.Config) ?? throw new FormatException("it is empty");
            c.Validate();
            return c;
        });
        (float[] mean, float[] std) = contents.Parse(NormalizationKey, () =>
        {
            string json = contents.Metadata.TryGetValue(NormalizationKey, out string? n) ? n : throw new FormatException("it is missing");
            using JsonDocument normalization = JsonDocument.Parse(json);
            float[] m = normalization.RootElement.GetProperty("mean").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            float[] s = normalization.RootElement.GetProperty("std").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            return m.Length == config.Channels && s.Length == config.Channels && m.All(float.IsFinite) && s.All(v => v > 0 && float.IsFinite(v))
                ? (m, s)
                : throw new FormatException($"expected {config.Channels} finite means and positive standard deviations");
        });
        ImagePreprocessing preprocessing = contents.Json(PreprocessingKey, new ImagePreprocessing());
        contents.Parse(PreprocessingKey, () =>
        {
            preprocessing.Validate();
            return true;
        });
        return new Contents(config, mean, std, preprocessing);
    }

    /// <summary>The columns under <paramref name="key"/>, with a transform batch size of at least 1.</summary>
    public static T ReadColumns<T>(ModelFileContents contents, string key) where T : Columns
    {
        T columns = contents.Json<T>(key);
        return contents.Parse($"'{key}' entry", () => columns.TransformBatchSize >= 1 ? columns
            : throw new FormatException($"the transform batch size must be at least 1; found {columns.TransformBatchSize}"));
    }

    /// <summary>One black image at the model's size on <paramref name="device"/>: the probe of <see cref="ModelFile.LoadForInference"/>.</summary>
    public static Tensor Black(VitConfig config, Device device) =>
        zeros(new long[] { 1, config.Channels, config.ImageSize, config.ImageSize }, device: device);
}

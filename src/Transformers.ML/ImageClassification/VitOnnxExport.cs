// The ViT classifier as one ONNX graph: pixels (batch, channels, H, W) in [0, 1] -> logits, probabilities and the
// [CLS] embedding. The training normalisation (per-channel mean and std) and, for a grayscale model fed RGB, the
// luma conversion are inside the graph, so that ML.NET's LoadImages -> ResizeImages -> ExtractPixels(scale 1/255)
// -> ApplyOnnxModel needs nothing else.
using System.Text.Json;
using Onnx;
using Transformers.ML.Core.IO;
using Transformers.ML.ImageClassification;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.ImageClassification;

internal static class VitOnnxExport
{
    public const string PixelsInput = "pixels";

    public static ModelProto Build(VitClassifier classifier, OnnxExportOptions options, ImagePreprocessing? preprocessing = null)
    {
        preprocessing ??= new ImagePreprocessing();
        VitConfig config = classifier.Model.Config.Clone();
        int size = options.ImageSize ?? config.ImageSize;
        if (options.InputChannels != 3 && options.InputChannels != config.Channels)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.InputChannels, $"InputChannels must be 3 (RGB) or the model's {config.Channels}.");
        }
        // A copy of the weights, with the position embeddings interpolated when another image size is asked for.
        using var copy = new VitModel(config, classifier.Model.Classes);
        ModelFile.LoadInto(copy, ModuleState.Of(classifier.Model), "the model");
        if (size != config.ImageSize)
        {
            copy.ResizeImages(size);
        }
        VitConfig exported = copy.Config;
        Dictionary<string, Tensor> weights = ModuleState.Of(copy);
        var graph = new OnnxGraph("vit_classifier");
        var blocks = new OnnxBlocks(graph, weights);

        string x = graph.Input(PixelsInput, DataType.Float, "batch", options.InputChannels, size, size);
        bool flip = classifier.TestTimeFlip;
        if (flip)
        {
            // Test-time flip: the images and their left-right mirrors as one batch of 2B; the halves are averaged at the end.
            string mirrored = graph.Op("Slice", new[] { x, graph.Longs(-1), graph.Longs(long.MinValue), graph.Longs(3), graph.Longs(-1) });
            x = graph.Op("Concat", new[] { x, mirrored }, ("axis", 0L));
        }
        if (options.InputChannels == 3 && exported.Channels == 1)
        {
            // ITU-R BT.601 luma, as ImageInput: a 1x1 convolution with weights (0.299, 0.587, 0.114).
            x = graph.Op("Conv", new[] { x, graph.Floats("luma", new[] { 0.299f, 0.587f, 0.114f }, 1, 3, 1, 1) });
        }
        else if (options.InputChannels == 1 && exported.Channels == 3)
        {
            x = graph.Op("Concat", new[] { x, x, x }, ("axis", 1L));
        }
        int c = exported.Channels;
        if (preprocessing.PerImageNormalization)
        {
            // As ImagePreprocessor.AfterResize: x - mean(x), over the sample standard deviation (at least 1e-3), per image.
            long[] all = { 1, 2, 3 };
            string centred = graph.Op("Sub", new[] { x, graph.Op("ReduceMean", new[] { x }, ("axes", all), ("keepdims", 1L)) });
            string squares = graph.Op("ReduceSum", new[] { graph.Op("Mul", new[] { centred, centred }), graph.Longs(all) }, ("keepdims", 1L));
            long count = (long)c * size * size;
            string std = graph.Op("Sqrt", new[] { graph.Op("Div", new[] { squares, graph.Floats("pixel_count", new[] { (float)(count - 1) }) }) });
            x = graph.Op("Div", new[] { centred, graph.Op("Max", new[] { std, graph.Floats("min_std", new[] { 1e-3f }) }) });
        }
        x = graph.Op("Div", new[] { graph.Op("Sub", new[] { x, graph.Floats("pixel_mean", classifier.Mean, 1, c, 1, 1) }), graph.Floats("pixel_std", classifier.Std, 1, c, 1, 1) });

        if (exported.StemChannels > 0)
        {
            x = graph.Op("Conv", new[] { x, graph.Weight("stem.weight", weights["stem.weight"]), graph.Weight("stem.bias", weights["stem.bias"]) },
                ("kernel_shape", new long[] { 3, 3 }), ("pads", new long[] { 1, 1, 1, 1 }));
            x = blocks.Activation(x, Transformers.ML.FeedForwardActivation.Gelu);
        }
        for (int i = 0; i < exported.StemDownsampling; i++)
        {
            x = graph.Op("Conv", new[] { x, graph.Weight($"stem_down.{i}.weight", weights[$"stem_down.{i}.weight"]), graph.Weight($"stem_down.{i}.bias", weights[$"stem_down.{i}.bias"]) },
                ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }));
            x = blocks.Activation(x, Transformers.ML.FeedForwardActivation.Gelu);
        }
        int p = exported.EmbeddingStride, d = exported.Width;
        int window = exported.StemDownsampling > 0 ? p : exported.EffectivePatchWindow, pad = exported.StemDownsampling > 0 ? 0 : exported.PatchPadding;
        string patches = graph.Op("Conv", new[] { x, graph.Weight("patch_embed.weight", weights["patch_embed.weight"]), graph.Weight("patch_embed.bias", weights["patch_embed.bias"]) },
            ("kernel_shape", new long[] { window, window }), ("strides", new long[] { p, p }), ("pads", new long[] { pad, pad, pad, pad }));
        patches = graph.Op("Transpose", new[] { graph.Op("Reshape", new[] { patches, graph.Longs(0, d, -1) }) }, ("perm", new long[] { 0, 2, 1 })); // (B, N, D)
        string batchShape = graph.Op("Slice", new[] { graph.Op("Shape", new[] { patches }), graph.Longs(0), graph.Longs(1) });
        string classToken = graph.Op("Expand", new[] { graph.Weight("cls_token", weights["cls_token"]), graph.Op("Concat", new[] { batchShape, graph.Longs(1, d) }, ("axis", 0L)) });
        string tokens = graph.Op("Add", new[] { graph.Op("Concat", new[] { classToken, patches }, ("axis", 1L)), graph.Weight("pos_embed", weights["pos_embed"]) });
        string hidden = blocks.Encoder(tokens, "encoder", exported.Encoder(), mask: null);
        string features = graph.Op("Gather", new[] { hidden, graph.LongScalar(0) }, ("axis", 1L)); // (B, D): the [CLS] position
        string logits = blocks.Linear(features, "head");
        int k = classifier.Model.Classes;
        string probabilities = graph.Op("Softmax", new[] { logits }, ("axis", -1L));
        if (flip)
        {
            // (2B, .) -> (2, B, .): the images' half first; probabilities averaged over the two halves.
            string Half(string t, long width) => graph.Op("Gather", new[] { graph.Op("Reshape", new[] { t, graph.Longs(2, -1, width) }), graph.LongScalar(0) }, ("axis", 0L));
            probabilities = graph.Op("ReduceMean", new[] { graph.Op("Reshape", new[] { probabilities, graph.Longs(2, -1, k) }) }, ("axes", new long[] { 0 }), ("keepdims", 0L));
            logits = Half(logits, k);
            features = Half(features, d);
        }
        graph.Output(logits, "logits", DataType.Float, "batch", k);
        graph.Output(probabilities, "probabilities", DataType.Float, "batch", k);
        graph.Output(features, "embedding", DataType.Float, "batch", d);

        return graph.ToModel(new Dictionary<string, string>
        {
            ["capability"] = ImageClassificationTransformer.Capability,
            ["config"] = JsonSerializer.Serialize(exported),
            ["classes"] = JsonSerializer.Serialize(classifier.ClassNames),
            ["binary"] = classifier.Binary ? "true" : "false",
            ["input"] = $"{PixelsInput}: (batch, {options.InputChannels}, {size}, {size}) float in [0, 1]" + (options.InputChannels == 3 ? ", RGB" : ""),
        });
    }
}

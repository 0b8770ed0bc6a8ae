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
        var blocks = new OnnxBlocks(graph, weights, options.Quantization);

        bool source = ImagePreprocessor.UsesSource(preprocessing);
        (int inputHeight, int inputWidth) = InputSizeFor(preprocessing, options, size);
        string x = graph.Input(PixelsInput, DataType.Float, "batch", options.InputChannels, inputHeight, inputWidth);
        if (options.InputChannels == 3 && exported.Channels == 1)
        {
            // ITU-R BT.601 luma, as ImageInput: (0.299, 0.587, 0.114) times the channels, one product for the whole image. (A 1x1
            // Conv computes the same but cost ONNX Runtime more than the whole transformer at 213 x 256: it reorders the image
            // to its blocked layout first.)
            string flat = graph.Op("Reshape", new[] { x, graph.Longs(0, 3, -1) }); // (B, 3, H W)
            string weighted = graph.Op("MatMul", new[] { graph.Floats("luma", new[] { 0.299f, 0.587f, 0.114f }, 1, 3), flat }); // (B, 1, H W)
            x = graph.Op("Reshape", new[] { weighted, graph.Longs(0, 1, inputHeight, inputWidth) });
        }
        else if (options.InputChannels == 1 && exported.Channels == 3)
        {
            x = graph.Op("Concat", new[] { x, x, x }, ("axis", 1L));
        }
        // The model's first resampling, when the graph takes images at another size (luma first: both are linear).
        x = FirstResize(graph, x, preprocessing, inputHeight, inputWidth, size);
        bool flip = classifier.TestTimeFlip;
        if (flip)
        {
            // Test-time flip: the images and their left-right mirrors as one batch of 2B; the halves are averaged at the end.
            string mirrored = graph.Op("Slice", new[] { x, graph.Longs(-1), graph.Longs(long.MinValue), graph.Longs(3), graph.Longs(-1) });
            x = graph.Op("Concat", new[] { x, mirrored }, ("axis", 0L));
        }
        int c = exported.Channels;
        if (source)
        {
            (int sourceHeight, int sourceWidth) = ImagePreprocessor.SourceSize(preprocessing, size);
            x = SourcePreprocessing(graph, x, preprocessing, size, sourceHeight, sourceWidth, c);
        }
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
            ["quantization"] = options.Quantization.ToString(),
            ["preprocessing"] = JsonSerializer.Serialize(preprocessing),
            ["input"] = $"{PixelsInput}: (batch, {options.InputChannels}, {inputHeight}, {inputWidth}) float in [0, 1]" + (options.InputChannels == 3 ? ", RGB" : "") +
                (source ? $" (the whole scan resized to {inputWidth} x {inputHeight}: the graph masks wedges, crops the band{(preprocessing.Fit == ImageFit.Pad ? ", pads it to a square" : "")} and averages down to {size} x {size})"
                    : preprocessing.Fit == ImageFit.Pad ? $" (the graph pads it to a square, keeping its aspect ratio, and resamples it to {size} x {size})" : ""),
        });
    }

    /// <summary>The size the model resamples an image to first: the source size of a scan's preprocessing, or the model's side.</summary>
    internal static (int Height, int Width) ResampledSize(ImagePreprocessing preprocessing, int size) =>
        ImagePreprocessor.UsesSource(preprocessing) ? ImagePreprocessor.SourceSize(preprocessing, size) : (size, size);

    /// <summary>
    /// The (height, width) of the graph's "pixels" input: <see cref="InputSize"/> when asked for, else <see cref="ResampledSize"/>.
    /// A model that pads each image to a square (<see cref="ImageFit.Pad"/>) without a band or wedges needs the images'
    /// own size: at the model's square side their aspect ratio, which the padding keeps, would be lost before the graph.
    /// </summary>
    internal static (int Height, int Width) InputSizeFor(ImagePreprocessing preprocessing, OnnxExportOptions? options, int size)
    {
        (int Height, int Width)? asked = InputSize(options);
        if (asked is null && preprocessing.Fit == ImageFit.Pad && !ImagePreprocessor.UsesSource(preprocessing))
        {
            throw new ArgumentException(
                "This model pads each image to a square (ImagePreprocessing.Fit = Pad), keeping its aspect ratio, which images resized to the model's " +
                $"{size} x {size} before the graph have lost. Set OnnxExportOptions.InputHeight and InputWidth to your images' size (the graph then pads and " +
                "resamples them as the model does; ML.NET's ResizeImages brings images of other sizes to it), or export a model trained with Fit = Stretch.", nameof(options));
        }
        return asked ?? ResampledSize(preprocessing, size);
    }

    /// <summary>
    /// (B, C, H, W) -> the model's first resize of an image at <paramref name="height"/> x <paramref name="width"/>, as
    /// ImagePreprocessor.Resize does it: to the source size of a scan's preprocessing (<see cref="ResampledSize"/>), else
    /// to <paramref name="size"/> x <paramref name="size"/>, padded to a square first when the model pads (<see cref="ImageFit.Pad"/>).
    /// </summary>
    internal static string FirstResize(OnnxGraph graph, string x, ImagePreprocessing preprocessing, int height, int width, int size)
    {
        if (!ImagePreprocessor.UsesSource(preprocessing) && preprocessing.Fit == ImageFit.Pad)
        {
            (x, int side) = PadToSquare(graph, x, height, width);
            return Resample(graph, x, side, side, size, size);
        }
        (int toHeight, int toWidth) = ResampledSize(preprocessing, size);
        return Resample(graph, x, height, width, toHeight, toWidth);
    }

    /// <summary>
    /// (B, C, H, W) -> (B, C, side, side), side = max(H, W): black rows or columns on both sides, the odd one after, as
    /// ImagePreprocessor's padding does; <paramref name="x"/> itself when square. Zeros concatenated, not a Pad node: ONNX
    /// Runtime folds a Pad into the AveragePool after it, and refuses pads wider than the pool's kernel.
    /// </summary>
    internal static (string X, int Side) PadToSquare(OnnxGraph graph, string x, int height, int width)
    {
        int side = Math.Max(height, width);
        if (height == width)
        {
            return (x, side);
        }
        bool rows = height < width;
        int missing = side - Math.Min(height, width), before = missing / 2;
        string batchAndChannels = graph.Op("Slice", new[] { graph.Op("Shape", new[] { x }), graph.Longs(0), graph.Longs(2) });
        string Zeros(int count) => graph.Op("ConstantOfShape",
            new[] { graph.Op("Concat", new[] { batchAndChannels, rows ? graph.Longs(count, width) : graph.Longs(height, count) }, ("axis", 0L)) });
        var parts = new List<string>();
        if (before > 0)
        {
            parts.Add(Zeros(before));
        }
        parts.Add(x);
        parts.Add(Zeros(missing - before));
        return (graph.Op("Concat", parts, ("axis", rows ? 2L : 3L)), side);
    }

    /// <summary>The input size that <see cref="OnnxExportOptions.InputHeight"/> and <see cref="OnnxExportOptions.InputWidth"/> ask for; null when neither is set.</summary>
    private static (int Height, int Width)? InputSize(OnnxExportOptions? options)
    {
        if (options?.InputHeight is null && options?.InputWidth is null)
        {
            return null;
        }
        if (options!.InputHeight is not int height || options.InputWidth is not int width)
        {
            throw new ArgumentException($"Set both OnnxExportOptions.InputHeight and InputWidth, or neither; found InputHeight {options.InputHeight?.ToString() ?? "null"}, InputWidth {options.InputWidth?.ToString() ?? "null"}.", nameof(options));
        }
        if (height is < 1 or > MaxInputSide || width is < 1 or > MaxInputSide)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"OnnxExportOptions.InputHeight and InputWidth must be in [1, {MaxInputSide}]; found {height} x {width}.");
        }
        return (height, width);
    }

    private const int MaxInputSide = 8192;

    /// <summary>
    /// (B, C, H, W) -> (B, C, toHeight, toWidth) as ImagePreprocessor's resampling does it: each axis averaged down (a pool
    /// where the factor is a whole number) or resampled by the weights of <see cref="ImagePreprocessor.ResampleWeights"/>.
    /// Each output row or column takes a few neighbouring inputs (a bin of up to ceil(H / toHeight) + 1 to shrink, two to
    /// enlarge), applied as that many gathers, each times its weights (a dense matrix product over the whole axis cost the
    /// graph twice its time at 496 x 512). Returns <paramref name="x"/> when the sizes are equal.
    /// </summary>
    internal static string Resample(OnnxGraph graph, string x, int height, int width, int toHeight, int toWidth)
    {
        long poolY = height > toHeight && height % toHeight == 0 ? height / toHeight : 1;
        long poolX = width > toWidth && width % toWidth == 0 ? width / toWidth : 1;
        if (poolY > 1 || poolX > 1)
        {
            x = graph.Op("AveragePool", new[] { x }, ("kernel_shape", new[] { poolY, poolX }), ("strides", new[] { poolY, poolX }));
            height /= (int)poolY;
            width /= (int)poolX;
        }
        if (height != toHeight)
        {
            x = Taps(graph, x, 2, height, toHeight);
        }
        if (width != toWidth)
        {
            x = Taps(graph, x, 3, width, toWidth);
        }
        return x;
    }

    /// <summary>
    /// <paramref name="x"/> resampled along <paramref name="axis"/> (2: rows, 3: columns) from <paramref name="from"/> to
    /// <paramref name="to"/>: the sum over taps k of Gather(x, index_k) times weight_k, where tap k of output i is its k-th
    /// input (or its last one, weighted 0, when it has fewer).
    /// </summary>
    private static string Taps(OnnxGraph graph, string x, int axis, int from, int to)
    {
        (int Index, float Weight)[][] taps = ImagePreprocessor.ResampleWeights(from, to);
        int count = taps.Max(t => t.Length);
        long[] weightShape = axis == 2 ? new long[] { to, 1 } : new long[] { to };
        string? sum = null;
        for (int k = 0; k < count; k++)
        {
            long[] index = taps.Select(t => (long)(k < t.Length ? t[k].Index : t[^1].Index)).ToArray();
            float[] weight = taps.Select(t => k < t.Length ? t[k].Weight : 0f).ToArray();
            string term = graph.Op("Mul", new[]
            {
                graph.Op("Gather", new[] { x, graph.Longs(index) }, ("axis", (long)axis)),
                graph.Floats($"resample_{(axis == 2 ? "rows" : "columns")}_{from}_{to}_weight_{k}", weight, weightShape),
            });
            sum = sum is null ? term : graph.Op("Add", new[] { sum, term });
        }
        return sum!;
    }

    /// <summary>
    /// ImagePreprocessor.Resize's source steps as nodes, from the same constants: (B, C, H0, W0) -> (B, C, S, S) with the
    /// flat saturated regions black, the rows cut to the band around the centroid of the row means above their median,
    /// padded to a square when the model pads (<see cref="ImageFit.Pad"/>), and blocks averaged down.
    /// </summary>
    internal static string SourcePreprocessing(OnnxGraph graph, string x, ImagePreprocessing preprocessing, int size, int height, int width, int channels)
    {
        string luma = channels == 1 ? x : graph.Op("ReduceMean", new[] { x }, ("axes", new long[] { 1 }), ("keepdims", 1L)); // (B, 1, H0, W0)
        if (preprocessing.MaskWedges)
        {
            long w = ImagePreprocessor.WedgeWindow, pad = w / 2;
            (string Name, object Value)[] pool = { ("kernel_shape", new[] { w, w }), ("strides", new long[] { 1, 1 }), ("pads", new[] { pad, pad, pad, pad }) };
            string Pool(string t) => graph.Op("MaxPool", new[] { t }, pool);
            string windowMin = graph.Op("Neg", new[] { Pool(graph.Op("Neg", new[] { luma })) });
            string core = graph.Op("And", new[]
            {
                graph.Op("GreaterOrEqual", new[] { luma, graph.Floats("wedge_level", new[] { ImagePreprocessor.WedgeLevel }) }),
                graph.Op("GreaterOrEqual", new[] { windowMin, graph.Floats("wedge_flat_level", new[] { ImagePreprocessor.WedgeFlatLevel }) }),
            });
            string grown = Pool(graph.Op("Cast", new[] { core }, ("to", (long)DataType.Float)));
            string keep = graph.Op("Sub", new[] { graph.Floats("one", new[] { 1f }), grown }); // 1 outside the (grown) wedges, 0 inside
            x = graph.Op("Mul", new[] { x, keep });
            luma = channels == 1 ? x : graph.Op("Mul", new[] { luma, keep });
        }
        int rows = height;
        if (preprocessing.BandHeight < 1)
        {
            rows = ImagePreprocessor.BandRows(preprocessing, size);
            string profile = graph.Op("ReduceMean", new[] { graph.Op("Reshape", new[] { luma, graph.Longs(0, height, width) }) }, ("axes", new long[] { 2 }), ("keepdims", 0L)); // (B, H0)
            // The median as ImagePreprocessor.BandTop takes it: the value at index H0 / 2 in increasing order.
            string[] top = graph.OpN("TopK", 2, new[] { profile, graph.Longs(height - height / 2) }, ("axis", 1L), ("largest", 1L), ("sorted", 1L));
            string median = graph.Op("Gather", new[] { top[0], graph.Longs(height - height / 2 - 1) }, ("axis", 1L)); // (B, 1)
            string weights = graph.Op("Relu", new[] { graph.Op("Sub", new[] { profile, median }) });
            string rowIndex = graph.Floats("row_index", Enumerable.Range(0, height).Select(i => (float)i).ToArray(), 1, height);
            string weight = graph.Op("ReduceSum", new[] { weights, graph.Longs(1) }, ("keepdims", 1L));
            string moment = graph.Op("ReduceSum", new[] { graph.Op("Mul", new[] { weights, rowIndex }), graph.Longs(1) }, ("keepdims", 1L));
            string centre = graph.Op("Where", new[]
            {
                graph.Op("Greater", new[] { weight, graph.Floats("no_weight", new[] { 0f }) }),
                graph.Op("Div", new[] { moment, graph.Op("Max", new[] { weight, graph.Floats("tiny_weight", new[] { 1e-30f }) }) }),
                graph.Floats("middle_row", new[] { (height - 1) / 2f }),
            });
            string first = graph.Op("Clip", new[]
            {
                graph.Op("Round", new[] { graph.Op("Sub", new[] { centre, graph.Floats("half_band", new[] { rows / 2f }) }) }),
                graph.Scalar(0f), graph.Scalar(height - rows),
            });
            // Rows first + 0 .. rows - 1 of every channel and column: (B, 1) + (1, rows) -> (B, C, rows, W0) indices.
            string index = graph.Op("Add", new[] { graph.Op("Cast", new[] { first }, ("to", (long)DataType.Int64)), graph.Longs(Enumerable.Range(0, rows).Select(i => (long)i).ToArray()) });
            index = graph.Op("Expand", new[] { graph.Op("Unsqueeze", new[] { graph.Op("Unsqueeze", new[] { index, graph.Longs(1) }), graph.Longs(3) }),
                graph.Op("Concat", new[] { graph.Op("Slice", new[] { graph.Op("Shape", new[] { x }), graph.Longs(0), graph.Longs(1) }), graph.Longs(channels, rows, width) }, ("axis", 0L)) });
            x = graph.Op("GatherElements", new[] { x, index }, ("axis", 2L));
        }
        if (preprocessing.Fit == ImageFit.Pad)
        {
            (x, int side) = PadToSquare(graph, x, rows, width);
            rows = width = side;
        }
        long factorY = rows / size, factorX = width / size;
        return graph.Op("AveragePool", new[] { x }, ("kernel_shape", new[] { factorY, factorX }), ("strides", new[] { factorY, factorX }));
    }
}

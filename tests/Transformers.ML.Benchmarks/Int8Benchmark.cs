// int8 ONNX exports (OnnxExportOptions.Quantization = DynamicInt8) against the float32 exports of the same models,
// both through ONNX Runtime: latency, file size, and the quality change on held-out data: accuracy on held-out patients
// for the ViT, perplexity on the held-out tenth of Tiny Shakespeare for the GPT, BLEU on the example's held-out
// sentences for the translator. The text and translation models are the examples' saved ones when they exist (else
// trained here with the examples' recipes for a few minutes); the ViT is trained here twice, on each half of the patients
// (two folds), and each model's exports are scored on the other half, so that every scan counts once as held out.
// Beside each speed row of these models, the bound of any int8 form of their weight products: the float32 graph without
// them (ProductBound), timed in the same rounds; for the ViT also the float32 graph without any product or convolution
// (attention's products and the patch convolution too), the most that any quantization of those could give.
// Then the speed of the same exports at the sizes of ONNX Runtime's published int8 numbers (ViT-B/16, GPT-2 small) and at
// the library's presets between those and the examples' models (ViT-Ti/16, ViT-S/16, the Baby GPT), with random weights.
// Beside each int8 row of the examples' models and of the GPTs, the same measure for DynamicInt8PerRow (each row of a
// product's input quantized on its own), timed in the same rounds.
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Transformers.ML.Core.Generation;
using Transformers.ML.Core.Onnx;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Examples;
using Transformers.ML.ImageClassification;
using Transformers.ML.TextGeneration;
using Transformers.ML.Translation;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Transformers.ML.Benchmarks;

internal static class Int8Benchmark
{
    private static readonly string Examples = Path.Combine(Path.GetTempPath(), "transformers-ml-example");
    private static readonly OnnxExportOptions Int8 = new() { Quantization = OnnxQuantization.DynamicInt8 };
    private static readonly OnnxExportOptions PerRow = new() { Quantization = OnnxQuantization.DynamicInt8PerRow };

    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        string folder = Path.Combine(Path.GetTempPath(), "transformers-ml-bench-int8");
        Directory.CreateDirectory(folder);
        Vit(table, options, folder);
        Gpt(table, options, folder);
        Translation(table, options, folder);
        ReferenceSizes(table, options, folder);
    }

    /// <summary>
    /// The same exports at the sizes of ONNX Runtime's published int8 numbers (ViT-B/16: 224 x 224 RGB, width 768, 12 layers,
    /// 197 tokens; GPT-2 small: 124M parameters, GPT-2's vocabulary) and at the library's presets between those and the
    /// examples' 128-wide models (ViT-Ti/16 and ViT-S/16, widths 192 and 384 at the same 197 tokens; the Baby GPT, width 384,
    /// with a BPE of 1,024 tokens learned from Tiny Shakespeare and with GPT-2's vocabulary), with random weights. Speed only
    /// (the weights are not trained, so no quality row): how what the quantized products give grows with the width, beside
    /// the rows above, where the models are 128 wide.
    /// </summary>
    public static void ReferenceSizes(ResultsTable table, BenchmarkOptions options, string folder)
    {
        Directory.CreateDirectory(folder);
        foreach ((string name, VitConfig config, bool reference) in new[] { ("ViT-Ti/16", VitConfig.Tiny16(), false), ("ViT-S/16", VitConfig.Small16(), false), ("ViT-B/16", VitConfig.Base16(), true) })
        {
            VitSize(table, options, folder, name, config, reference);
        }
        // The Baby GPT with the text example's BPE of 1,024 tokens (its width alone) and with GPT-2's vocabulary (whose
        // output projection is then most of its weights), and GPT-2 small.
        string book = File.ReadAllText(DataLocator.File(options.Data, "text/tinyshakespeare.txt")).Replace("\r\n", "\n");
        TextTokenizer bpe = TextTokenizer.Train(TokenizerKind.BytePairEncoding, book, 1024);
        TextTokenizer gpt2 = TextTokenizer.Train(TokenizerKind.Gpt2, "", TextTokenizer.Gpt2VocabularySize);
        foreach ((string name, GptPreset preset, TextTokenizer tokenizer, bool reference) in new[]
        {
            ("the Baby GPT with a BPE of 1,024 tokens", GptPreset.Baby, bpe, false), ("the Baby GPT with GPT-2's vocabulary", GptPreset.Baby, gpt2, false),
            ("GPT-2 small", GptPreset.Gpt2Small, gpt2, true),
        })
        {
            GptSize(table, options, folder, name, TextGenerationOptions.PresetConfig(preset), tokenizer, reference);
        }
    }

    private static string SizeLabel(bool reference, int width) => reference ? "reference size" : $"preset, width {width}";

    private static void VitSize(ResultsTable table, BenchmarkOptions options, string folder, string name, VitConfig config, bool reference)
    {
        manual_seed(1);
        config.Dropout = 0;
        string fp32 = Path.Combine(folder, "vit-size.onnx"), int8 = Path.Combine(folder, "vit-size-int8.onnx");
        using (var classifier = new VitClassifier(new VitModel(config, 1000), CPU, Enumerable.Range(0, 1000).Select(i => $"class {i}").ToList(), false,
            new[] { 0.5f, 0.5f, 0.5f }, new[] { 0.25f, 0.25f, 0.25f }))
        {
            Console.WriteLine($"  onnx.int8: {name} with random weights ({classifier.Model.parameters().Sum(p => p.numel()) / 1e6:F1}M parameters), exported as float32 and int8...");
            OnnxGraph.Save(VitOnnxExport.Build(classifier, new OnnxExportOptions(), new ImagePreprocessing()), fp32);
            OnnxGraph.Save(VitOnnxExport.Build(classifier, Int8, new ImagePreprocessing()), int8);
        }
        using (var sessionA = new InferenceSession(fp32, Optimised()))
        using (var sessionB = new InferenceSession(int8, Optimised()))
        {
            double[] ms = Interleaved(new[] { sessionA, sessionB }, 1, config.ImageSize, config.ImageSize, options.Quick ? 2 : 5, repeats: 5, warmup: 1);
            table.Add(new BenchmarkRow("onnx.int8", $"{name} ({SizeLabel(reference, config.Width)}, random weights) latency, batch 1: fp32 / int8", ms[0] / ms[1], "x", ">= 2",
                $"fp32 {ms[0]:F1} ms, int8 {ms[1]:F1} ms; {config.ImageSize} x {config.ImageSize} RGB, preprocessing outside; files {Ratio(fp32, int8):F1}x smaller" +
                (reference ? "; ONNX Runtime's reference: 3.2x" : "")));
        }
        File.Delete(fp32);
        File.Delete(int8);
    }

    private static void GptSize(ResultsTable table, BenchmarkOptions options, string folder, string name, TransformerConfig config, TextTokenizer tokenizer, bool reference)
    {
        manual_seed(1);
        var paths = new[] { "gpt-size.onnx", "gpt-size-int8.onnx", "gpt-size-shared.onnx", "gpt-size-int8-shared.onnx", "gpt-size-int8-row.onnx", "gpt-size-int8-row-shared.onnx" }
            .Select(f => Path.Combine(folder, f)).ToArray();
        int vocabulary = tokenizer.VocabularySize;
        using (var gpt = new GptModel(config, vocabulary))
        {
            Console.WriteLine($"  onnx.int8: {name} with random weights ({gpt.parameters().Sum(p => p.numel()) / 1e6:F1}M parameters, {vocabulary:N0} tokens), exported as float32 and int8, both cache layouts...");
            OnnxGraph.Save(GptOnnxExport.Build(gpt, tokenizer), paths[0]);
            OnnxGraph.Save(GptOnnxExport.Build(gpt, tokenizer, Int8), paths[1]);
            OnnxGraph.Save(GptOnnxExport.Build(gpt, tokenizer, new OnnxExportOptions { SharedCacheBuffers = true }), paths[2]);
            OnnxGraph.Save(GptOnnxExport.Build(gpt, tokenizer, new OnnxExportOptions { SharedCacheBuffers = true, Quantization = OnnxQuantization.DynamicInt8 }), paths[3]);
            OnnxGraph.Save(GptOnnxExport.Build(gpt, tokenizer, PerRow), paths[4]);
            OnnxGraph.Save(GptOnnxExport.Build(gpt, tokenizer, new OnnxExportOptions { SharedCacheBuffers = true, Quantization = OnnxQuantization.DynamicInt8PerRow }), paths[5]);
        }
        using (OnnxTextGenerator a = OnnxTextGenerator.Load(paths[0]), b = OnnxTextGenerator.Load(paths[1]), c = OnnxTextGenerator.Load(paths[2]), d = OnnxTextGenerator.Load(paths[3]))
        using (OnnxTextGenerator e = OnnxTextGenerator.Load(paths[4]), f = OnnxTextGenerator.Load(paths[5]))
        {
            var random = new Random(1);
            GenerationRows(table, $"{name} ({SizeLabel(reference, config.ModelDimension)}, random weights) generation", new (string, OnnxTextGenerator, OnnxTextGenerator, OnnxTextGenerator?, OnnxTextGenerator?)[] { ("", a, b, null, e), (" (shared cache buffers)", c, d, null, f) }, options.Quick ? 32 : 128,
                batch => Enumerable.Range(0, batch).Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, 8).Select(_ => random.Next(vocabulary - 1)).ToList()).ToList(),
                $"greedy, 8-token prompts, best of 3 alternating rounds; files {new FileInfo(paths[0]).Length / 1e6:F0} -> {new FileInfo(paths[1]).Length / 1e6:F0} MB");
            if (reference)
            {
                SamplingRows(table, $"{name} ({SizeLabel(reference, config.ModelDimension)}, random weights) int8 generation (shared cache buffers)", d,
                    batch => Enumerable.Range(0, batch).Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, 8).Select(_ => random.Next(vocabulary - 1)).ToList()).ToList());
            }
        }
        if (reference)
        {
            PromptRows(table, name, config, vocabulary, paths[0], paths[1]);
        }
        foreach (string path in paths)
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// The prompt's step of the exported GPT through ONNX Runtime (float32 and int8, batch 1 and 8): every position's logits
    /// (logits_to_keep left out, what the generator asked for until 2026-12-06 and what GenAI and an export's evaluation
    /// read) against the last position's (logits_to_keep = 1, what the generator feeds); alternating rounds, best of 3.
    /// </summary>
    private static void PromptRows(ResultsTable table, string name, TransformerConfig config, int vocabulary, string fp32, string int8)
    {
        const int length = 512;
        var random = new Random(2);
        foreach ((string kind, string path) in new[] { ("float32", fp32), ("int8", int8) })
        {
            using var session = new InferenceSession(path, Optimised());
            foreach (int batch in new[] { 1, 8 })
            {
                long[] ids = Enumerable.Range(0, batch * length).Select(_ => (long)random.Next(vocabulary - 1)).ToArray();
                double Time(bool lastOnly)
                {
                    using var input = OrtValue.CreateTensorValueFromMemory(ids, new long[] { batch, length });
                    using var keep = OrtValue.CreateTensorValueFromMemory(new long[] { 1 }, Array.Empty<long>());
                    using var empty = new OnnxKeyValueCache(config, batch); // the empty pasts of a prompt's step
                    var names = new List<string> { GptOnnxExport.InputIds };
                    var values = new List<OrtValue> { input };
                    empty.AddInputs(names, values);
                    if (lastOnly)
                    {
                        names.Add(GptOnnxExport.LogitsToKeep);
                        values.Add(keep);
                    }
                    using var run = new RunOptions();
                    OnnxBenchmark.Settle();
                    var clock = Stopwatch.StartNew();
                    using (IDisposableReadOnlyCollection<OrtValue> outputs = session.Run(run, names, values, session.OutputNames.OrderBy(n => n != GptOnnxExport.Logits).ToList()))
                    {
                        long[] shape = outputs[0].GetTensorTypeAndShape().Shape;
                        if (shape[1] != (lastOnly ? 1 : length))
                        {
                            throw new InvalidOperationException($"logits of shape [{string.Join(", ", shape)}] with logits_to_keep {(lastOnly ? 1 : 0)}.");
                        }
                    }
                    return clock.Elapsed.TotalMilliseconds;
                }
                Time(false);
                Time(true);
                double all = double.MaxValue, last = double.MaxValue;
                for (int round = 0; round < 3; round++)
                {
                    all = Math.Min(all, Time(false));
                    last = Math.Min(last, Time(true));
                }
                table.Add(new BenchmarkRow("onnx.int8", $"{name} (reference size, random weights) {kind} prompt step through ONNX Runtime, {length}-token prompt, batch {batch}: all positions' logits / the last one's (logits_to_keep = 1), time", all / last, "x", "-",
                    $"{all:F0} ms against {last:F0} ms; the logits of all positions are {batch * length * (long)vocabulary * 4 / 1e6:F0} MB, the last one's {batch * (long)vocabulary * 4 / 1e6:F1} MB; best of 3 alternating rounds after one of each"));
            }
        }
    }

    /// <summary>
    /// Rows of sampled / greedy tokens/s through the shared loop, batch 1 and 8, the best of 5 alternating rounds: what the
    /// decoding rules (temperature 0.8, top-k 40, top-p 0.95, repetition penalty 1.1, over GPT-2's 50,257 tokens) add to
    /// the fastest step the library exports. The generations run to the full length (no end-of-text token), 128 tokens in
    /// a --quick run too: 32-token generations (a tenth of a second) gave 0.85-1.03x at batch 1 from one run to the next,
    /// the greedy rate of the same generator moving by a sixth within one run.
    /// </summary>
    private static void SamplingRows(ResultsTable table, string measure, OnnxTextGenerator generator, Func<int, List<IReadOnlyList<int>>> prompts)
    {
        const int tokens = 128, rounds = 5;
        var greedy = new DecodingSettings { MaxNewTokens = tokens };
        var sampled = new DecodingSettings { MaxNewTokens = tokens, Rules = new LogitsRules(greedy: false, temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 1) };
        // Past tiered compilation: the rules' code runs unoptimised for its first 30 calls and is then recompiled in the
        // background.
        generator.GenerateTokens(prompts(1), sampled with { MaxNewTokens = 64 });
        generator.GenerateTokens(prompts(1), greedy with { MaxNewTokens = 64 });
        Thread.Sleep(300);
        foreach (int batch in new[] { 1, 8 })
        {
            List<IReadOnlyList<int>> batchPrompts = prompts(batch);
            double rateGreedy = 0, rateSampled = 0;
            for (int round = 0; round < rounds; round++)
            {
                rateGreedy = Math.Max(rateGreedy, Rate(generator, batchPrompts, greedy));
                rateSampled = Math.Max(rateSampled, Rate(generator, batchPrompts, sampled));
            }
            table.Add(new BenchmarkRow("onnx.int8", $"{measure}, {tokens} tokens, batch {batch}: sampled / greedy tokens/s", rateSampled / rateGreedy, "x", ">= 0.9",
                $"greedy {rateGreedy:N0} tokens/s, sampled {rateSampled:N0} tokens/s (temperature 0.8, top-k 40, top-p 0.95, repetition penalty 1.1); 8-token prompts, best of {rounds} alternating rounds"));
        }
    }

    /// <summary>Tokens/s of one generation (the tokens it returned), after the previous generator's session threads went idle.</summary>
    private static double Rate(OnnxTextGenerator generator, List<IReadOnlyList<int>> batch, DecodingSettings settings)
    {
        OnnxBenchmark.Settle();
        var clock = Stopwatch.StartNew();
        List<int>[] generated = generator.GenerateTokens(batch, settings);
        return generated.Sum(g => g.Count) / clock.Elapsed.TotalSeconds;
    }

    private static double Ratio(string fp32, string int8) => (double)new FileInfo(fp32).Length / new FileInfo(int8).Length;

    /// <summary>
    /// The latency of each graph on the same random (batch, 3, height, width) pixels: interleaved rounds, the best of each,
    /// so that a burst of load on this shared machine hits all alike.
    /// </summary>
    private static double[] Interleaved(InferenceSession[] sessions, int batch, int height, int width, int rounds, int repeats, int warmup = 40)
    {
        manual_seed(1);
        using Tensor pixels = rand(batch, 3, height, width);
        var input = new[] { NamedOnnxValue.CreateFromTensor(VitOnnxExport.PixelsInput, new DenseTensor<float>(pixels.data<float>().ToArray(), new[] { batch, 3, height, width })) };
        double[] ms = sessions.Select(_ => double.MaxValue).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < sessions.Length; i++)
            {
                InferenceSession session = sessions[i];
                ms[i] = Math.Min(ms[i], OnnxBenchmark.Latency(() => session.Run(input).Dispose(), repeats, warmup));
            }
        }
        return ms;
    }

    /// <summary>
    /// The row of the most any int8 form of the weight products could give (<see cref="ProductBound"/>): float32 against the
    /// float32 graph without them, timed in the same interleaved rounds as the fp32 / int8 row above it.
    /// </summary>
    private static BenchmarkRow BoundRow(string measure, double fp32, double bound, double int8Ratio, int products, string unit)
    {
        bool latency = unit == "ms"; // else a rate (tokens/s), where higher is faster
        string format = latency ? "F2" : "N0";
        return new BenchmarkRow("onnx.int8", $"{measure}: fp32 / fp32 without its {products} weight products (the most any int8 of them can give)",
            latency ? fp32 / bound : bound / fp32, "x", "-",
            $"fp32 {fp32.ToString(format)} {unit}, without the products {bound.ToString(format)} {unit} " +
            $"(each replaced by a copy of its input cut or repeated to its width; everything else as exported); int8 in the same rounds: {int8Ratio:F2}x");
    }

    /// <summary>
    /// Rows of int8 / fp32 tokens/s: greedy generation through the shared loop for each cache layout (fp32 and int8
    /// generators, and the bound generator without weight products where given, with <paramref name="boundProducts"/> of
    /// them removed), batch 1 and 8, the best of 3 alternating rounds; tokens/s counts the tokens each generation returned.
    /// </summary>
    private static void GenerationRows(ResultsTable table, string measure, (string Cache, OnnxTextGenerator F32, OnnxTextGenerator I8, OnnxTextGenerator? Bound, OnnxTextGenerator? PerRow)[] layouts, int tokens,
        Func<int, List<IReadOnlyList<int>>> prompts, string notes, int boundProducts = 0)
    {
        foreach ((string cache, OnnxTextGenerator f32, OnnxTextGenerator i8, OnnxTextGenerator? bound, OnnxTextGenerator? perRow) in layouts)
        {
            foreach (int batch in new[] { 1, 8 })
            {
                List<IReadOnlyList<int>> batchPrompts = prompts(batch);
                var settings = new DecodingSettings { MaxNewTokens = tokens };
                double rate = 0, rateInt8 = 0, rateBound = 0, ratePerRow = 0;
                for (int round = 0; round < 3; round++)
                {
                    rate = Math.Max(rate, Rate(f32, batchPrompts, settings));
                    rateInt8 = Math.Max(rateInt8, Rate(i8, batchPrompts, settings));
                    rateBound = bound is null ? 0 : Math.Max(rateBound, Rate(bound, batchPrompts, settings));
                    ratePerRow = perRow is null ? 0 : Math.Max(ratePerRow, Rate(perRow, batchPrompts, settings));
                }
                string what = $"{measure}{cache}, {tokens} tokens, batch {batch}";
                table.Add(new BenchmarkRow("onnx.int8", $"{what}: int8 / fp32 tokens/s", rateInt8 / rate, "x", ">= 1.5",
                    $"fp32 {rate:N0} tokens/s, int8 {rateInt8:N0} tokens/s; {notes}"));
                if (bound is not null)
                {
                    table.Add(BoundRow(what, rate, rateBound, rateInt8 / rate, boundProducts, "tokens/s"));
                }
                if (perRow is not null)
                {
                    table.Add(new BenchmarkRow("onnx.int8", $"{what}: int8 per row (DynamicInt8PerRow) / fp32 tokens/s", ratePerRow / rate, "x", "-",
                        $"fp32 {rate:N0} tokens/s, int8 per row {ratePerRow:N0} tokens/s, int8 per tensor {rateInt8:N0} tokens/s in the same rounds; {notes}"));
                }
            }
        }
    }

    /// <summary>The model an example saved (examples/&lt;name&gt;'s output folder), else one trained here with its recipe for a few minutes; and which it is.</summary>
    internal static (T Model, string Source) SavedOrTrained<T>(string example, string file, string what, Func<string, T> load, Func<double, T> train, double minutes)
    {
        string saved = Path.Combine(Examples, example, file);
        return File.Exists(saved)
            ? (load(saved), $"the {what} example's model ({File.GetLastWriteTime(saved):yyyy-MM-dd HH:mm})")
            : (train(minutes), $"the {what} recipe trained here for {minutes} min");
    }

    private static SessionOptions Optimised() => new() { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };

    private static void Vit(ResultsTable table, BenchmarkOptions options, string folder)
    {
        List<OctScan> scans = OctCrossValidation.OctReal(options, "onnx.int8");
        if (scans.Count == 0)
        {
            return;
        }
        var ml = new MLContext(seed: 1);
        double minutes = options.Quick ? 0.5 : 3;
        string fp32 = Path.Combine(folder, "vit.onnx"), int8 = Path.Combine(folder, "vit-int8.onnx"), int8Row = Path.Combine(folder, "vit-int8-row.onnx");

        // The quality change on every scan, each held out once: two folds by patient, each half's ViT trained on the other
        // half, exported in float32 and int8, and both exports run on the held-out half through ML.NET's ApplyOnnxModel (the
        // deployment path). A fifth of the scans held out (120) would resolve 0.83 points, coarser than the target of 0.5;
        // all 600 resolve 0.17. The speed rows time the second fold's exports.
        int count = 0, right = 0, rightInt8 = 0, agree = 0, rightPerRow = 0, agreePerRow = 0;
        var folds = new List<string>();
        for (int f = 0; f < 2; f++)
        {
            using ImageClassificationTransformer vit = OctCrossValidation.TrainFold(ml, scans, 2, f, minutes, "onnx.int8", out _, out List<OctScan> test);
            vit.ExportToOnnx(fp32);
            vit.ExportToOnnx(int8, Int8);
            vit.ExportToOnnx(int8Row, PerRow);
            (int height, int width) = vit.OnnxInputSize();
            IDataView testData = ml.Data.LoadFromEnumerable(test);
            string[] Classes(string path) =>
                OctCrossValidation.Deployed(ml, testData, path, height, width).Select(row => vit.ClassNames[Scores.ArgMax(row)]).ToArray();
            string[] classes = Classes(fp32), classesInt8 = Classes(int8), classesPerRow = Classes(int8Row);
            int foldRight = test.Where((s, i) => classes[i] == s.Diagnosis).Count(), foldRightInt8 = test.Where((s, i) => classesInt8[i] == s.Diagnosis).Count();
            folds.Add($"{(double)foldRight / test.Count:F3} -> {(double)foldRightInt8 / test.Count:F3}");
            count += test.Count;
            right += foldRight;
            rightInt8 += foldRightInt8;
            agree += classes.Zip(classesInt8).Count(p => p.First == p.Second);
            rightPerRow += test.Where((s, i) => classesPerRow[i] == s.Diagnosis).Count();
            agreePerRow += classes.Zip(classesPerRow).Count(p => p.First == p.Second);
            if (f == 1)
            {
                VitLatency(table, options, folder, vit, fp32, int8, int8Row, height, width);
            }
        }
        double accuracy = (double)right / count, accuracyInt8 = (double)rightInt8 / count;
        table.Add(new BenchmarkRow("onnx.int8", "ViT (OCT recipe): accuracy change int8 - fp32 on held-out patients", (accuracyInt8 - accuracy) * 100, "points", "within +-0.5",
            $"fp32 {accuracy:F3}, int8 {accuracyInt8:F3} on all {count} scans, each held out once (two folds by patient, {minutes} min of training on the other half; " +
            $"per fold {string.Join(", ", folds)}); the same class for {agree} of the {count}; file {Ratio(fp32, int8):F1}x smaller " +
            $"({new FileInfo(fp32).Length / 1e6:F2} -> {new FileInfo(int8).Length / 1e6:F2} MB)"));
        table.Add(new BenchmarkRow("onnx.int8", "ViT (OCT recipe): accuracy change int8 per row (DynamicInt8PerRow) - fp32 on held-out patients", ((double)rightPerRow / count - accuracy) * 100, "points", "within +-0.5",
            $"fp32 {accuracy:F3}, int8 per row {(double)rightPerRow / count:F3}, int8 per tensor {accuracyInt8:F3} on the same {count} scans; the same class as fp32 for {agreePerRow} of the {count}"));
    }

    /// <summary>The latency rows of a trained OCT ViT's float32 and int8 exports, with the bounds of any quantization of its products.</summary>
    private static void VitLatency(ResultsTable table, BenchmarkOptions options, string folder, ImageClassificationTransformer vit, string fp32, string int8, string int8Row, int height, int width)
    {
        // The exported graphs (the scan's preprocessing in float32 inside them), and the transformer alone: the same weights
        // exported without the source preprocessing, taking the 64 x 64 band as ONNX Runtime's ViT-base reference takes 224 x 224.
        string fp32Model = Path.Combine(folder, "vit-model.onnx"), int8Model = Path.Combine(folder, "vit-model-int8.onnx"), int8RowModel = Path.Combine(folder, "vit-model-int8-row.onnx");
        OnnxGraph.Save(VitOnnxExport.Build(vit.Classifier, new OnnxExportOptions(), new ImagePreprocessing()), fp32Model);
        OnnxGraph.Save(VitOnnxExport.Build(vit.Classifier, Int8, new ImagePreprocessing()), int8Model);
        OnnxGraph.Save(VitOnnxExport.Build(vit.Classifier, PerRow, new ImagePreprocessing()), int8RowModel);
        int size = vit.Classifier.Model.Config.ImageSize;
        foreach ((string what, string a, string b, string c, int h, int w) in new[]
        {
            ("the exported graph", fp32, int8, int8Row, height, width), ("the transformer alone", fp32Model, int8Model, int8RowModel, size, size),
        })
        {
            // Two bounds: without the weight products (what int8 quantizes), and without every product and convolution
            // (what any quantization of the attention products and the patch convolution as well could give at most).
            string bound = Path.Combine(folder, "vit-bound.onnx"), boundAll = Path.Combine(folder, "vit-bound-all.onnx");
            int products = ProductBound.Write(a, bound), allProducts = ProductBound.Write(a, boundAll, everyProduct: true);
            using var sessionA = new InferenceSession(a, Optimised());
            using var sessionB = new InferenceSession(b, Optimised());
            using var sessionBound = new InferenceSession(bound, Optimised());
            using var sessionBoundAll = new InferenceSession(boundAll, Optimised());
            using var sessionPerRow = new InferenceSession(c, Optimised());
            foreach (int batch in new[] { 1, 16 })
            {
                double[] ms = Interleaved(new[] { sessionA, sessionB, sessionBound, sessionBoundAll, sessionPerRow }, batch, h, w, options.Quick ? 2 : 5, options.Quick ? 5 : 20);
                table.Add(new BenchmarkRow("onnx.int8", $"ViT (OCT recipe) latency, {what}, batch {batch}: fp32 / int8", ms[0] / ms[1], "x", ">= 2",
                    $"fp32 {ms[0]:F2} ms, int8 {ms[1]:F2} ms; input {h} x {w}" + (a == fp32 ? ", the scan's preprocessing (float32) in the graph" : ", preprocessing outside")));
                table.Add(BoundRow($"ViT (OCT recipe) latency, {what}, batch {batch}", ms[0], ms[2], ms[0] / ms[1], products, "ms"));
                table.Add(new BenchmarkRow("onnx.int8", $"ViT (OCT recipe) latency, {what}, batch {batch}: fp32 / fp32 without any of its {allProducts} products and convolutions (the most any quantization of them can give)",
                    ms[0] / ms[3], "x", "-",
                    $"fp32 {ms[0]:F2} ms, without them {ms[3]:F2} ms (the weight products as in the row above; the other products, attention's two per layer and " +
                    "the RGB-to-luma one, by an output-sized Add of a column and a row; the patch convolution by a max pool of one channel over its window; everything else as exported)"));
                table.Add(new BenchmarkRow("onnx.int8", $"ViT (OCT recipe) latency, {what}, batch {batch}: fp32 / int8 per row (DynamicInt8PerRow)", ms[0] / ms[4], "x", "-",
                    $"fp32 {ms[0]:F2} ms, int8 per row {ms[4]:F2} ms, int8 per tensor {ms[1]:F2} ms in the same rounds"));
            }
            File.Delete(bound);
            File.Delete(boundAll);
        }
    }

    private static void Gpt(ResultsTable table, BenchmarkOptions options, string folder)
    {
        var ml = new MLContext(seed: 1);
        string book = File.ReadAllText(DataLocator.File(options.Data, "text/tinyshakespeare.txt")).Replace("\r\n", "\n");
        (string trainText, string heldOutText) = TextRecipe.Split(book);
        (TextGenerationTransformer gpt, string source) = SavedOrTrained("text", "text-generation.safetensors", "text", p => ml.Transformers().LoadTextGeneration(p), minutes =>
        {
            TextGenerationOptions recipe = TextRecipe.Options(TokenizerKind.BytePairEncoding, TimeSpan.FromMinutes(minutes)); // the text example's recipe
            recipe.LogEverySteps = 1_000_000;
            return ml.Transformers().TextGeneration(recipe).Fit(ml.Data.LoadFromEnumerable(new[] { new BookText { Text = trainText } }));
        }, options.Quick ? 0.5 : 2);
        using (gpt)
        {
            string fp32 = Path.Combine(folder, "gpt.onnx"), int8 = Path.Combine(folder, "gpt-int8.onnx");
            gpt.ExportToOnnx(fp32);
            gpt.ExportToOnnx(int8, Int8);
            string int8Row = Path.Combine(folder, "gpt-int8-row.onnx");
            gpt.ExportToOnnx(int8Row, PerRow);
            using OnnxTextGenerator a = OnnxTextGenerator.Load(fp32), b = OnnxTextGenerator.Load(int8), g = OnnxTextGenerator.Load(int8Row);

            // Perplexity per token on the held-out tenth (a 40th in --quick runs), through each export: the library's
            // evaluation of an export, consecutive windows of the context, every position scored (OnnxTextGenerator.Evaluate).
            string[] heldOut = { heldOutText[..(options.Quick ? heldOutText.Length / 4 : heldOutText.Length)] };
            TextGenerationMetrics metrics = a.Evaluate(heldOut), metricsInt8 = b.Evaluate(heldOut), metricsPerRow = g.Evaluate(heldOut);
            double perplexity = metrics.Perplexity, perplexityInt8 = metricsInt8.Perplexity, perplexityPerRow = metricsPerRow.Perplexity;
            int[] ids = a.Tokenizer.Encode(heldOut[0]).ToArray(); // the generation rows' prompts

            // Generation: the shared loop over each export, greedy, 256 tokens, batch 1 and 8; the standard graphs, and the
            // graphs whose caches are shared buffers written in place (SharedCacheBuffers), where no step copies the cache.
            string fp32Shared = Path.Combine(folder, "gpt-shared.onnx"), int8Shared = Path.Combine(folder, "gpt-int8-shared.onnx");
            gpt.ExportToOnnx(fp32Shared, new OnnxExportOptions { SharedCacheBuffers = true });
            gpt.ExportToOnnx(int8Shared, new OnnxExportOptions { SharedCacheBuffers = true, Quantization = OnnxQuantization.DynamicInt8 });
            string int8RowShared = Path.Combine(folder, "gpt-int8-row-shared.onnx");
            gpt.ExportToOnnx(int8RowShared, new OnnxExportOptions { SharedCacheBuffers = true, Quantization = OnnxQuantization.DynamicInt8PerRow });
            string bound = Path.Combine(folder, "gpt-bound.onnx"), boundShared = Path.Combine(folder, "gpt-bound-shared.onnx");
            int products = ProductBound.Write(fp32, bound);
            ProductBound.Write(fp32Shared, boundShared);
            using OnnxTextGenerator c = OnnxTextGenerator.Load(fp32Shared), d = OnnxTextGenerator.Load(int8Shared);
            using OnnxTextGenerator e = OnnxTextGenerator.Load(bound), f = OnnxTextGenerator.Load(boundShared), h = OnnxTextGenerator.Load(int8RowShared);
            GenerationRows(table, "GPT generation", new (string, OnnxTextGenerator, OnnxTextGenerator, OnnxTextGenerator?, OnnxTextGenerator?)[] { ("", a, b, e, g), (" (shared cache buffers)", c, d, f, h) },
                options.Quick ? 64 : 256, batch => Enumerable.Range(0, batch).Select(r => (IReadOnlyList<int>)ids.Skip(r * 50).Take(8).ToList()).ToList(),
                "ONNX Runtime, greedy, key/value cache, best of 3 alternating rounds", products);
            BatchedTextRow(table, heldOutText, (a, "float32"), (b, "int8"), (d, "int8, shared cache buffers"), (g, "int8 per row"), (h, "int8 per row, shared cache buffers"));
            string sample = b.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 80, Temperature = 0.8, TopK = 40, Seed = 1 }).Replace("\n", " / ");
            table.Add(new BenchmarkRow("onnx.int8", "GPT: held-out perplexity change int8 / fp32", (perplexityInt8 / perplexity - 1) * 100, "%", "within +-2",
                $"fp32 {perplexity:F3}, int8 {perplexityInt8:F3} per token ({gpt.TokenizerKind}) on {metrics.Tokens:N0} held-out tokens; {source}; file {Ratio(fp32, int8):F1}x smaller; int8 sample \"ROMEO:{sample}\""));
            table.Add(new BenchmarkRow("onnx.int8", "GPT: held-out perplexity change int8 per row (DynamicInt8PerRow) / fp32", (perplexityPerRow / perplexity - 1) * 100, "%", "within +-2",
                $"fp32 {perplexity:F3}, int8 per row {perplexityPerRow:F3}, int8 per tensor {perplexityInt8:F3} per token on the same {metrics.Tokens:N0} held-out tokens; file {Ratio(fp32, int8Row):F1}x smaller"));
        }
    }

    /// <summary>
    /// How often a prompt's greedy text in one padded batch of 16 prompts of different lengths is its text alone: always in
    /// float32 and int8 per row; DynamicInt8 quantizes each product's input with one scale for the whole batch, so a near
    /// tie may go the other way. Held-out prompts of 6 to 51 characters, 64 new tokens each.
    /// </summary>
    private static void BatchedTextRow(ResultsTable table, string heldOut, params (OnnxTextGenerator Generator, string Name)[] generators)
    {
        string[] prompts = OnnxBenchmark.MixedLengthPrompts(heldOut);
        var greedy = new GenerationOptions { MaxNewTokens = 64, Temperature = 0 };
        var results = generators.Select(g =>
        {
            string[] together = g.Generator.Generate(prompts, greedy).ToArray();
            string[] alone = prompts.Select(p => g.Generator.Generate(p, greedy)).ToArray();
            int equal = together.Zip(alone).Count(t => t.First == t.Second);
            double prefix = together.Zip(alone).Average(t => CommonPrefix(t.First, t.Second) / (double)Math.Max(1, t.Second.Length));
            return (g.Name, Equal: equal, Note: $"{g.Name}: {equal} of 16 the same, on average the first {prefix:P0} of the text");
        }).ToList();
        table.Add(new BenchmarkRow("onnx.int8", "GPT: prompts whose greedy text in a padded batch of 16 (6-51 characters, 64 new tokens) is their text alone, int8",
            results.Single(r => r.Name == "int8").Equal, "of 16", "-", string.Join("; ", results.Select(r => r.Note))));
        table.Add(new BenchmarkRow("onnx.int8", "GPT: prompts whose greedy text in a padded batch of 16 (6-51 characters, 64 new tokens) is their text alone, int8 per row (DynamicInt8PerRow)",
            results.Single(r => r.Name == "int8 per row").Equal, "of 16", "16", string.Join("; ", results.Select(r => r.Note))));
    }

    private static int CommonPrefix(string a, string b)
    {
        int n = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n])
        {
            n++;
        }
        return n;
    }

    private static void Translation(ResultsTable table, BenchmarkOptions options, string folder)
    {
        var ml = new MLContext(seed: 1);
        string path = DataLocator.File(options.Data, "translation/spa-eng.txt");
        IDataView all = ml.Data.LoadFromTextFile<SentencePair>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
        var split = ml.Data.TrainTestSplit(all, testFraction: 0.02, samplingKeyColumnName: nameof(SentencePair.English), seed: 1);
        List<SentencePair> test = ml.Data.CreateEnumerable<SentencePair>(TranslationRecipe.HeldOut<SentencePair>(ml, split.TestSet, options.Quick ? 100 : int.MaxValue), false).ToList();
        (TranslationTransformer model, string source) = SavedOrTrained("translation", "translation.safetensors", "translation", p => ml.Transformers().LoadTranslation(p), minutes =>
        {
            var trainValidation = ml.Data.TrainTestSplit(split.TrainSet, testFraction: 0.01, samplingKeyColumnName: nameof(SentencePair.English), seed: 2);
            TranslationOptions recipe = TranslationRecipe.Options(TimeSpan.FromMinutes(minutes));
            recipe.SampleSentence = null;
            recipe.LogEverySteps = 1_000_000;
            return ml.Transformers().Translation(recipe).Fit(trainValidation.TrainSet, trainValidation.TestSet);
        }, options.Quick ? 1 : 4);
        using (model)
        {
            string fp32 = Path.Combine(folder, "translation"), int8 = Path.Combine(folder, "translation-int8");
            model.ExportToOnnx(fp32);
            model.ExportToOnnx(int8, Int8);
            string int8Row = Path.Combine(folder, "translation-int8-row");
            model.ExportToOnnx(int8Row, PerRow);
            using OnnxTranslator a = OnnxTranslator.Load(fp32), b = OnnxTranslator.Load(int8), c = OnnxTranslator.Load(int8Row);
            string[] sentences = test.Select(p => p.Spanish).ToArray();
            (double Bleu, double Seconds) Score(OnnxTranslator translator)
            {
                OnnxBenchmark.Settle();
                var clock = Stopwatch.StartNew();
                IReadOnlyList<string> translations = translator.Translate(sentences, 4, 0.6);
                double seconds = clock.Elapsed.TotalSeconds;
                IDataView scored = ml.Data.LoadFromEnumerable(test.Zip(translations, (p, t) => new Scored { English = p.English, Translation = t }));
                return (ml.Transformers().EvaluateTranslation(scored).Bleu, seconds);
            }
            (double bleu, double seconds) = Score(a);
            (double bleuInt8, double secondsInt8) = Score(b);
            table.Add(new BenchmarkRow("onnx.int8", "translation: BLEU change int8 - fp32 (beam 4)", bleuInt8 - bleu, "BLEU", "within +-1",
                $"fp32 {bleu:F2}, int8 {bleuInt8:F2} on {sentences.Length:N0} held-out sentences; {sentences.Length / seconds:F1} -> {sentences.Length / secondsInt8:F1} sentences/s " +
                $"({seconds / secondsInt8:F2}x); {source}; files {Ratio(Path.Combine(fp32, "decoder.onnx"), Path.Combine(int8, "decoder.onnx")):F1}x smaller"));
            (double bleuPerRow, double secondsPerRow) = Score(c);
            table.Add(new BenchmarkRow("onnx.int8", "translation: BLEU change int8 per row (DynamicInt8PerRow) - fp32 (beam 4)", bleuPerRow - bleu, "BLEU", "within +-1",
                $"fp32 {bleu:F2}, int8 per row {bleuPerRow:F2}, int8 per tensor {bleuInt8:F2} on the same sentences; {sentences.Length / seconds:F1} -> {sentences.Length / secondsPerRow:F1} sentences/s ({seconds / secondsPerRow:F2}x)"));
        }
    }

    private sealed class Scored
    {
        public string English { get; set; } = "";

        public string Translation { get; set; } = "";
    }
}

using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Transformers.ML.Core.Generation;
using Transformers.ML.Examples;
using Transformers.ML.ImageClassification;
using Transformers.ML.Core.Onnx;
using Transformers.ML.TextGeneration;
using Transformers.ML.Translation;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Transformers.ML.Benchmarks;

/// <summary>ONNX rows: ONNX Runtime against TorchSharp (eager) latency per model at batch 1 and 16; generation tokens/s with the cache.</summary>
internal static class OnnxBenchmark
{
    private static readonly SessionOptions Optimised = new() { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };

    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        string folder = Path.Combine(Path.GetTempPath(), "transformers-ml-bench-onnx");
        Directory.CreateDirectory(folder);
        int repeats = options.Quick ? 5 : 20;
        Vit(table, folder, repeats);
        VitInputSize(table, folder, repeats);
        Gpt(table, options, folder, repeats);
        Translation(table, options, folder);
    }

    /// <summary>
    /// A pause between two timed runs of different runtimes: the worker threads of the one before (libtorch's OpenMP
    /// threads, an ONNX Runtime session's pool) spin for a while after their last work and would take the two cores from
    /// the next one's first milliseconds.
    /// </summary>
    internal static void Settle() => Thread.Sleep(300);

    /// <summary>
    /// Milliseconds per call: the best mean of 3 rounds of <paramref name="repeats"/> calls after <paramref name="warmup"/>
    /// warm-up calls and a pause (tiered compilation, on as in the examples, recompiles TorchSharp's hot managed code after
    /// 30 calls in the background: timing before that would compare ONNX Runtime with unoptimised code; calls of a tenth
    /// of a second and more need fewer).
    /// </summary>
    internal static double Latency(Action call, int repeats, int warmup = 40)
    {
        for (int i = 0; i < warmup; i++)
        {
            call();
        }
        Settle();
        double best = double.MaxValue;
        for (int round = 0; round < 3; round++)
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++)
            {
                call();
            }
            best = Math.Min(best, clock.Elapsed.TotalMilliseconds / repeats);
        }
        return best;
    }

    private static void Row(ResultsTable table, string model, int batch, double torchMs, double onnxMs, string notes) =>
        table.Add(new BenchmarkRow("onnx", $"{model} latency, batch {batch}: ONNX Runtime / TorchSharp", onnxMs, "ms", "-",
            $"TorchSharp {torchMs:F2} ms; ONNX Runtime {torchMs / onnxMs:F2}x as fast; {notes}"));

    private static void Vit(ResultsTable table, string folder, int repeats)
    {
        manual_seed(1);
        VitConfig config = ImageClassificationOptions.FromPreset(VitPreset.Small);
        using var model = new VitModel(config, 4);
        model.eval();
        using var classifier = new VitClassifier(model, CPU, new[] { "a", "b", "c", "d" }, false, new[] { 0.3f }, new[] { 0.2f });
        string path = Path.Combine(folder, "vit.onnx");
        OnnxGraph.Save(VitOnnxExport.Build(classifier, new OnnxExportOptions { InputChannels = 1 }), path);
        using var session = new InferenceSession(path, Optimised);
        foreach (int batch in new[] { 1, 16 })
        {
            using Tensor images = rand(batch, 1, config.ImageSize, config.ImageSize);
            var input = new DenseTensor<float>(images.data<float>().ToArray(), new[] { batch, 1, config.ImageSize, config.ImageSize });
            double torch = Latency(() => classifier.Predict(images, needAttention: false), repeats);
            double onnx = Latency(() => session.Run(new[] { NamedOnnxValue.CreateFromTensor(VitOnnxExport.PixelsInput, input) }).Dispose(), repeats);
            Row(table, "ViT Small (64x64/8, width 128, depth 4)", batch, torch, onnx, "images -> probabilities and embedding");
        }
    }

    /// <summary>
    /// What <see cref="OnnxExportOptions.InputHeight"/> / InputWidth cost: the OCT recipe's ViT (random weights: the cost
    /// does not depend on them) through ONNX Runtime, taking RGB scans at 496 x 512 and resampling them itself, against the
    /// default graph, which takes them at its source size after ML.NET's ResizeImages; one after the other, each after a pause.
    /// </summary>
    private static void VitInputSize(ResultsTable table, string folder, int repeats)
    {
        manual_seed(1);
        ImageClassificationOptions recipe = ImageClassificationOptions.RetinalOct(TimeSpan.FromMinutes(1));
        using var model = new VitModel(recipe.Model!, 4);
        model.eval();
        int channels = recipe.Model!.Channels;
        using var classifier = new VitClassifier(model, CPU, new[] { "a", "b", "c", "d" }, false, Enumerable.Repeat(0.3f, channels).ToArray(), Enumerable.Repeat(0.2f, channels).ToArray());
        (int height, int width) = VitOnnxExport.ResampledSize(recipe.Preprocessing, recipe.Model.ImageSize);
        const int scanHeight = 496, scanWidth = 512;
        string Export(OnnxExportOptions exportOptions, string name)
        {
            string path = Path.Combine(folder, name);
            OnnxGraph.Save(VitOnnxExport.Build(classifier, exportOptions, recipe.Preprocessing), path);
            return path;
        }
        using var atSource = new InferenceSession(Export(new OnnxExportOptions(), "vit-oct-source.onnx"), Optimised);
        using var atScan = new InferenceSession(Export(new OnnxExportOptions { InputHeight = scanHeight, InputWidth = scanWidth }, "vit-oct-scan.onnx"), Optimised);
        foreach (int batch in new[] { 1, 16 })
        {
            NamedOnnxValue[] Pixels(int h, int w)
            {
                using Tensor images = rand(batch, 3, h, w);
                return new[] { NamedOnnxValue.CreateFromTensor(VitOnnxExport.PixelsInput, new DenseTensor<float>(images.data<float>().ToArray(), new[] { batch, 3, h, w })) };
            }
            NamedOnnxValue[] small = Pixels(height, width), large = Pixels(scanHeight, scanWidth);
            double source = Latency(() => atSource.Run(small).Dispose(), repeats);
            double scan = Latency(() => atScan.Run(large).Dispose(), repeats);
            table.Add(new BenchmarkRow("onnx", $"ViT (OCT recipe) latency, batch {batch}: the graph taking {scanWidth} x {scanHeight} scans / the default graph taking {width} x {height}",
                scan / source, "x", "-",
                $"{scan:F2} ms against {source:F2} ms; the larger graph resamples the scans itself (OnnxExportOptions.InputHeight / InputWidth), so that ML.NET's ResizeImages " +
                "leaves 512 x 496 scans as they are and ApplyOnnxModel gives Transform's probabilities; RGB input; random weights; ResizeImages and ExtractPixels not included"));
        }
    }

    /// <summary>
    /// The OCT ViT deployed the ML.NET way (LoadImages -> ResizeImages -> ExtractPixels -> ApplyOnnxModel) against its own
    /// Transform on every real scan: the default graph, fed at its source size by ResizeImages, and the graph taking the
    /// scans' most common size (<see cref="OnnxExportOptions.InputHeight"/> / InputWidth), which resamples them itself.
    /// The OCT example's saved model when there is one, else the recipe trained here on four fifths of the patients.
    /// </summary>
    public static void Fidelity(ResultsTable table, BenchmarkOptions options)
    {
        List<OctScan> scans = OctCrossValidation.OctReal(options, "onnx.fidelity");
        if (scans.Count == 0)
        {
            return;
        }
        var ml = new MLContext(seed: 1);
        IDataView data = ml.Data.LoadFromEnumerable(scans);
        (ImageClassificationTransformer vit, string source) = Int8Benchmark.SavedOrTrained("oct", "oct-vit.safetensors", "OCT",
            p => ml.Transformers().LoadImageClassification(p), minutes => OctCrossValidation.TrainFold(ml, scans, 5, 0, minutes, "onnx.fidelity", out _, out _),
            options.Quick ? 0.5 : 3);
        using (vit)
        {
            IDataView images = ml.Transforms.LoadImages("Image", null, nameof(OctScan.ImagePath)).Fit(data).Transform(data);
            float[][] expected = vit.Transform(images).GetColumn<float[]>("Score").ToArray();
            (int Height, int Width)[] sizes = scans.Select(s => ImageSizes.Of(s.ImagePath)).ToArray();
            (int scanHeight, int scanWidth) = ImageSizes.MostCommon(sizes);
            bool[] atSize = sizes.Select(s => s == (scanHeight, scanWidth)).ToArray();
            string path = Path.Combine(Path.GetTempPath(), "transformers-ml-bench-onnx", "vit-fidelity.onnx");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            foreach ((string what, OnnxExportOptions exportOptions) in new[]
            {
                ("the default graph", new OnnxExportOptions()),
                ($"the graph taking {scanWidth} x {scanHeight} scans", new OnnxExportOptions { InputHeight = scanHeight, InputWidth = scanWidth }),
            })
            {
                vit.ExportToOnnx(path, exportOptions);
                (int height, int width) = vit.OnnxInputSize(exportOptions);
                float[][] deployed = OctCrossValidation.Deployed(ml, data, path, height, width);
                double[] differences = expected.Zip(deployed, (e, d) => e.Zip(d, (a, b) => (double)Math.Abs(a - b)).Max()).ToArray();
                int changed = expected.Zip(deployed).Count(p => Scores.ArgMax(p.First) != Scores.ArgMax(p.Second));
                string Largest(bool at) => differences.Where((_, i) => atSize[i] == at).DefaultIfEmpty().Max().ToString("G2", System.Globalization.CultureInfo.InvariantCulture);
                table.Add(new BenchmarkRow("onnx.fidelity", $"ViT (OCT) through ApplyOnnxModel, {what} (input {width} x {height}): scans whose class differs from Transform's",
                    changed, "scans", "-",
                    $"of {scans.Count} real scans; largest probability difference {Largest(true)} on the {atSize.Count(a => a)} scans of {scanWidth} x {scanHeight}, " +
                    $"{Largest(false)} on the {atSize.Count(a => !a)} others; mean {differences.Average():G2}; {source}"));
            }
            File.Delete(path);
        }
    }

    private static void Gpt(ResultsTable table, BenchmarkOptions options, string folder, int repeats)
    {
        var ml = new MLContext(seed: 1);
        string book = DataLocator.File(options.Data, "text/tinyshakespeare.txt");
        var trainer = new TextGenerationOptions { Preset = GptPreset.Small, Epochs = 1, BatchesPerEpoch = 20, LogEverySteps = 1_000_000 };
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(trainer).Fit(ml.Data.LoadFromEnumerable(new[] { new BookText { Text = File.ReadAllText(book)[..200_000] } }));
        string path = Path.Combine(folder, "gpt.onnx");
        model.ExportToOnnx(path);
        var config = model.Model.Config;
        using (var session = new InferenceSession(path, Optimised))
        {
            foreach (int batch in new[] { 1, 16 })
            {
                const int length = 64;
                using Tensor ids = randint(0, model.Model.VocabularySize, new long[] { batch, length });
                var feeds = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids.data<long>().ToArray(), new[] { batch, length })) };
                for (int l = 0; l < config.NumLayers; l++)
                {
                    feeds.Add(NamedOnnxValue.CreateFromTensor($"past_key_{l}", new DenseTensor<float>(new[] { batch, config.NumHeads, 0, config.HeadKeyDimension })));
                    feeds.Add(NamedOnnxValue.CreateFromTensor($"past_value_{l}", new DenseTensor<float>(new[] { batch, config.NumHeads, 0, config.HeadValueDimension })));
                }
                double torch = Latency(() => { using var noGrad = no_grad(); model.Model.Forward(ids).Dispose(); }, repeats);
                double onnx = Latency(() => session.Run(feeds).Dispose(), repeats);
                Row(table, "GPT Small (4L/4H/128d)", batch, torch, onnx, $"forward of {length} tokens");
            }
        }
        using var generator = OnnxTextGenerator.Load(path);
        string sharedPath = Path.Combine(folder, "gpt-shared.onnx");
        model.ExportToOnnx(sharedPath, new OnnxExportOptions { SharedCacheBuffers = true });
        using var shared = OnnxTextGenerator.Load(sharedPath);
        var greedy = new GenerationOptions { MaxNewTokens = 64, Temperature = 0 };
        if (model.Generate("ROMEO:", greedy) != generator.Generate("ROMEO:", greedy))
        {
            throw new InvalidOperationException("ONNX Runtime and TorchSharp greedy outputs differ.");
        }
        // The shared decoding loop over each runtime's stepper, greedy, from 8-token prompts: tokens/s, best of 3 alternating rounds,
        // each run after a pause (Settle: without it the spinning threads of the run before slowed TorchSharp up to 2.5x).
        foreach (int tokens in options.Quick ? new[] { 64 } : new[] { 64, 256 })
        {
            foreach (int batch in new[] { 1, 8 })
            {
                var prompts = Enumerable.Range(0, batch).Select(b => (IReadOnlyList<int>)Enumerable.Range(0, 8).Select(i => 1 + (i * 7 + b * 3) % (model.Model.VocabularySize - 2)).ToList()).ToList();
                var settings = new DecodingSettings { MaxNewTokens = tokens }; // no end-of-text: every row makes every token
                double torchRate = 0, onnxRate = 0, sharedRate = 0;
                for (int round = 0; round < 3; round++) // the first round also warms the JIT up
                {
                    Settle();
                    var clock = Stopwatch.StartNew();
                    List<int>[] a;
                    using (var stepper = new TorchCausalStepper(model.Model, CPU))
                    {
                        a = CausalDecoding.Generate(stepper, prompts, settings);
                    }
                    torchRate = Math.Max(torchRate, batch * tokens / clock.Elapsed.TotalSeconds);
                    Settle();
                    clock.Restart();
                    List<int>[] b = generator.GenerateTokens(prompts, settings);
                    onnxRate = Math.Max(onnxRate, batch * tokens / clock.Elapsed.TotalSeconds);
                    Settle();
                    clock.Restart();
                    List<int>[] c = shared.GenerateTokens(prompts, settings);
                    sharedRate = Math.Max(sharedRate, batch * tokens / clock.Elapsed.TotalSeconds);
                    if (!a.Zip(b).All(p => p.First.SequenceEqual(p.Second)) || !a.Zip(c).All(p => p.First.SequenceEqual(p.Second)))
                    {
                        throw new InvalidOperationException($"ONNX Runtime and TorchSharp greedy tokens differ (batch {batch}, {tokens} tokens).");
                    }
                }
                table.Add(new BenchmarkRow("onnx", $"GPT Small generation, {tokens} new tokens, batch {batch}: ONNX Runtime / TorchSharp", onnxRate / torchRate, "x", ">= 1.7",
                    $"ONNX Runtime {onnxRate:N0} tokens/s (the standard graph: pasts and new keys concatenated, presents fed back as OrtValues), TorchSharp eager {torchRate:N0} tokens/s; greedy, key/value cache, identical tokens; context {model.Model.ContextLength}"));
                table.Add(new BenchmarkRow("onnx", $"GPT Small generation, {tokens} new tokens, batch {batch}: ONNX Runtime with shared cache buffers / TorchSharp", sharedRate / torchRate, "x", ">= 1.7",
                    $"shared buffers (SharedCacheBuffers: GroupQueryAttention writing in place, IOBinding) {sharedRate:N0} tokens/s, {sharedRate / onnxRate:F2}x the standard graph's; TorchSharp eager {torchRate:N0} tokens/s; identical tokens"));
            }
        }
        MixedLengths(table, model, generator, shared, File.ReadAllText(book));
        GenAi(table, model, folder);
    }

    /// <summary>
    /// One call with 16 prompts of different token lengths: padded batches (the generators since prompts of different
    /// lengths decode together) against one prompt at a time (what batching prompts of one length only came to here), on
    /// TorchSharp and on ONNX Runtime; greedy, the same text either way; best of 3 alternating rounds.
    /// </summary>
    private static void MixedLengths(ResultsTable table, TextGenerationTransformer model, OnnxTextGenerator generator, OnnxTextGenerator shared, string book)
    {
        const int newTokens = 64;
        string[] prompts = MixedLengthPrompts(book);
        int[] lengths = prompts.Select(p => model.Tokenizer.Encode(p).Count).ToArray();
        var options = new GenerationOptions { MaxNewTokens = newTokens, Temperature = 0 };
        var torch = new TextGenerator(model.Model, model.Tokenizer, CPU, null);
        foreach ((string runtime, Func<int, string[]> run) in new (string, Func<int, string[]>)[]
        {
            ("TorchSharp", maxBatch => torch.Generate(prompts, options, maxBatch)),
            ("ONNX Runtime", maxBatch => generator.Generate(prompts, options, maxBatch).ToArray()),
            ("ONNX Runtime with shared cache buffers (padded on the right)", maxBatch => shared.Generate(prompts, options, maxBatch).ToArray()),
        })
        {
            double together = double.MaxValue, alone = double.MaxValue;
            for (int round = 0; round < 3; round++)
            {
                Settle();
                var clock = Stopwatch.StartNew();
                string[] padded = run(16);
                together = Math.Min(together, clock.Elapsed.TotalSeconds);
                Settle();
                clock.Restart();
                string[] single = run(1);
                alone = Math.Min(alone, clock.Elapsed.TotalSeconds);
                if (!padded.SequenceEqual(single))
                {
                    throw new InvalidOperationException($"{runtime}: a prompt's greedy text differs in a left-padded batch from alone.");
                }
            }
            table.Add(new BenchmarkRow("onnx", $"GPT Small, one call with 16 prompts of {lengths.Distinct().Count()} token lengths ({lengths.Min()}-{lengths.Max()}), {newTokens} new tokens each: {runtime} one prompt at a time / one padded batch, time",
                alone / together, "x", "-",
                $"{together * 1000:F0} ms against {alone * 1000:F0} ms; greedy, the same text; context {model.Model.ContextLength}; a generator that batches prompts of one length only runs these one at a time"));
        }
    }

    /// <summary>16 prompts of 6, 9, ..., 51 characters from across <paramref name="text"/> (at least 16,000 characters).</summary>
    internal static string[] MixedLengthPrompts(string text) =>
        Enumerable.Range(0, 16).Select(i => text.Substring(1_000 + 977 * i, 6 + 3 * i)).ToArray();

    /// <summary>
    /// ONNX Runtime GenAI (Microsoft.ML.OnnxRuntimeGenAI) generating from ExportToOnnxRuntimeGenAI's folder, against our
    /// ONNX Runtime loop on the same graph and TorchSharp: greedy tokens/s, batch 1, up to the context (GenAI does not slide).
    /// </summary>
    private static void GenAi(ResultsTable table, TextGenerationTransformer model, string folder)
    {
        GenAi(table, model, folder, shared: false);
        GenAi(table, model, folder, shared: true);
    }

    /// <summary>
    /// The GenAI rows of one export (the standard one, or the shared-buffer one, where GenAI binds its buffers as past and
    /// present): a new Generator for each generation (as GenAI's examples do), and one Generator rewound to the start
    /// (RewindTo(0)) for each, which saves GenAI's set-up of a Generator; its cost is timed on its own.
    /// </summary>
    private static void GenAi(ResultsTable table, TextGenerationTransformer model, string folder, bool shared)
    {
        string genAiFolder = Path.Combine(folder, shared ? "genai-shared" : "genai");
        model.ExportToOnnxRuntimeGenAI(genAiFolder, new OnnxExportOptions { SharedCacheBuffers = shared });
        int[] prompt = Enumerable.Range(0, 8).Select(i => 1 + i * 7 % (model.Model.VocabularySize - 2)).ToArray();
        int tokens = model.Model.ContextLength - prompt.Length;
        var settings = new DecodingSettings { MaxNewTokens = tokens };
        using var oga = new Microsoft.ML.OnnxRuntimeGenAI.OgaHandle();
        using var genAi = new Microsoft.ML.OnnxRuntimeGenAI.Model(genAiFolder);
        using var ours = OnnxTextGenerator.Load(Path.Combine(genAiFolder, "model.onnx"));
        Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams Parameters()
        {
            var parameters = new Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams(genAi);
            parameters.SetSearchOption("max_length", prompt.Length + tokens);
            parameters.SetSearchOption("do_sample", false);
            return parameters;
        }
        int[] Generate(Microsoft.ML.OnnxRuntimeGenAI.Generator generator)
        {
            generator.AppendTokens(prompt);
            while (!generator.IsDone())
            {
                generator.GenerateNextToken();
            }
            return generator.GetSequence(0).ToArray()[prompt.Length..];
        }
        using Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams rewoundParameters = Parameters();
        using var rewound = new Microsoft.ML.OnnxRuntimeGenAI.Generator(genAi, rewoundParameters);
        double genAiRate = 0, rewoundRate = 0, oursRate = 0, torchRate = 0, setUp = double.MaxValue, selfSeeded = double.MaxValue;
        int[]? theirs = null, again = null;
        List<int>? mine = null;
        for (int round = 0; round < 3; round++)
        {
            Settle();
            var clock = Stopwatch.StartNew();
            using (Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams parameters = Parameters())
            {
                using var generator = new Microsoft.ML.OnnxRuntimeGenAI.Generator(genAi, parameters);
                setUp = Math.Min(setUp, clock.Elapsed.TotalMilliseconds);
                theirs = Generate(generator);
            }
            genAiRate = Math.Max(genAiRate, theirs.Length / clock.Elapsed.TotalSeconds);
            // The set-up when GenAI seeds its sampler itself (random_seed -1: a model saved without a Seed), greedy as well.
            using (Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams parameters = Parameters())
            {
                parameters.SetSearchOption("random_seed", -1);
                clock.Restart();
                using var generator = new Microsoft.ML.OnnxRuntimeGenAI.Generator(genAi, parameters);
                selfSeeded = Math.Min(selfSeeded, clock.Elapsed.TotalMilliseconds);
            }
            Settle();
            clock.Restart();
            rewound.RewindTo(0);
            again = Generate(rewound);
            rewoundRate = Math.Max(rewoundRate, again.Length / clock.Elapsed.TotalSeconds);
            Settle();
            clock.Restart();
            mine = ours.GenerateTokens(new[] { prompt }, settings)[0];
            oursRate = Math.Max(oursRate, mine.Count / clock.Elapsed.TotalSeconds);
            Settle();
            clock.Restart();
            using (var stepper = new TorchCausalStepper(model.Model, CPU))
            {
                int count = CausalDecoding.Generate(stepper, new[] { prompt }, settings)[0].Count;
                torchRate = Math.Max(torchRate, count / clock.Elapsed.TotalSeconds);
            }
        }
        string Same(int[] tokensOfGenAi) =>
            tokensOfGenAi.TakeWhile(t => t != model.Tokenizer.EndOfTextId).SequenceEqual(mine!.TakeWhile(t => t != model.Tokenizer.EndOfTextId)) ? "identical" : "DIFFERENT";
        string what = $"GPT Small generation through ONNX Runtime GenAI{(shared ? " (shared cache buffers)" : "")}";
        string compared = $"ours on the same graph (ONNX Runtime) {oursRate:N0} tokens/s, TorchSharp {torchRate:N0}; greedy";
        table.Add(new BenchmarkRow("onnx", $"{what}, a new Generator each time, {tokens} new tokens, batch 1", genAiRate, "tokens/s", "-",
            $"{compared}; tokens {Same(theirs!)}; best of 3; making the Generator took {setUp:F2} ms of each generation (random_seed {model.Generation.Seed?.ToString() ?? "-1"} from the model's saved Seed; {selfSeeded:F1} ms with random_seed -1, where GenAI seeds itself)"));
        table.Add(new BenchmarkRow("onnx", $"{what}, one Generator rewound (RewindTo(0)) each time, {tokens} new tokens, batch 1", rewoundRate, "tokens/s", "-",
            $"{compared}; tokens {Same(again!)}; best of 3, in the same rounds as the row above"));
    }

    private static void Translation(ResultsTable table, BenchmarkOptions options, string folder)
    {
        var ml = new MLContext(seed: 1);
        string path = DataLocator.File(options.Data, "translation/spa-eng.txt");
        IDataView pairs = ml.Data.TakeRows(ml.Data.LoadFromTextFile<SentencePair>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false), 20_000);
        var trainer = new TranslationOptions { VocabularySize = 4000, Epochs = 1, MaxSteps = 30, LogEverySteps = 1_000_000, SampleSentence = null };
        using TranslationTransformer model = ml.Transformers().Translation(trainer).Fit(pairs);
        string export = Path.Combine(folder, "translation");
        model.ExportToOnnx(export);
        using var translator = OnnxTranslator.Load(export);
        List<string> sentences = pairs.GetColumn<string>(nameof(SentencePair.Spanish)).Skip(5000).Take(16).ToList();
        foreach (int batch in new[] { 1, 16 })
        {
            List<string> input = sentences.Take(batch).ToList();
            double torch = Latency(() => model.Translate(input, beamSize: 1), options.Quick ? 2 : 5);
            double onnx = Latency(() => translator.Translate(input, beamSize: 1, batchSize: batch), options.Quick ? 2 : 5);
            Row(table, "Translation Small (N=3, d=256), greedy", batch, torch, onnx, $"{batch} sentence(s) per call (an untrained model's outputs run to input + 50 tokens)");
        }
        // The decoder with buffers written in place (SharedCacheBuffers) against the concatenating one: greedy and beam 4,
        // 16 sentences a call, best of 3 alternating rounds, identical translations.
        string sharedExport = Path.Combine(folder, "translation-shared");
        model.ExportToOnnx(sharedExport, new OnnxExportOptions { SharedCacheBuffers = true });
        using var shared = OnnxTranslator.Load(sharedExport);
        foreach (int beam in new[] { 1, 4 })
        {
            if (!translator.Translate(sentences, beam).SequenceEqual(shared.Translate(sentences, beam)))
            {
                throw new InvalidOperationException($"The shared-buffer translator's beam-{beam} translations differ from the concatenating one's.");
            }
            double concatenatedMs = double.MaxValue, sharedMs = double.MaxValue;
            int repeats = options.Quick ? 2 : 5;
            for (int round = 0; round < 3; round++)
            {
                concatenatedMs = Math.Min(concatenatedMs, Latency(() => translator.Translate(sentences, beam), repeats, warmup: 5));
                sharedMs = Math.Min(sharedMs, Latency(() => shared.Translate(sentences, beam), repeats, warmup: 5));
            }
            table.Add(new BenchmarkRow("onnx", $"Translation Small (N=3, d=256), {(beam == 1 ? "greedy" : $"beam {beam}")}, 16 sentences: shared cache buffers / concatenated (ONNX Runtime)",
                concatenatedMs / sharedMs, "x", "-",
                $"shared buffers (SharedCacheBuffers: GroupQueryAttention writing in place, rows reordered in place for the beams) {sharedMs:F1} ms, concatenating graph {concatenatedMs:F1} ms; identical translations; outputs run to input + 50 tokens"));
        }
    }
}

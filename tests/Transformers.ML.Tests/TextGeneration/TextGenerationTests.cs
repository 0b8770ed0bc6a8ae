using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.Generation;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using Transformers.ML.TextGeneration;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.TextGeneration;

public sealed class Document
{
    public string Text { get; set; } = "";
}

public sealed class Prompt
{
    public string Text { get; set; } = "";
}

public sealed class Completion
{
    public string Text { get; set; } = "";

    public string GeneratedText { get; set; } = "";
}

[TestClass]
public sealed class TextGenerationTests
{
    private static string _shakespeare = "";
    private static TextGenerationTransformer _trained = null!;
    private static IReadOnlyList<TrainingProgress> _reports = null!;

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        _shakespeare = TestData.ShakespeareHead[..40_000];
        var ml = new MLContext(seed: 1);
        var reports = new List<TrainingProgress>();
        var options = Tiny();
        options.Epochs = 3;
        options.SamplePrompt = "ROMEO:";
        options.Progress = new Collect(reports);
        _trained = ml.Transformers().TextGeneration(options).Fit(Load(ml, _shakespeare));
        _reports = reports;
    }

    [ClassCleanup]
    public static void Cleanup() => _trained?.Dispose();

    internal static TextGenerationOptions Tiny() => new()
    {
        Preset = GptPreset.Tiny,
        Epochs = 2,
        BatchSize = 16,
        BatchesPerEpoch = 30,
        ValidationBatches = 4,
        LearningRate = 3e-3,
        WarmupSteps = 5,
        LogEverySteps = 10,
        Generation = new GenerationOptions { MaxNewTokens = 20, Temperature = 0 },
    };

    internal static IDataView Load(MLContext ml, params string[] texts) =>
        ml.Data.LoadFromEnumerable(texts.Select(t => new Document { Text = t }));

    [TestMethod]
    public void AttentionIsCausalPerLayerAndHeadWithTheCharactersAsTokens()
    {
        const string text = "The animal didn't cross the street because it was tired.";
        AttentionWeights a = _trained.Attention(text);
        Assert.AreEqual(_trained.Config.NumLayers, a.Layers);
        Assert.AreEqual(_trained.Config.NumHeads, a.Heads);
        CollectionAssert.AreEqual(text.Select(c => c.ToString()).ToArray(), a.QueryTokens.ToArray());
        int n = text.Length;
        for (int layer = 0; layer < a.Layers; layer++)
        {
            for (int head = 0; head < a.Heads; head++)
            {
                float[] w = a.Head(layer, head);
                Assert.AreEqual(1f, w[0], 1e-5f, "the first character can only look at itself");
                for (int q = 0; q < n; q++)
                {
                    Assert.AreEqual(1.0, w.AsSpan(q * n, n).ToArray().Sum(x => (double)x), 1e-4, $"layer {layer} head {head} row {q}");
                    Assert.IsTrue(w.AsSpan(q * n + q + 1, n - q - 1).ToArray().All(x => x == 0), $"row {q} sees a later character");
                }
            }
        }
        // The weights are the model's, per head: two heads of a layer differ, and a head is not uniform over the past.
        float[] first = a.Head(0, 0), second = a.Head(0, 1);
        Assert.IsGreaterThan(1e-4, first.Zip(second).Max(p => Math.Abs(p.First - p.Second)), "heads 1 and 2 of layer 1 are identical");
        double fromUniform = Enumerable.Range(0, n).Max(q => Enumerable.Range(0, q + 1).Max(k => Math.Abs(first[q * n + k] - 1.0 / (q + 1))));
        Assert.IsGreaterThan(1e-3, fromUniform, "attention is uniform over the past");
        float[] average = a.LayerAverage(0);
        Assert.AreEqual(Enumerable.Range(0, a.Heads).Average(h => a.Head(0, h)[5 * n + 2]), average[5 * n + 2], 1e-6);
        Assert.Throws<ArgumentException>(() => _trained.Attention(""));
    }

    [TestMethod]
    public void ChartAxesPadTheDataButNeverBelowZeroForNonNegativeData()
    {
        // A learning rate from 0 to 1e-3: no tick below 0 (it read "-3.9e-5" before); a loss from 1 to 3: 5 % each side.
        static void Range(double min, double max, double expectedMin, double expectedMax, string why)
        {
            (double lower, double upper) = Charts.PaddedRange(min, max);
            Assert.AreEqual(expectedMin, lower, 1e-12, why);
            Assert.AreEqual(expectedMax, upper, 1e-12, why);
        }
        Range(0, 1e-3, 0, 1.05e-3, "a learning rate");
        Range(1, 3, 0.9, 3.1, "a loss");
        Range(0.02, 0.52, 0, 0.545, "0.02 - 0.025 would be negative");
        Range(-2, 2, -2.2, 2.2, "data below 0 keep their padding");
        Range(1, 1, 0.5, 1.5, "a constant: 0.5 each side");
        Range(0.3, 0.3, 0, 0.8, "a small constant: not below 0");
    }

    [TestMethod]
    public void TrainingCurvesTitleTheRunsEndNotItsLastLoggedStep()
    {
        // The translation example's run: the last step report (1,100 of the 1,175 planned then) came before the plan moved
        // to 1,198 and the second epoch ended; the title said "step 1100 of 1175, 9.3 min" under an axis that ends at 1,198.
        static TrainingProgress Report(TrainingProgressKind kind, long step, long total, double minutes) => new()
        {
            Kind = kind, Epoch = 2, Epochs = 2, Step = step, TotalSteps = total, Loss = 2.4, LearningRate = 1e-4, Throughput = 3000,
            ThroughputUnit = "tokens", Elapsed = TimeSpan.FromMinutes(minutes), ValidationMetric = "loss", ValidationValue = 1.56,
        };
        var reports = new[] { Report(TrainingProgressKind.Step, 1000, 1175, 8.4), Report(TrainingProgressKind.Step, 1100, 1175, 9.3), Report(TrainingProgressKind.EpochEnd, 1198, 1198, 10.0) };
        Assert.AreEqual($"step {1198:N0} of {1198:N0}, {10.0:F1} min", Charts.Progress(reports));
        Assert.AreEqual($"step {1100:N0} of {1175:N0}, {9.3:F1} min", Charts.Progress(reports.Take(2)), "mid-run: the last step");
        Assert.AreEqual("", Charts.Progress(Array.Empty<TrainingProgress>()));
    }

    [TestMethod]
    public void TrainingCurvesAndHeatMapsArePngsWithTheirNumbersBeside()
    {
        string folder = TestUtil.TempPath("-charts");
        try
        {
            string png = Path.Combine(folder, "curves.png");
            string csv = Charts.SaveTrainingCurves(_reports, png, "tiny GPT");
            using (var bitmap = SkiaSharp.SKBitmap.Decode(png))
            {
                Assert.IsNotNull(bitmap, "not a PNG");
                Assert.IsGreaterThan(600, bitmap.Width);
                // Something is drawn besides the white background.
                Assert.IsGreaterThan(1000, bitmap.Pixels.Count(p => p != SkiaSharp.SKColors.White));
            }
            string[] rows = File.ReadAllLines(csv);
            Assert.AreEqual(_reports.Count + 1, rows.Length, "a CSV row per report after the header");
            StringAssert.StartsWith(rows[0], "kind,epoch,step");
            Assert.AreEqual(_reports.Count(r => r.Kind == TrainingProgressKind.EpochEnd), rows.Count(r => r.StartsWith("epoch,", StringComparison.Ordinal)));

            string heat = Path.Combine(folder, "heat.png");
            Charts.SaveHeatmap(new float[] { 1, 0, 0.5f, 0.5f }, new[] { "a", "b" }, new[] { "x", "y" }, heat, "2 x 2");
            using (var bitmap = SkiaSharp.SKBitmap.Decode(heat))
            {
                Assert.IsNotNull(bitmap);
                // The title is text alone in the top band (the cells start lower down): its glyphs are dark pixels there.
                int titleInk = Enumerable.Range(0, 28).Sum(y => Enumerable.Range(0, bitmap.Width).Count(x => bitmap.GetPixel(x, y).Red < 128));
                Assert.IsGreaterThan(30, titleInk, "the title's text is drawn");
            }
            Assert.Throws<ArgumentException>(() => Charts.SaveHeatmap(new float[3], new[] { "a", "b" }, new[] { "x", "y" }, heat));
            Assert.Throws<ArgumentException>(() => Charts.SaveTrainingCurves(Array.Empty<TrainingProgress>(), png));
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    [TestMethod]
    public void TrainingLowersTheLossAndReportsASamplePerEpoch()
    {
        var epochs = _reports.Where(r => r.Kind == TrainingProgressKind.EpochEnd).ToList();
        Assert.AreEqual(3, epochs.Count);
        Assert.IsTrue(epochs.All(e => e.Sample is not null && e.ValidationMetric == "loss"));
        // Characters of Shakespeare start near ln(vocabulary) = ln(322) = 5.8 nats; 90 steps of a tiny model get well below.
        Assert.IsLessThan(3.2, epochs[^1].ValidationValue!.Value, $"validation loss {epochs[^1].ValidationValue}");
        Assert.IsLessThan(epochs[0].ValidationValue!.Value, epochs[^1].ValidationValue!.Value);
        Assert.IsTrue(_reports.Any(r => r.Kind == TrainingProgressKind.Step && r.ThroughputUnit == "tokens" && r.Throughput > 0));
        Assert.AreEqual(3, _trained.EpochReports.Count);
    }

    /// <summary>These tests' greedy comparisons run on <see cref="VariedGpt"/>, whose greedy text varies.</summary>
    [TestMethod]
    public void TheGreedyComparisonsModelGivesVariedText()
    {
        using TextGenerationTransformer model = VariedGpt.Load(new MLContext(seed: 1));
        var greedy = new GenerationOptions { MaxNewTokens = 60, Temperature = 0 };
        string[] texts = new[] { "ROMEO:", "To be, or not", "KING", "JULIET:" }.Select(p => model.Generate(p, greedy)).ToArray();
        Assert.AreEqual(texts.Length, texts.Distinct().Count(), string.Join(" | ", texts));
        foreach (string text in texts)
        {
            Assert.IsGreaterThan(12, text.Distinct().Count(), $"distinct characters in '{text}'");
        }
    }

    [TestMethod]
    public void CachedAndUncachedGreedyGenerationAgree()
    {
        using TextGenerationTransformer model = VariedGpt.Load(new MLContext(seed: 1));
        var options = new GenerationOptions { MaxNewTokens = 40, Temperature = 0 };
        string cached = model.Generate("KING RICHARD:", options);
        options.UseKeyValueCache = false;
        Assert.AreEqual(model.Generate("KING RICHARD:", options), cached);
        Assert.AreEqual(40, model.Tokenizer.Encode(cached).Count, "character tokens: 40 new characters");
    }

    [TestMethod]
    public void GenerationPastTheContextWindowSlidesAndMatchesRecomputation()
    {
        // The tiny model's context is 64 tokens; 100 new tokens after a prompt of 34 or more tokens (cropped to its last
        // 32 to leave half the window to new tokens) must slide the window. Until the window is full (32 new tokens) the
        // cache gives the text of recomputing the whole window at every step; then the cache restarts from the window's
        // last 48 tokens and grows again (one re-encoding every 16 tokens), where recomputation sees 64 at every step, so
        // the text may part there (for most of these prompts it does).
        using TextGenerationTransformer model = VariedGpt.Load(new MLContext(seed: 1));
        string[] prompts = { "To be, or not to be, that is the q", "KING HENRY: Now is the winter of our", "ROMEO:\nBut soft, what light through" };
        var options = new GenerationOptions { MaxNewTokens = 100, Temperature = 0 };
        var uncached = new GenerationOptions { MaxNewTokens = 100, Temperature = 0, UseKeyValueCache = false };
        int context = model.Model.ContextLength, parted = 0;
        foreach (string prompt in prompts)
        {
            string cached = model.Generate(prompt, options), recomputed = model.Generate(prompt, uncached);
            Assert.AreEqual(100, model.Tokenizer.Encode(cached).Count);
            Assert.AreEqual(100, model.Tokenizer.Encode(recomputed).Count);
            Assert.AreEqual(recomputed[..32], cached[..32], $"{prompt}: within the window");
            parted += recomputed == cached ? 0 : 1;

            // Past it, the cached text is recomputation over the windows the cache holds (the whole model, no cache).
            var sequence = TextGenerator.PromptIds(model.Tokenizer, context, prompt, options, null).Select(t => (long)t).ToList();
            Assert.HasCount(32, sequence);
            var expected = new List<int>();
            int start = 0;
            using (no_grad())
            {
                for (int step = 0; step < 100; step++)
                {
                    if (sequence.Count - start > context)
                    {
                        start = sequence.Count - context * 3 / 4;
                    }
                    using var scope = NewDisposeScope();
                    float[] scores = model.Model.Forward(tensor(sequence.Skip(start).ToArray()).unsqueeze(0))[0, -1].data<float>().ToArray();
                    int next = Scores.ArgMax(scores);
                    expected.Add(next);
                    sequence.Add(next);
                }
            }
            Assert.AreEqual(model.Tokenizer.Decode(expected), cached, $"{prompt}: the cache's windows, recomputed");
        }
        Assert.IsGreaterThan(0, parted, "the windows matter for some of these prompts, so the check above can fail");
        // A prompt longer than the context is cropped from the left, not an error.
        string longPrompt = string.Concat(Enumerable.Repeat("To be or not to be. ", 20));
        Assert.AreEqual(20, model.Tokenizer.Encode(model.Generate(longPrompt, new GenerationOptions { MaxNewTokens = 20, Temperature = 0 })).Count);
    }

    [TestMethod]
    public void ACroppedPromptIsLoggedToMLContext()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) { messages.Add(e.Message); } };
        string path = TestUtil.TempPath();
        _trained.Save(path);
        using TextGenerationTransformer loaded = ml.Transformers().LoadTextGeneration(path);
        loaded.Generate(new string('a', 200), new GenerationOptions { MaxNewTokens = 5, Temperature = 0 });
        lock (messages)
        {
            Assert.IsTrue(messages.Any(m => m.Contains("The prompt has 200 tokens; the context window is 64: keeping its last")), string.Join("\n", messages));
        }
    }

    [TestMethod]
    public void SamplingIsReproducibleWithASeed()
    {
        var options = new GenerationOptions { MaxNewTokens = 30, Temperature = 1.0, TopK = 20, TopP = 0.95, Seed = 7 };
        string first = _trained.Generate("ROMEO:", options);
        Assert.AreEqual(first, _trained.Generate("ROMEO:", options));
        options.Seed = 8;
        Assert.AreNotEqual(first, _trained.Generate("ROMEO:", options));
    }

    [TestMethod]
    public void StopStringsEndTheTextBeforeThem()
    {
        using TextGenerationTransformer model = VariedGpt.Load(new MLContext(seed: 1));
        string free = model.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 60, Temperature = 0 });
        char stop = free.Skip(5).First(c => c != ' ');
        int at = free.IndexOf(stop, 5);
        string stopped = model.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 60, Temperature = 0, StopStrings = new[] { stop.ToString() } });
        Assert.AreEqual(free[..free.IndexOf(stop)], stopped);
        Assert.IsLessThan(at + 1, stopped.Length);

        // With MinNewTokens the stop string counts only after that many tokens' text (characters here): the text runs
        // past the stop string's first place and ends before its first place after them.
        int min = at + 1;
        int later = free.IndexOf(stop, min);
        Assert.IsGreaterThan(min, later, "the greedy text has the stop string again, so the check can fail");
        string late = model.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 60, MinNewTokens = min, Temperature = 0, StopStrings = new[] { stop.ToString() } });
        Assert.AreEqual(free[..later], late);
    }

    [TestMethod]
    public async Task StreamingGivesTheSameTextInPieces()
    {
        using TextGenerationTransformer model = VariedGpt.Load(new MLContext(seed: 1));
        var options = new GenerationOptions { MaxNewTokens = 30, Temperature = 0 };
        var pieces = new List<string>();
        await foreach (string piece in model.GenerateStreaming("JULIET:", options))
        {
            pieces.Add(piece);
        }
        Assert.IsGreaterThan(1, pieces.Count);
        Assert.AreEqual(model.Generate("JULIET:", options), string.Concat(pieces));
    }

    [TestMethod]
    public void TransformAndPredictionEngineAddTheCompletionColumn()
    {
        var ml = new MLContext(seed: 1);
        using TextGenerationTransformer model = VariedGpt.Load(ml); // greedy text that differs between prompts
        string[] prompts = { "ROMEO:", "First Citizen:", "ROMEO:", "KING" };
        IDataView scored = model.Transform(ml.Data.LoadFromEnumerable(prompts.Select(p => new Prompt { Text = p })));
        var rows = ml.Data.CreateEnumerable<Completion>(scored, reuseRowObject: false).ToList();
        Assert.AreEqual(4, rows.Count);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.AreEqual(prompts[i], rows[i].Text, "the prompt column passes through");
            Assert.AreEqual(model.Generate(prompts[i]), rows[i].GeneratedText, $"row {i}");
        }
        Assert.AreEqual(rows[0].GeneratedText, rows[2].GeneratedText);
        Assert.AreEqual(3, rows.Select(r => r.GeneratedText).Distinct().Count(), "three prompts, three completions: a mix-up of rows would show");

        // Two prompts with different greedy completions, so that a stale result would show.
        string[] candidates = { "ROMEO:", "The king", "And so", "What is", "My lord, I" };
        string first = candidates[0];
        string second = candidates.First(c => model.Generate(c) != model.Generate(first));
        var engine = ml.Model.CreatePredictionEngine<Prompt, Completion>(model);
        Assert.AreEqual(model.Generate(first), engine.Predict(new Prompt { Text = first }).GeneratedText);
        Assert.AreEqual(model.Generate(second), engine.Predict(new Prompt { Text = second }).GeneratedText);
        Assert.AreEqual(model.Generate(first), engine.Predict(new Prompt { Text = first }).GeneratedText);
    }

    [TestMethod]
    public void OneModelServesConcurrentCallersAsItServesThemOneByOne()
    {
        // A web service keeps one model and gives each thread its own PredictionEngine (as ML.NET's PredictionEnginePool does):
        // calls on several threads must not share a key/value cache or a random source. A model whose own generation
        // settings sample (what PredictionEngine uses), so that a shared random source would show too; every prompt
        // three times, on four threads.
        var ml = new MLContext(seed: 1);
        TextGenerationOptions options = Tiny();
        options.Epochs = 3; // as the class's model: it writes text, not only the end of text
        options.Generation = new GenerationOptions { MaxNewTokens = 30, Temperature = 0.8, TopK = 20, Seed = 7 };
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(Load(ml, _shakespeare));
        string[] prompts = { "ROMEO:", "JULIET:", "First Citizen:", "KING", "My lord", "What is", "And so", "The" };
        string[] alone = prompts.Select(p => model.Generate(p)).ToArray();
        Assert.IsGreaterThan(4, alone.Distinct().Count(), "the prompts' completions differ, so that a mix-up would show: " + string.Join(" | ", alone));
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = 4 };
        int calls = prompts.Length * 3;
        string[] direct = new string[calls], engines = new string[calls], streamed = new string[calls];
        Parallel.For(0, calls, parallel, i => direct[i] = model.Generate(prompts[i % prompts.Length]));
        Parallel.For(0, calls, parallel, i => engines[i] = ml.Model.CreatePredictionEngine<Prompt, Completion>(model)
            .Predict(new Prompt { Text = prompts[i % prompts.Length] }).GeneratedText);
        Parallel.For(0, calls, parallel, i => streamed[i] = string.Concat(TestUtil.Pieces(model.GenerateStreaming(prompts[i % prompts.Length]))));
        for (int i = 0; i < calls; i++)
        {
            Assert.AreEqual(alone[i % prompts.Length], direct[i], $"Generate, call {i}");
            Assert.AreEqual(alone[i % prompts.Length], engines[i], $"PredictionEngine, call {i}");
            Assert.AreEqual(alone[i % prompts.Length], streamed[i], $"GenerateStreaming, call {i}");
        }
    }

    [TestMethod]
    public void FitsOnSeveralThreadsAtOnceRepeatTheRunsEachMakesAlone()
    {
        // A hyperparameter search may run Fits in parallel: each seeds libtorch's one generator to initialise its weights,
        // and without care one Fit's seeding landed in another's initialisation (the runs then differed from step 1); and
        // while the steps' dropout drew from that one generator, the runs differed from the first step that two Fits
        // took at the same time. Each step now draws from its run's own generator, so the same seed gives the same run,
        // step for step, with dropout on the residuals, the embeddings and the attention probabilities.
        var ml = new MLContext(seed: 1);
        string text = TestData.ShakespeareHead[..30_000];
        double[] Losses(int run)
        {
            TextGenerationOptions options = Tiny();
            options.Model = TextGenerationOptions.PresetConfig(GptPreset.Tiny);
            options.Model.Dropout = 0.2;
            options.Model.AttentionDropout = 0.2;
            options.Epochs = 1;
            options.BatchesPerEpoch = 15;
            options.LogEverySteps = 1;
            options.Seed = run + 1;
            using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(Load(ml, text[(run * 10_000)..((run + 1) * 10_000)]));
            return model.TrainingReports.Where(r => r.Kind == TrainingProgressKind.Step).Select(r => r.Loss).ToArray();
        }
        double[][] alone = Enumerable.Range(0, 3).Select(Losses).ToArray();
        double[][] together = new double[3][];
        Parallel.For(0, 3, new ParallelOptions { MaxDegreeOfParallelism = 3 }, run => together[run] = Losses(run));
        for (int run = 0; run < 3; run++)
        {
            Assert.AreEqual(15, alone[run].Length);
            CollectionAssert.AreEqual(alone[run], together[run], $"run {run}: {string.Join(", ", alone[run].Take(3))} alone, {string.Join(", ", together[run].Take(3))} together");
        }
    }

    /// <summary>A tiny model trained for 5 batches with the options <paramref name="set"/> gives, and its saved and reloaded copy.</summary>
    private (TextGenerationTransformer Model, TextGenerationTransformer Loaded) FitSaveAndReload(MLContext ml, Action<TextGenerationOptions> set)
    {
        var options = Tiny();
        options.Epochs = 1;
        options.BatchesPerEpoch = 5;
        set(options);
        TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(Load(ml, _shakespeare[..10_000]));
        string path = TestUtil.TempPath();
        model.Save(path);
        return (model, ml.Transformers().LoadTextGeneration(path));
    }

    [TestMethod]
    public void ByDefaultATrainedModelSamplesWithMinPAndSavesIt()
    {
        var ml = new MLContext(seed: 1);
        (TextGenerationTransformer model, TextGenerationTransformer loaded) = FitSaveAndReload(ml, o => o.Generation = new TextGenerationOptions().Generation);
        using var _ = model;
        using var __ = loaded;
        Assert.AreEqual("temperature 0.8, top-k 40, min-p 0.1, seed 1", loaded.Generation.ToString());
        Assert.AreEqual(100, loaded.Generation.MaxNewTokens);
        // On a trained model the default rule drops some of the unlikely characters that top-k 40 alone keeps (this barely
        // trained one is too close to uniform for min-p to drop any).
        GenerationOptions rule = new TextGenerationOptions().Generation;
        string withMinP = _trained.Generate("ROMEO:", rule);
        rule.MinP = 0;
        Assert.AreNotEqual(_trained.Generate("ROMEO:", rule), withMinP);
    }

    [TestMethod]
    public void AReloadedGeneratorKeepsTheGenerationSettingsItWasSavedWith()
    {
        var ml = new MLContext(seed: 1);
        (TextGenerationTransformer model, TextGenerationTransformer loaded) = FitSaveAndReload(ml, o =>
        {
            o.TransformBatchSize = 3;
            o.Generation = new GenerationOptions { MaxNewTokens = 17, MinNewTokens = 6, Temperature = 0.7, TopK = 5, TopP = 0.9, MinP = 0.05, RepetitionPenalty = 1.3, NoRepeatNgramSize = 4, StopStrings = new[] { "\n\n" }, Seed = 11 };
        });
        using var _ = model;
        using var __ = loaded;
        Assert.AreEqual(17, loaded.Generation.MaxNewTokens);
        Assert.AreEqual(6, loaded.Generation.MinNewTokens);
        Assert.AreEqual(0.7, loaded.Generation.Temperature);
        Assert.AreEqual(5, loaded.Generation.TopK);
        Assert.AreEqual(0.9, loaded.Generation.TopP);
        Assert.AreEqual(0.05, loaded.Generation.MinP);
        Assert.AreEqual(1.3, loaded.Generation.RepetitionPenalty);
        Assert.AreEqual(4, loaded.Generation.NoRepeatNgramSize);
        CollectionAssert.AreEqual(new[] { "\n\n" }, loaded.Generation.StopStrings.ToArray());
        Assert.AreEqual(11, loaded.Generation.Seed);
        Assert.AreEqual(3, loaded.TransformBatchSize);
        // Transform of the reloaded model writes what the saved one writes (sampled with the saved seed).
        string[] prompts = { "ROMEO:", "JULIET:", "First Citizen:", "KING" };
        IDataView input = ml.Data.LoadFromEnumerable(prompts.Select(p => new Prompt { Text = p }));
        string[] before = model.Transform(input).GetColumn<string>("GeneratedText").ToArray();
        string[] after = loaded.Transform(input).GetColumn<string>("GeneratedText").ToArray();
        CollectionAssert.AreEqual(before, after);
        Assert.IsTrue(before.All(t => t.Length > 0), "non-empty completions");
        Assert.IsTrue(before.Distinct().Count() > 1, "sampled completions differ between prompts");
    }

    [TestMethod]
    public void SaveAndLoadGiveTheSameModel()
    {
        string path = TestUtil.TempPath();
        _trained.Save(path);
        var ml = new MLContext();
        using TextGenerationTransformer loaded = ml.Transformers().LoadTextGeneration(path);
        var options = new GenerationOptions { MaxNewTokens = 30, Temperature = 0 };
        Assert.AreEqual(_trained.Generate("ROMEO:", options), loaded.Generate("ROMEO:", options));
        var sampled = new GenerationOptions { MaxNewTokens = 30, Temperature = 0.9, TopK = 20, Seed = 4 }; // this model's greedy text is one character
        Assert.AreEqual(_trained.Generate("ROMEO:", sampled), loaded.Generate("ROMEO:", sampled));
        Assert.AreEqual(_trained.Tokenizer.Definition.ToJson(), loaded.Tokenizer.Definition.ToJson());
        Assert.AreEqual(_trained.ParameterCount, loaded.ParameterCount);

        // A file of another capability, or a damaged one, fails with a message that names the problem.
        string other = TestUtil.TempPath();
        using (var translation = new Transformers.ML.Core.Modules.EncoderDecoderTransformer("t", TestUtil.Tiny(), 10))
        {
            Transformers.ML.Core.IO.ModelFile.Save(other, "translation", TestUtil.Tiny().ToJson(), null, translation);
        }
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadTextGeneration(other));
        StringAssert.Contains(e.Message, "holds a model of kind 'translation'; expected kind 'text-generation'");
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadTextGeneration(path));
        StringAssert.Contains(e.Message, "truncated");
    }

    [TestMethod]
    public void EvaluationReportsCrossEntropyAndPerplexity()
    {
        var ml = new MLContext();
        string heldOut = TestData.ShakespeareHead[100_000..104_000];
        TextGenerationMetrics metrics = ml.Transformers().EvaluateTextGeneration(_trained, Load(ml, heldOut));
        Assert.AreEqual(Math.Exp(metrics.CrossEntropy), metrics.Perplexity, 1e-9);
        Assert.AreEqual(heldOut.Length - 1, metrics.Tokens, "every character after the first is predicted once");
        Assert.IsLessThan(3.3, metrics.CrossEntropy);
        // An untrained model of the same shape is near-uniform: ln(vocabulary).
        var options = Tiny();
        options.Epochs = 1;
        options.BatchesPerEpoch = 1;
        options.LearningRate = 1e-9;
        using TextGenerationTransformer untrained = ml.Transformers().TextGeneration(options).Fit(Load(ml, _shakespeare));
        TextGenerationMetrics baseline = ml.Transformers().EvaluateTextGeneration(untrained, Load(ml, heldOut));
        Assert.AreEqual(Math.Log(untrained.VocabularySize), baseline.CrossEntropy, 0.3);
    }

    [TestMethod]
    public void FineTuningKeepsTheTokenizerAndLearnsTheNewText()
    {
        var ml = new MLContext(seed: 2);
        string dracula = TestData.DraculaExcerpt;
        var options = Tiny();
        options.Epochs = 2;
        options.LearningRate = 1e-3;
        IDataView vampire = Load(ml, dracula);
        double before = ml.Transformers().EvaluateTextGeneration(_trained, vampire).CrossEntropy;
        using TextGenerationTransformer tuned = ml.Transformers().TextGeneration(_trained, options).Fit(vampire);
        Assert.AreEqual(_trained.Tokenizer.Definition.ToJson(), tuned.Tokenizer.Definition.ToJson());
        Assert.IsLessThan(before, ml.Transformers().EvaluateTextGeneration(tuned, vampire).CrossEntropy);
        // The base model itself is left unchanged.
        Assert.AreEqual(before, ml.Transformers().EvaluateTextGeneration(_trained, vampire).CrossEntropy, 1e-9);

        // And from a saved file, through the option.
        string path = TestUtil.TempPath();
        _trained.Save(path);
        options.BaseModelPath = path;
        options.Epochs = 1;
        using TextGenerationTransformer fromFile = ml.Transformers().TextGeneration(options).Fit(vampire);
        Assert.AreEqual(_trained.Tokenizer.Definition.ToJson(), fromFile.Tokenizer.Definition.ToJson());
    }

    [TestMethod]
    public void AnInterruptedFitResumesFromItsCheckpointExactly()
    {
        var ml = new MLContext(seed: 1);
        IDataView data = Load(ml, _shakespeare[..20_000]);
        TextGenerationOptions Options()
        {
            var o = Tiny();
            o.Epochs = 2;
            o.BatchesPerEpoch = 6;
            o.Model = TextGenerationOptions.PresetConfig(GptPreset.Tiny);
            o.Model.Dropout = 0.1; // dropout on: the resumed steps must draw the same masks
            return o;
        }
        using TextGenerationTransformer full = ml.Transformers().TextGeneration(Options()).Fit(data);

        string checkpoint = TestUtil.TempPath();
        var first = Options();
        first.CheckpointPath = checkpoint;
        first.MaxSteps = 8; // stops in the second epoch, writing the checkpoint
        ml.Transformers().TextGeneration(first).Fit(data).Dispose();
        var rest = Options();
        rest.CheckpointPath = checkpoint;
        using TextGenerationTransformer resumed = ml.Transformers().TextGeneration(rest).Fit(data);

        var expected = Transformers.ML.Core.IO.ModuleState.Of(full.Model);
        foreach ((string name, Tensor value) in Transformers.ML.Core.IO.ModuleState.Of(resumed.Model))
        {
            Assert.IsLessThan(1e-6, TestUtil.MaxAbsDiff(value, expected[name]), name);
        }
        Assert.AreEqual(full.EpochReports[^1].ValidationValue!.Value, resumed.EpochReports[^1].ValidationValue!.Value, 1e-6);
    }

    [TestMethod]
    public void TheTimeBudgetRecipesAreTheSmallGptWithoutDropoutOnASchedulePlannedOverTheBudget()
    {
        // The recipe measured in the benchmark and run by the main example (1.51-1.52 nats per character in 5 minutes).
        TextGenerationOptions recipe = TextGenerationOptions.ForTimeBudget(TimeSpan.FromMinutes(5));
        recipe.Validate();
        TransformerConfig small = TextGenerationOptions.PresetConfig(GptPreset.Small);
        Assert.AreEqual((small.NumLayers, small.ModelDimension, small.NumHeads), (recipe.Model!.NumLayers, recipe.Model.ModelDimension, recipe.Model.NumHeads));
        Assert.AreEqual((64, 0.0, 0.0), (recipe.Model.MaxSequenceLength, recipe.Model.Dropout, recipe.Model.AttentionDropout));
        Assert.AreEqual((TokenizerKind.BytePairEncoding, 1024), (recipe.Tokenizer, recipe.VocabularySize));
        Assert.AreEqual((16, 100), (recipe.BatchSize, recipe.BatchesPerEpoch));
        Assert.AreEqual((2e-3, 100, 0.1), (recipe.LearningRate, recipe.WarmupSteps, recipe.MinLearningRateRatio));
        Assert.AreEqual((LearningRateScheduleKind.WarmupCosine, TrainingPrecision.Float32), (recipe.Schedule, recipe.Precision));
        Assert.AreEqual(TimeSpan.FromMinutes(5), recipe.MaxTrainingTime);
        Assert.AreEqual(TokenizerKind.Character, TextGenerationOptions.ForTimeBudget(TimeSpan.FromMinutes(5), TokenizerKind.Character).Tokenizer);

        // Fine-tuning: the same recipe with a lower peak and a shorter warmup.
        TextGenerationOptions fine = TextGenerationOptions.ForFineTuning(TimeSpan.FromMinutes(1.5));
        fine.Validate();
        Assert.AreEqual((5e-4, 20), (fine.LearningRate, fine.WarmupSteps));
        Assert.AreEqual((recipe.BatchSize, recipe.MinLearningRateRatio, recipe.Model.MaxSequenceLength), (fine.BatchSize, fine.MinLearningRateRatio, fine.Model!.MaxSequenceLength));
        Assert.AreEqual(TimeSpan.FromMinutes(1.5), fine.MaxTrainingTime);
    }

    [TestMethod]
    public void BadInputFailsWithMessagesThatNameTheProblem()
    {
        var ml = new MLContext();
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transformers().TextGeneration(Tiny()).Fit(Load(ml, "", "")));
        StringAssert.Contains(e.Message, "holds no text");

        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transformers().TextGeneration(new TextGenerationOptions { TextColumnName = "Body", Preset = GptPreset.Tiny }).Fit(Load(ml, "abc")));
        StringAssert.Contains(missing.Message, "no column 'Body'");

        IDataView numbers = ml.Data.LoadFromEnumerable(new[] { new { Text = 1.5f } });
        var wrongType = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transformers().TextGeneration(Tiny()).Fit(numbers));
        StringAssert.Contains(wrongType.Message, "expected Text");

        e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transformers().TextGeneration(Tiny()).Fit(Load(ml, "Too short for a window.")));
        StringAssert.Contains(e.Message, "fewer than one context window");

        var vocab = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transformers().TextGeneration(new TextGenerationOptions { Tokenizer = TokenizerKind.BytePairEncoding, VocabularySize = 100 }));
        StringAssert.Contains(vocab.Message, "VocabularySize");

        var topP = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _trained.Generate("a", new GenerationOptions { TopP = 1.5 }));
        StringAssert.Contains(topP.Message, "TopP must be in (0, 1]; found 1.5");
        var topK = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _trained.Generate("a", new GenerationOptions { TopK = -1 }));
        StringAssert.Contains(topK.Message, "TopK");
        var stop = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _trained.Generate("a", new GenerationOptions { StopStrings = new[] { "\n\n", "" } }));
        StringAssert.Contains(stop.Message, "StopStrings must be a list of non-empty strings; found [\"\\n\\n\", \"\"] (item 1 is empty)");
        var min = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _trained.Generate("a", new GenerationOptions { MaxNewTokens = 10, MinNewTokens = 11 }));
        StringAssert.Contains(min.Message, "Generation option MinNewTokens must be in [0, MaxNewTokens = 10]; found 11.");

        // Documented behaviour: temperature <= 0 is greedy; an empty prompt starts from the end-of-text token.
        string greedy = _trained.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 10, Temperature = 0 });
        Assert.AreEqual(greedy, _trained.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 10, Temperature = -1, Seed = 3 }));
        Assert.AreNotEqual(greedy, _trained.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 10, Temperature = 1, Seed = 3 }), "sampling with that seed differs, so the check can fail");
        Assert.AreEqual(10, _trained.Tokenizer.Encode(_trained.Generate("", new GenerationOptions { MaxNewTokens = 10, Temperature = 0 })).Count);
    }

    [TestMethod]
    public void MlNetsModelSaveIsRefusedWithTheModelsOwnSaveAndLoader()
    {
        var refusal = Assert.ThrowsExactly<NotSupportedException>(() => ((ICanSaveModel)_trained).Save(null!));
        Assert.AreEqual("A TextGenerationTransformer cannot be written by mlContext.Model.Save (ML.NET keeps the writers of its model format internal). " +
            "Use model.Save(path) and mlContext.Transformers().LoadTextGeneration(path).", refusal.Message);
    }

    [TestMethod]
    public void Gpt2SmallHas124MParameters()
    {
        TransformerConfig config = TextGenerationOptions.PresetConfig(GptPreset.Gpt2Small);
        using var model = new GptModel(config, TextTokenizer.Gpt2VocabularySize);
        Assert.AreEqual(124_439_808L, model.parameters().Sum(p => p.numel()));
    }

    [TestMethod]
    public void TheNextTokenLogitsAreTheLastPositionOfAllAndTheCacheGrowsTheSame()
    {
        // The generator projects only the last position; it must be Forward's last row, and leave the cache as Forward does.
        manual_seed(3);
        TransformerConfig config = TextGenerationOptions.PresetConfig(GptPreset.Tiny);
        using var model = new GptModel(config, 97);
        model.eval();
        using var noGrad = no_grad();
        using Tensor prompt = randint(0, 97, new long[] { 2, 9 }), next = randint(0, 97, new long[] { 2, 1 });
        using Tensor all = model.Forward(prompt);                                      // (2, 9, 97)
        using Tensor last = model.NextTokenLogits(prompt);                             // (2, 97)
        CollectionAssert.AreEqual(new long[] { 2, 97 }, last.shape);
        Assert.IsTrue(all.select(1, -1).allclose(last, rtol: 1e-5, atol: 1e-6));
        Assert.IsFalse(all.select(1, -2).allclose(last, rtol: 1e-5, atol: 1e-6)); // not just any row
        using KeyValueCache full = model.CreateCache(), lastOnly = model.CreateCache();
        model.Forward(prompt, full).Dispose();
        model.NextTokenLogits(prompt, lastOnly).Dispose();
        Assert.AreEqual(9L, lastOnly.Length);
        using Tensor afterFull = model.Forward(next, full).squeeze(1), afterLast = model.NextTokenLogits(next, lastOnly);
        Assert.IsTrue(afterFull.allclose(afterLast, rtol: 1e-5, atol: 1e-6));
    }

    /// <summary>
    /// A left-padded row scores as its prompt alone, in the prompt step and the cached steps after it, and without a
    /// cache; with learned and with sinusoidal positions. Without being told of the padding the short rows score otherwise.
    /// </summary>
    [TestMethod]
    [DataRow(PositionalEncodingKind.Learned)]
    [DataRow(PositionalEncodingKind.Sinusoidal)]
    public void ALeftPaddedRowScoresAsItsPromptAlone(PositionalEncodingKind positions)
    {
        manual_seed(5);
        TransformerConfig config = TextGenerationOptions.PresetConfig(GptPreset.Tiny);
        config.PositionalEncoding = positions;
        using var model = new GptModel(config, 97);
        model.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope(); // the per-step tensors below
        int[] lengths = { 9, 4, 1 };
        Tensor[] prompts = lengths.Select(n => randint(1, 97, new long[] { 1, n })).ToArray();
        Tensor[] steps = Enumerable.Range(0, 3).Select(_ => randint(0, 97, new long[] { lengths.Length, 1 })).ToArray();
        using Tensor padding = tensor(lengths.Select(n => (long)(9 - n)).ToArray());
        using Tensor padded = cat(prompts.Select(p => nn.functional.pad(p, new long[] { 9 - p.shape[1], 0 }, value: 0)).ToArray(), 0); // (3, 9)

        using KeyValueCache batchCache = model.CreateCache();
        var batch = new List<Tensor> { model.NextTokenLogits(padded, batchCache, padding) };
        batch.AddRange(steps.Select(step => model.NextTokenLogits(step, batchCache, padding)));
        using Tensor uncached = model.NextTokenLogits(cat(new[] { padded }.Concat(steps).ToArray(), 1), null, padding);
        using Tensor unpadded = model.NextTokenLogits(padded);
        for (int row = 0; row < lengths.Length; row++)
        {
            using KeyValueCache alone = model.CreateCache();
            var expected = new List<Tensor> { model.NextTokenLogits(prompts[row], alone) };
            expected.AddRange(steps.Select(step => model.NextTokenLogits(step[row].unsqueeze(0), alone)));
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.IsLessThan(2e-5, TestUtil.MaxAbsDiff(expected[i][0], batch[i][row]), $"{positions}, row {row} (prompt of {lengths[row]}), step {i}");
            }
            Assert.IsLessThan(2e-5, TestUtil.MaxAbsDiff(expected[^1][0], uncached[row]), $"{positions}, row {row}: the whole window without a cache");
            if (lengths[row] < 9)
            {
                Assert.IsGreaterThan(1e-3, TestUtil.MaxAbsDiff(expected[0][0], unpadded[row]), $"{positions}, row {row}: the padding must matter");
            }
        }
    }

    /// <summary>
    /// Prompts of different lengths generate in one batch (left-padded), past the context window, with and without the
    /// cache: greedy text is each prompt's alone, and sampled text with a seed does not depend on the batching.
    /// </summary>
    [TestMethod]
    public void PromptsOfDifferentLengthsGenerateTogetherAsTheyDoAlone()
    {
        using TextGenerationTransformer model = VariedGpt.Load(new MLContext(seed: 1));
        string[] prompts = { "ROMEO:", "To be, or not to be", "K", _shakespeare[2000..2050], "First Citizen:\nWe are accounted poor" };
        var generator = new TextGenerator(model.Model, model.Tokenizer, CPU, null);
        // 24 new tokens: all but the 50-token prompt fit in the 64-token window and decode in one padded batch; 80: the
        // window slides for every row.
        foreach ((bool cache, int newTokens) in new[] { (true, 24), (false, 24), (true, 80), (false, 80) })
        {
            var greedy = new GenerationOptions { MaxNewTokens = newTokens, Temperature = 0, UseKeyValueCache = cache };
            string[] together = generator.Generate(prompts, greedy, maxBatch: 16);
            CollectionAssert.AreEqual(prompts.Select(p => generator.Generate(new[] { p }, greedy)[0]).ToArray(), together, $"cache {cache}, {newTokens} new tokens");
            Assert.IsTrue(together.All(t => model.Tokenizer.Encode(t).Count == newTokens));
        }
        var sampling = new GenerationOptions { MaxNewTokens = 40, Temperature = 0.9, TopK = 20, Seed = 3 };
        string[] sampled = generator.Generate(prompts, sampling, maxBatch: 16);
        CollectionAssert.AreEqual(generator.Generate(prompts, sampling, maxBatch: 1), sampled, "one at a time");
        CollectionAssert.AreEqual(generator.Generate(prompts, sampling, maxBatch: 2), sampled, "in twos");
        Assert.AreEqual(model.Generate(prompts[0], sampling), sampled[0], "the first prompt draws from the seed itself");
        string[] twice = generator.Generate(new[] { "ROMEO:", "ROMEO:" }, sampling);
        Assert.AreNotEqual(twice[0], twice[1], "a prompt given twice gets two samples");

        // The batches: prompts that fit in the window with their new tokens together, sorted by length; those that would
        // slide it with prompts of their own length only (here 36 and 50 tokens, both cropped to 32 to leave room for 40
        // new tokens: 32 + 40 > 64).
        List<int[]> Batches(int newTokens)
        {
            var batches = new List<int[]>();
            var options = new GenerationOptions { MaxNewTokens = newTokens, Temperature = 0 };
            TextGenerator.Generate(model.Tokenizer, model.Model.ContextLength, prompts, options, 16, null,
                () => new RecordingStepper(new TorchCausalStepper(model.Model, CPU), batches), acceptsPadding: true);
            return batches;
        }
        CollectionAssert.AreEqual(new[] { "1,6,19", "32,32" }, Batches(40).Select(b => string.Join(",", b)).ToArray());
        CollectionAssert.AreEqual(new[] { "1,6,19,36,50" }, Batches(10).Select(b => string.Join(",", b)).ToArray());
    }

    /// <summary>Records the prompt lengths of each batch it runs (its first step's row lengths, less their padding).</summary>
    private sealed class RecordingStepper(ICausalStepper inner, List<int[]> batches) : ICausalStepper
    {
        private bool _started;

        public int ContextLength => inner.ContextLength;

        public bool HasCache => inner.HasCache;

        public int CachedLength => inner.CachedLength;

        public bool AcceptsPadding => inner.AcceptsPadding;

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int>? leftPadding = null)
        {
            if (!_started)
            {
                _started = true;
                batches.Add(ids.Select((row, r) => row.Count - (leftPadding?[r] ?? 0)).ToArray());
            }
            return inner.Step(ids, leftPadding);
        }

        public void ResetCache() => inner.ResetCache();

        public void Reserve(int positions) => inner.Reserve(positions);

        public void Dispose() => inner.Dispose();
    }

    private sealed class Collect(List<TrainingProgress> reports) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => reports.Add(value);
    }
}

using System.Diagnostics;
using Microsoft.ML;
using TorchSharp;
using Transformers.ML.Core.Generation;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using Transformers.ML.Examples;
using Transformers.ML.TextGeneration;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Benchmarks;

/// <summary>Text generation rows: quality per minute of training, generation speed with and without the cache, trainer overhead.</summary>
internal static class TextGenerationBenchmark
{
    private sealed class Document
    {
        public string Text { get; set; } = "";
    }

    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        string path = DataLocator.File(options.Data, "text/tinyshakespeare.txt");
        string text = File.ReadAllText(path);
        bool Runs(string part) => options.Only.Length == 0 || options.Only.Contains("textgen") || options.Only.Contains("textgen." + part);
        if (Runs("quality"))
        {
            Quality(table, options, text);
        }
        if (Runs("recipe"))
        {
            Recipe(table, options, text);
        }
        if (Runs("speed"))
        {
            GenerationSpeed(table, options);
        }
        if (Runs("positions"))
        {
            PositionSpeed(table);
        }
        if (Runs("prompt"))
        {
            PromptSpeed(table);
        }
        if (Runs("trainer"))
        {
            TrainerOverhead(table, options, text);
        }
    }

    /// <summary>
    /// nanoGPT's CPU Shakespeare model (4 layers, 4 heads, width 128, context 64, batch 12, no dropout, lr 1e-3 with
    /// cosine decay to 1e-4, beta2 0.99), trained for up to 4000 steps or the time budget: validation loss on the last
    /// 10% of the characters (all of it, in consecutive windows) against time.
    /// </summary>
    private static void Quality(ResultsTable table, BenchmarkOptions options, string text)
    {
        var ml = new MLContext(seed: 1);
        double minutes = options.Quick ? 1 : 5;
        var config = TextGenerationOptions.PresetConfig(GptPreset.Small);
        config.MaxSequenceLength = 64;
        config.Dropout = 0;
        config.AttentionDropout = 0;
        var curve = new List<(double Minutes, double Loss)>();
        var trainer = new TextGenerationOptions
        {
            Model = config,
            Tokenizer = TokenizerKind.Character,
            BatchSize = 12,
            Epochs = 40,
            BatchesPerEpoch = 100,
            ValidationFraction = 0.1,
            ValidationBatches = 20,
            LearningRate = 1e-3,
            MinLearningRateRatio = 0.1,
            WarmupSteps = 100,
            Beta2 = 0.99,
            WeightDecay = 0.1,
            GradientClipNorm = 1.0,
            MaxTrainingTime = TimeSpan.FromMinutes(minutes),
            LogEverySteps = 1_000_000,
            Progress = new CallbackProgress(p =>
            {
                if (p.Kind == TrainingProgressKind.EpochEnd && p.ValidationValue is double loss)
                {
                    curve.Add((p.Elapsed.TotalMinutes, loss));
                }
            }),
        };
        var clock = Stopwatch.StartNew();
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(trainer).Fit(ml.Data.LoadFromEnumerable(new[] { new Document { Text = text } }));
        double trained = clock.Elapsed.TotalMinutes;
        // The loss after the last step, on the same validation windows, even when time ran out mid-epoch.
        var validation = ml.Data.LoadFromEnumerable(new[] { new Document { Text = TextRecipe.Split(text).HeldOut } });
        double final = ml.Transformers().EvaluateTextGeneration(model, validation).CrossEntropy;
        string points = string.Join(" ", curve.Where((_, i) => i % 5 == 4).Select(c => $"{c.Minutes:F1}min:{c.Loss:F2}"));
        table.Add(new BenchmarkRow("text generation", $"Tiny Shakespeare char-level validation loss after {trained:F1} min of training", final, "nats/char",
            "<= 1.88 within 5 min", $"nanoGPT's CPU run: 4L/4H/128d ctx 64 B 12, {curve.Count * 100} of 4000 steps (budget {minutes} min); validation curve {points}"));
    }

    /// <summary>
    /// The example's recipe (TextRecipe) for its time budget, with characters and with a learned BPE: the held-out loss (the
    /// last tenth of Tiny Shakespeare) in nats and bits per character; then each of the seed's genres fine-tuned from the
    /// character model, with the perplexity of a held-out tenth of the genre before and after.
    /// </summary>
    private static void Recipe(ResultsTable table, BenchmarkOptions options, string text)
    {
        var ml = new MLContext(seed: 1);
        double minutes = options.Quick ? 1 : 5, genreMinutes = options.Quick ? 0.3 : 1.5;
        text = text.Replace("\r\n", "\n");
        (string trainText, string heldOutText) = TextRecipe.Split(text);
        IDataView train = ml.Data.LoadFromEnumerable(new[] { new Document { Text = trainText } });
        IDataView heldOut = ml.Data.LoadFromEnumerable(new[] { new Document { Text = heldOutText } });
        TextGenerationTransformer? characters = null;
        HashSet<string> bookWords = SampledWords.Vocabulary(new[] { trainText });
        // --recipes char, bpe, char-avg (the recipe with the last 5 checkpoints averaged) or bpe-dropout (the BPE recipe with
        // dropout 0.1, for hosts fast enough to pass over the book many times in the budget); --seeds runs each recipe with
        // each seed, the recipes alternating within a seed. The genres need the character model.
        var kinds = new (string Name, TokenizerKind Kind, int Averaged, double Dropout)[]
            {
                ("char", TokenizerKind.Character, 1, 0.0), ("bpe", TokenizerKind.BytePairEncoding, 1, 0.0), ("char-avg", TokenizerKind.Character, 5, 0.0),
                ("bpe-dropout", TokenizerKind.BytePairEncoding, 1, 0.1),
            }
            .Where(k => options.Recipes.Length == 0 ? k.Averaged == 1 && k.Dropout == 0 : options.Recipes.Contains(k.Name)).ToList();
        int[] seeds = options.Seeds ?? new[] { 1 };
        foreach ((string name, TokenizerKind kind, int averaged, double dropout, int seed) in seeds.SelectMany(seed => kinds.Select(k => (k.Name, k.Kind, k.Averaged, k.Dropout, seed))))
        {
            TextGenerationOptions o = TextRecipe.Options(kind, TimeSpan.FromMinutes(minutes));
            o.RestoreBestWeights = false;
            o.LogEverySteps = 1_000_000;
            o.AveragedCheckpoints = averaged;
            o.AveragingSpan = 0.25;
            o.Seed = seed;
            o.Model!.Dropout = dropout;
            o.Model.AttentionDropout = dropout;
            var clock = Stopwatch.StartNew();
            TextGenerationTransformer model = ml.Transformers().TextGeneration(o).Fit(train, heldOut);
            double trained = clock.Elapsed.TotalMinutes;
            TextGenerationMetrics m = ml.Transformers().EvaluateTextGeneration(model, heldOut);
            string sample = model.Generate("This story is about").Replace("\n", " / ");
            string what = kind == TokenizerKind.Character ? "characters" : "learned BPE (1,024 tokens)";
            string variant = (averaged > 1 ? $", last {averaged} checkpoints averaged" : "") + (dropout > 0 ? $", dropout {dropout}" : "") + (options.Seeds is null ? "" : $", seed {seed}");
            table.Add(new BenchmarkRow("text generation", $"example recipe, {what}{variant}: held-out loss after {trained:F1} min",
                m.BitsPerCharacter * Math.Log(2), "nats/char", kind == TokenizerKind.Character ? "<= 1.55" : "-",
                $"{m.BitsPerCharacter:F3} bits/char, {m.CrossEntropy:F3} nats/token; {model.ParameterCount:N0} params, {model.TrainingReports[^1].Step} steps; \"This story is about{sample}\""));
            SampleWordsRow(table, $"example recipe, {what}{variant}", model, Shakespeare, heldOutText, bookWords);
            if (kind == TokenizerKind.Character && characters is null)
            {
                characters = model;
            }
            else
            {
                model.Dispose();
            }
        }
        foreach (Genre genre in characters is null ? Array.Empty<Genre>() : Genre.All)
        {
            var texts = genre.Books.Select(b => TextRecipe.Split(Books.Body(Books.Read(options.Data, b)))).ToList();
            IDataView tune = ml.Data.LoadFromEnumerable(texts.Select(t => new Document { Text = t.Train }));
            IDataView held = ml.Data.LoadFromEnumerable(texts.Select(t => new Document { Text = t.HeldOut }));
            TextGenerationMetrics before = ml.Transformers().EvaluateTextGeneration(characters!, held);
            TextGenerationOptions fine = TextRecipe.FineTuning(TextRecipe.Options(TokenizerKind.Character, TimeSpan.Zero), TimeSpan.FromMinutes(genreMinutes));
            fine.TextColumnName = nameof(Document.Text);
            fine.LogEverySteps = 1_000_000;
            var clock = Stopwatch.StartNew();
            using TextGenerationTransformer tuned = ml.Transformers().TextGeneration(characters!, fine).Fit(tune);
            double trained = clock.Elapsed.TotalMinutes;
            TextGenerationMetrics after = ml.Transformers().EvaluateTextGeneration(tuned, held);
            string sample = tuned.Generate("This story is about").Replace("\n", " / ");
            table.Add(new BenchmarkRow("text generation", $"fine-tuning on {genre.Name} ({string.Join(" + ", genre.Titles)}) for {trained:F1} min: held-out perplexity",
                after.Perplexity, "perplexity", $"< {before.Perplexity:F2} (before)", $"before {before.Perplexity:F2}; {before.BitsPerCharacter:F3} -> {after.BitsPerCharacter:F3} bits/char on the genre's last tenth, never trained on; \"This story is about{sample}\""));
            var genreWords = new HashSet<string>(bookWords);
            genreWords.UnionWith(SampledWords.Vocabulary(texts.Select(t => t.Train)));
            SampleWordsRow(table, $"the character model fine-tuned on {genre.Name}", tuned, Stories, string.Concat(texts.Select(t => t.HeldOut)), genreWords);
        }
        characters?.Dispose();
    }

    private static readonly string[] Shakespeare = { "This story is about", "ROMEO:", "First Citizen:\nWe are" };
    private static readonly string[] Stories = { "This story is about", "It was", "She said" };

    /// <summary>
    /// The words of the model's samples with its own sampling rule (the recipe's: min-p 0.1 on top of temperature 0.8 and
    /// top-k 40) and with the same rule without min-p: the share not in the texts it learned from (made-up words, mostly)
    /// and the share of distinct word pairs, beside the held-out text's own (<see cref="SampledWords"/>).
    /// </summary>
    private static void SampleWordsRow(ResultsTable table, string what, TextGenerationTransformer model, string[] prompts, string heldOut, HashSet<string> vocabulary)
    {
        GenerationOptions rule = SampledWords.Rule(model.Generation, model.Generation.MinP);
        SampledWords.Measure own = SampledWords.OfSamples(model, rule, prompts, vocabulary);
        SampledWords.Measure without = SampledWords.OfSamples(model, SampledWords.Rule(model.Generation, 0), prompts, vocabulary);
        SampledWords.Measure text = SampledWords.OfText(heldOut, vocabulary);
        table.Add(new BenchmarkRow("text generation", $"{what}: sampled words not in its training text ({rule})",
            own.NewWordPercent, "%", $"< {without.NewWordPercent:F2} (without min-p)",
            $"{own.Words:N0} words of 48 samples of 120 tokens; without min-p {without.NewWordPercent:F2} %; the held-out text's own words not in the training text " +
            $"{text.NewWordPercent:F2} %; distinct word pairs per sample {own.DistinctPairs:F3} (without min-p {without.DistinctPairs:F3}, held-out text {text.DistinctPairs:F3})"));
    }

    /// <summary>
    /// Tokens/s of greedy generation, 256 new tokens after a 16-token prompt, with and without the key/value cache,
    /// batch 1 and 8, for the example's default model (Small, 0.9M parameters) and nanoGPT's baby GPT (10.7M).
    /// At batch 1 a cached step reads every weight once for one token, so its speed is bounded by memory
    /// bandwidth (43 MB of fp32 weights per token for the baby GPT), which caps the speed-up on this machine.
    /// </summary>
    private static void GenerationSpeed(ResultsTable table, BenchmarkOptions options)
    {
        int newTokens = options.Quick ? 64 : 256;
        foreach ((string name, GptPreset preset) in new[] { ("Small 4L/4H/128d", GptPreset.Small), ("Baby 6L/6H/384d", GptPreset.Baby) })
        {
            var config = TextGenerationOptions.PresetConfig(preset);
            config.MaxSequenceLength = 512;
            manual_seed(1);
            using var model = new GptModel(config, 322);
            model.eval();
            foreach (int batch in new[] { 1, 8 })
            {
                double cached = Speed(model, batch, newTokens, useCache: true);
                double uncached = Speed(model, batch, newTokens, useCache: false);
                table.Add(new BenchmarkRow("text generation", $"generation {name}, batch {batch}, with / without cache", cached, "tokens/s", "-",
                    $"without: {uncached:F0} tokens/s; {newTokens} new tokens"));
                table.Add(new BenchmarkRow("text generation", $"cache speed-up {name}, batch {batch}", cached / uncached, "x", ">= 6", ""));
            }
        }
    }

    /// <summary>
    /// TorchSharp tokens/s of cached greedy steps at positions 64, 256 and 1024 (32 steps after a prompt of that length):
    /// with keys and values written in place into buffers sized once for the generation (as CausalDecoding reserves them),
    /// the cost of a step should hardly depend on the position (only attention reads more keys).
    /// </summary>
    private static void PositionSpeed(ResultsTable table)
    {
        var config = TextGenerationOptions.PresetConfig(GptPreset.Small);
        config.MaxSequenceLength = 1024 + 64;
        manual_seed(1);
        using var model = new GptModel(config, 322);
        model.eval();
        var rates = new Dictionary<int, double>();
        using (var warm = new TorchCausalStepper(model, CPU))
        {
            // Past tiered compilation's recompilation of the hot managed code (after 30 calls), so that the first
            // position is not timed on unoptimised code.
            warm.Step(new[] { (IReadOnlyList<int>)Enumerable.Range(0, 64).Select(i => 256 + i % 60).ToList() });
            for (int i = 0; i < 100; i++)
            {
                warm.Step(new[] { (IReadOnlyList<int>)new[] { 256 + i % 60 } });
            }
        }
        Thread.Sleep(300);
        // Rounds outside, positions inside, so that a burst of load on this shared machine slows every position alike
        // (timed one position after the other, a slow spell once made 256 and 1024 look alike at 0.65 of 64).
        int[] positions = { 64, 256, 1024 };
        var prompts = positions.ToDictionary(p => p, p => new[] { (IReadOnlyList<int>)Enumerable.Range(0, p).Select(i => 256 + i % 60).ToList() });
        for (int round = 0; round < 5; round++)
        {
            foreach (int position in positions)
            {
                using var stepper = new TorchCausalStepper(model, CPU);
                stepper.Reserve(position + 32); // as the decoding loop sizes the cache for a generation
                stepper.Step(prompts[position]); // the prompt fills the cache
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < 32; i++)
                {
                    stepper.Step(new[] { (IReadOnlyList<int>)new[] { 256 + i } });
                }
                rates[position] = Math.Max(rates.GetValueOrDefault(position), 32 / clock.Elapsed.TotalSeconds);
            }
        }
        table.Add(new BenchmarkRow("text generation", "TorchSharp cached step at position 1024 / at 64 (Small 4L/4H/128d, batch 1)", rates[1024] / rates[64], "ratio", ">= 0.8",
            $"tokens/s at 64: {rates[64]:N0}, at 256: {rates[256]:N0}, at 1024: {rates[1024]:N0}; 32 steps after a prompt of that length, cache sized for them, best of 5 rounds over the three positions"));
    }

    /// <summary>
    /// The prompt's step of GPT-2 small in TorchSharp (random weights, GPT-2's 50,257 tokens, batch 1): the generator
    /// projects only the last position to the vocabulary (<see cref="GptModel.NextTokenLogits"/>), against the logits of
    /// every position (<see cref="GptModel.Forward"/>, what the generator computed until 2026-12-06); alternating rounds, best of 3.
    /// </summary>
    private static void PromptSpeed(ResultsTable table)
    {
        manual_seed(1);
        using var model = new GptModel(TextGenerationOptions.PresetConfig(GptPreset.Gpt2Small), TextTokenizer.Gpt2VocabularySize);
        model.eval();
        using var noGrad = no_grad();
        foreach (int length in new[] { 128, 512 })
        {
            using Tensor prompt = randint(0, TextTokenizer.Gpt2VocabularySize, new long[] { 1, length });
            double all = double.MaxValue, last = double.MaxValue;
            for (int round = 0; round < 3; round++)
            {
                var clock = Stopwatch.StartNew();
                using (Tensor logits = model.Forward(prompt), row = logits.select(1, -1).cpu())
                {
                    all = Math.Min(all, clock.Elapsed.TotalMilliseconds);
                }
                clock.Restart();
                using (Tensor row = model.NextTokenLogits(prompt).cpu())
                {
                    last = Math.Min(last, clock.Elapsed.TotalMilliseconds);
                }
            }
            table.Add(new BenchmarkRow("text generation", $"TorchSharp prompt step, GPT-2 small (random weights), {length}-token prompt, batch 1: all positions' logits / the last one's, time", all / last, "x", "-",
                $"{all:F0} ms against {last:F0} ms; the logits of all positions are {length * (long)TextTokenizer.Gpt2VocabularySize * 4 / 1e6:F0} MB a row; best of 3 alternating rounds"));
        }
    }

    private static double Speed(GptModel model, int batch, int newTokens, bool useCache)
    {
        var prompts = Enumerable.Range(0, batch).Select(b => (IReadOnlyList<int>)Enumerable.Range(0, 16).Select(i => 256 + (i * 7 + b) % 60).ToList()).ToList();
        var settings = new DecodingSettings { MaxNewTokens = newTokens };
        using (var warm = new TorchCausalStepper(model, CPU, useCache))
        {
            CausalDecoding.Generate(warm, prompts, settings with { MaxNewTokens = 4 });
        }
        using var stepper = new TorchCausalStepper(model, CPU, useCache);
        var clock = Stopwatch.StartNew();
        CausalDecoding.Generate(stepper, prompts, settings);
        return batch * newTokens / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Training throughput through the ML.NET trainer (Fit) against a plain loop over batches of the same shape.</summary>
    private static void TrainerOverhead(ResultsTable table, BenchmarkOptions options, string text)
    {
        int steps = options.Quick ? 15 : 80;
        string corpus = text[..300_000];
        double trainer = 0, plain = 0;
        for (int round = 0; round < 3; round++)
        {
            plain = Math.Max(plain, PlainLoop(corpus, steps));
            trainer = Math.Max(trainer, ThroughFit(corpus, steps));
        }
        table.Add(new BenchmarkRow("text generation", "training through the ML.NET trainer", trainer, "tokens/s", "-", $"Small preset, batch 32 x 128, {steps} steps"));
        table.Add(new BenchmarkRow("text generation", "training, plain TorchSharp loop", plain, "tokens/s", "-", "same model and batch shape"));
        table.Add(new BenchmarkRow("text generation", "ML.NET trainer / plain loop", trainer / plain, "ratio", ">= 0.97", "best of 3 alternating runs"));
    }

    private static double ThroughFit(string corpus, int steps)
    {
        var ml = new MLContext(seed: 1);
        var options = new TextGenerationOptions { Preset = GptPreset.Small, BatchSize = 32, Epochs = 1, BatchesPerEpoch = steps, ValidationFraction = 0 };
        return TrainerThroughput.Measure(options, steps,
            () => ml.Transformers().TextGeneration(options).Fit(ml.Data.LoadFromEnumerable(new[] { new Document { Text = corpus } })).Dispose());
    }

    private static double PlainLoop(string corpus, int steps)
    {
        TextTokenizer tokenizer = TextTokenizer.Train(TokenizerKind.Character, corpus, 0);
        long[] ids = tokenizer.Encode(corpus).Select(i => (long)i).ToArray();
        manual_seed(1);
        using var model = new GptModel(TextGenerationOptions.PresetConfig(GptPreset.Small), tokenizer.VocabularySize);
        using var optimizer = new AdamW(model.named_parameters(), 0.9, 0.99, 1e-8, 0.1);
        using Tensor tokens = tensor(ids);
        model.train();
        var random = new Random(1);
        int context = model.ContextLength, batch = 32, warmup = steps / 3;
        var clock = new Stopwatch();
        for (int step = 0; step < steps; step++)
        {
            if (step == warmup)
            {
                clock.Start();
            }
            using var scope = NewDisposeScope();
            long[] starts = Enumerable.Range(0, batch).Select(_ => random.NextInt64(0, ids.Length - context)).ToArray();
            Tensor index = tensor(starts).unsqueeze(1).add(arange(context + 1));
            Tensor windows = tokens.index_select(0, index.flatten()).view(batch, context + 1);
            Tensor logits = model.Forward(windows.narrow(1, 0, context));
            optimizer.ZeroGrad();
            F.cross_entropy(logits.view(-1, logits.shape[^1]), windows.narrow(1, 1, context).flatten()).backward();
            nn.utils.clip_grad_norm_(optimizer.Parameters, 1.0);
            optimizer.Step(1e-3);
        }
        return (double)(steps - warmup) * batch * context / clock.Elapsed.TotalSeconds;
    }
}

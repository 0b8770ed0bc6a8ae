using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using Transformers.ML.Examples;
using Transformers.ML.Translation;
using static TorchSharp.torch;

namespace Transformers.ML.Benchmarks;

/// <summary>Translation rows: BLEU and chrF against minutes of training, decoding speed, trainer overhead.</summary>
internal static class TranslationBenchmark
{
    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        string path = DataLocator.File(options.Data, "translation/spa-eng.txt");
        var ml = new MLContext(seed: 1);
        IDataView all = ml.Data.LoadFromTextFile<SentencePair>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
        // The example's split: by unique English sentence, fixed seeds; every held-out sentence is scored (about 2,300).
        var split = ml.Data.TrainTestSplit(all, testFraction: 0.02, samplingKeyColumnName: nameof(SentencePair.English), seed: 1);
        var trainValidation = ml.Data.TrainTestSplit(split.TrainSet, testFraction: 0.01, samplingKeyColumnName: nameof(SentencePair.English), seed: 2);
        IDataView test = TranslationRecipe.HeldOut<SentencePair>(ml, split.TestSet);
        long tested = test.GetColumn<string>(nameof(SentencePair.English)).LongCount();
        bool Runs(string part) => options.Only.Length == 0 || options.Only.Contains("translation") || options.Only.Contains("translation." + part);

        TranslationTransformer? model = null;
        if (Runs("quality") || Runs("speed"))
        {
            double minutes = options.Quick ? 1 : 8;
            var trainer = Options();
            trainer.MaxTrainingTime = TimeSpan.FromMinutes(minutes);
            var clock = Stopwatch.StartNew();
            model = ml.Transformers().Translation(trainer).Fit(trainValidation.TrainSet, trainValidation.TestSet);
            double trained = clock.Elapsed.TotalMinutes;
            if (Runs("quality"))
            {
                foreach (int beam in new[] { 1, 4 })
                {
                    model.BeamSize = beam;
                    TranslationMetrics m = ml.Transformers().EvaluateTranslation(model.Transform(test), nameof(SentencePair.English), "Translation");
                    table.Add(new BenchmarkRow("translation", $"BLEU, {(beam == 1 ? "greedy" : "beam 4")}, after {trained:F1} min of training", m.Bleu, "BLEU",
                        "baseline", $"chrF2 {m.ChrF:F1}; {tested:N0} held-out sentences; Small preset (N=3, d=256), {model.EpochReports.Count} epochs"));
                }
            }
        }
        if (Runs("speed"))
        {
            // Drawn at random from the held-out pairs, not their first rows, which are the shortest (the file is sorted by length).
            List<string> sentences = ml.Data.CreateEnumerable<SentencePair>(TranslationRecipe.HeldOut<SentencePair>(ml, split.TestSet, options.Quick ? 16 : 64), false)
                .Select(p => p.Spanish).ToList();
            foreach (int batch in new[] { 1, 32 })
            {
                foreach ((string name, int beam) in new[] { ("greedy", 1), ("beam 4", 4) })
                {
                    double cached = Speed(model!, sentences, batch, beam, useCache: true);
                    double uncached = Speed(model!, sentences, batch, beam, useCache: false);
                    table.Add(new BenchmarkRow("translation", $"decoding {name}, batch {batch}, with cache", cached, "sentences/s", "-",
                        $"without cache {uncached:F1} sentences/s ({cached / uncached:F1}x); {sentences.Count} held-out sentences drawn at random, {sentences.Average(s => s.Split(' ').Length):F1} words on average"));
                }
            }
        }
        model?.Dispose();
        if (Runs("recipe"))
        {
            Recipe(table, options, ml, trainValidation.TrainSet, trainValidation.TestSet, test, tested);
        }
        if (Runs("trainer"))
        {
            TrainerOverhead(table, options, ml, trainValidation.TrainSet);
        }
    }

    /// <summary>The baseline rows' settings (the example runs the recipe, <see cref="Recipe"/>): Small preset with its dropout, shared BPE of 4000, batches of 2048 tokens, the paper's schedule with warmup 400 and scale 0.5.</summary>
    private static TranslationOptions Options() => new()
    {
        SourceColumnName = nameof(SentencePair.Spanish),
        TargetColumnName = nameof(SentencePair.English),
        VocabularySize = 4000,
        Epochs = 20,
        MaxTokensPerBatch = 2048,
        WarmupSteps = 400,
        LearningRateScale = 0.5,
        LogEverySteps = 1_000_000,
        SampleSentence = null,
    };

    /// <summary>
    /// The example's recipe (TranslationRecipe) for its 10-minute budget, once per seed: BLEU greedy and beam 4 on the
    /// example's held-out sentences (all of them), the steps the budget allowed, and the seed's sentences.
    /// </summary>
    private static void Recipe(ResultsTable table, BenchmarkOptions options, MLContext ml, IDataView train, IDataView validation, IDataView test, long tested)
    {
        double minutes = options.Quick ? 1 : 10;
        int[] seeds = options.Seeds ?? (options.Quick ? new[] { 1 } : new[] { 1, 2, 3 });
        var beams = new List<double>();
        List<(string Spanish, string English)> heldOutPairs = ml.Data.CreateEnumerable<SentencePair>(test, reuseRowObject: false).Select(p => (p.Spanish, p.English)).ToList();
        List<(string Spanish, string English)> paragraphs = TranslationRecipe.Paragraphs(heldOutPairs);
        List<(string Spanish, string English)> typedPairs = ml.Data.CreateEnumerable<SentencePair>(TranslationRecipe.HeldOut<SentencePair>(ml, test, 600), reuseRowObject: false)
            .Select(p => (p.Spanish, p.English)).ToList();
        // Made-up words: words of the translations that no training English sentence holds, beside the references' own.
        HashSet<string> trainingWords = SampledWords.Vocabulary(ml.Data.CreateEnumerable<SentencePair>(train, reuseRowObject: false).Select(p => p.English));
        (List<string> referenceNew, int referenceWords) = SampledWords.NewWords(heldOutPairs.Select(p => p.English), trainingWords);
        string recipe = options.Vocabulary is int size ? $"recipe with a BPE of {size:N0}" : "recipe";
        foreach (int seed in seeds)
        {
            TranslationOptions o = TranslationRecipe.Options(TimeSpan.FromMinutes(minutes), seed);
            o.VocabularySize = options.Vocabulary ?? o.VocabularySize;
            o.SourceColumnName = nameof(SentencePair.Spanish);
            o.TargetColumnName = nameof(SentencePair.English);
            o.SampleSentence = null;
            o.LogEverySteps = 1_000_000;
            var clock = Stopwatch.StartNew();
            using TranslationTransformer model = ml.Transformers().Translation(o).Fit(train, validation);
            double trained = clock.Elapsed.TotalMinutes;
            TrainingProgress last = model.TrainingReports[^1];
            var scores = new Dictionary<int, TranslationMetrics>();
            IDataView translated = test;
            foreach (int beam in new[] { 1, 4 })
            {
                model.BeamSize = beam;
                translated = ml.Data.Cache(model.Transform(test)); // beam 4's translations are read again below
                scores[beam] = ml.Transformers().EvaluateTranslation(translated, nameof(SentencePair.English), "Translation");
            }
            model.BeamSize = 4;
            string said = string.Join("; ", TranslationRecipe.Sentences.Take(2).Select(s => $"{s.Spanish} -> {model.Translate(s.Spanish)}"));
            beams.Add(scores[4].Bleu);
            table.Add(new BenchmarkRow("translation", $"{recipe}, seed {seed}: BLEU beam 4 after {trained:F1} min of training", scores[4].Bleu, "BLEU", ">= 40",
                $"greedy {scores[1].Bleu:F1}; chrF2 {scores[4].ChrF:F1}; {tested:N0} held-out sentences; {last.Step:N0} steps, {last.Throughput:N0} tokens/s; {said}"));
            var (bySentence, whole) = TranslationRecipe.ScoreParagraphs(model, paragraphs);
            table.Add(new BenchmarkRow("translation", $"{recipe}, seed {seed}: paragraphs, BLEU beam 4 sentence by sentence", bySentence.Bleu, "BLEU", "-",
                $"as one sequence (SplitSentences = false) {whole.Bleu:F1}, its output {whole.HypothesisLength / (double)whole.ReferenceLength:F2} of the reference length; " +
                $"chrF2 {bySentence.ChrF:F1} against {whole.ChrF:F1}; {paragraphs.Count} texts of 2-4 held-out sentences (TranslationRecipe.Paragraphs)"));
            var (lowerBySentence, lowerWhole) = TranslationRecipe.ScoreParagraphs(model, paragraphs, lowerCase: true);
            table.Add(new BenchmarkRow("translation", $"{recipe}, seed {seed}: paragraphs typed all in lower case, BLEU beam 4 sentence by sentence", lowerBySentence.Bleu, "BLEU", "-",
                $"as one sequence {lowerWhole.Bleu:F1} (how they were translated until 2026-12-07: the splitter needed a capital), its output " +
                $"{lowerWhole.HypothesisLength / (double)lowerWhole.ReferenceLength:F2} of the reference length; compared without case; the same {paragraphs.Count} texts"));
            var (carried, variants, numbered) = TranslationRecipe.ScoreNumbers(model, heldOutPairs);
            table.Add(new BenchmarkRow("translation", $"{recipe}, seed {seed}: held-out sentences with a number, translations that carry every number (CopyVerbatimSpans)",
                100.0 * carried / variants, "%", "-",
                $"{carried} of {variants}: {numbered} held-out pairs whose English holds the numbers of their Spanish, each with other digits 10 times " +
                $"(TranslationRecipe.ScoreNumbers); beam 4; {string.Join("; ", TranslationRecipe.Verbatim.Take(2).Select(s => $"{s.Spanish} -> {model.Translate(s.Spanish)}"))}"));
            (List<string> made, int words) = SampledWords.NewWords(translated.GetColumn<string>("Translation"), trainingWords);
            string frequent = string.Join(", ", made.GroupBy(w => w).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Take(5).Select(g => g.Key));
            table.Add(new BenchmarkRow("translation", $"{recipe}, seed {seed}: made-up words, output words that no training English sentence holds", 100.0 * made.Count / words, "%", "-",
                $"{made.Count} of {words:N0} words of the beam-4 translations of the {heldOutPairs.Count:N0} held-out sentences; the references' own {referenceNew.Count} of {referenceWords:N0} " +
                $"({100.0 * referenceNew.Count / referenceWords:F2} %: names, rare words); most frequent: {frequent} (SampledWords)"));
            var typed = TranslationRecipe.ScoreTyped(model, typedPairs);
            foreach ((string way, double asTyped, double normalised) in typed.Skip(1))
            {
                table.Add(new BenchmarkRow("translation", $"{recipe}, seed {seed}: sources typed {way}, BLEU beam 4 (NormalizeSourceCase)", normalised, "BLEU", "-",
                    $"as typed {asTyped:F1}; as written {typed[0].Normalised:F1} (as typed {typed[0].AsTyped:F1}); compared without case; {typedPairs.Count} held-out pairs (TranslationRecipe.HeldOut, 600)"));
            }
        }
        if (beams.Count > 1)
        {
            double mean = beams.Average(), std = Math.Sqrt(beams.Sum(b => (b - mean) * (b - mean)) / (beams.Count - 1));
            table.Add(new BenchmarkRow("translation", $"{recipe}: BLEU beam 4, mean of {beams.Count} seeds", mean, "BLEU", ">= 40",
                $"+- {std:F1} (seeds {string.Join(", ", seeds)}: {string.Join(", ", beams.Select(b => b.ToString("F1")))})"));
        }
    }

    private static double Speed(TranslationTransformer model, List<string> sentences, int batch, int beam, bool useCache)
    {
        var clock = Stopwatch.StartNew();
        foreach (string[] chunk in sentences.Chunk(batch))
        {
            model.TranslateBatch(chunk, beam, 0.6, useCache);
        }
        return sentences.Count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Throughput (target tokens/s) through Fit against a plain loop over the same batches, same model shape.</summary>
    private static void TrainerOverhead(ResultsTable table, BenchmarkOptions options, MLContext ml, IDataView train)
    {
        IDataView subset = ml.Data.TakeRows(train, 20_000);
        int steps = options.Quick ? 15 : 60;
        double trainer = 0, plain = 0;
        for (int round = 0; round < 2; round++)
        {
            plain = Math.Max(plain, PlainLoop(ml, subset, steps));
            trainer = Math.Max(trainer, ThroughFit(ml, subset, steps));
        }
        table.Add(new BenchmarkRow("translation", "training through the ML.NET trainer", trainer, "tokens/s", "-", $"target tokens; Small preset; {steps} steps of 2048-token batches"));
        table.Add(new BenchmarkRow("translation", "training, plain TorchSharp loop", plain, "tokens/s", "-", "same model, codec and batches"));
        table.Add(new BenchmarkRow("translation", "ML.NET trainer / plain loop", trainer / plain, "ratio", ">= 0.97", "best of 2 alternating runs"));
    }

    private static double ThroughFit(MLContext ml, IDataView data, int steps)
    {
        var options = Options();
        options.Epochs = 1;
        return TrainerThroughput.Measure(options, steps, () => ml.Transformers().Translation(options).Fit(data).Dispose());
    }

    private static double PlainLoop(MLContext ml, IDataView data, int steps)
    {
        var pairs = ml.Data.CreateEnumerable<SentencePair>(data, false).Where(p => !string.IsNullOrWhiteSpace(p.English) && !string.IsNullOrWhiteSpace(p.Spanish)).ToList();
        var options = Options();
        var codec = new TranslationCodec(TextTokenizer.Train(TokenizerKind.BytePairEncoding, string.Join("\n", pairs.Select(p => p.Spanish + "\n" + p.English)), options.VocabularySize), options.MaxSentenceTokens, copyVerbatimSpans: false);
        var encoded = pairs.Select(p => (codec.Encode(p.Spanish).Ids, codec.Encode(p.English).Ids)).ToList();
        manual_seed(1);
        var config = options.EffectiveModel;
        config.MaxSequenceLength = Math.Max(config.MaxSequenceLength, options.MaxSentenceTokens + 51);
        using var model = new EncoderDecoderTransformer("transformer", config, codec.VocabularySize);
        var task = new TranslationTask(model, codec, encoded, new(), new int[]?[encoded.Count], 0, options.MaxTokensPerBatch, config.LabelSmoothing, CPU, _ => null);
        using var optimizer = new AdamW(model.named_parameters(), 0.9, 0.98, 1e-9, 0);
        var schedule = new InverseSquareRootSchedule(config.ModelDimension, 400, 0.5);
        IReadOnlyList<int[]> batches = task.PlanEpoch(0, new Random(1));
        model.train();
        return Benchmarks.PlainLoop.Measure(optimizer, steps, step => task.ComputeLoss(batches[step % batches.Count]), step => schedule.At(step));
    }
}

using Microsoft.ML;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using Transformers.ML.Translation;
using Microsoft.ML.Data;

namespace Transformers.ML.Tests.Translation;

public sealed class Pair
{
    public string English { get; set; } = "";

    public string Spanish { get; set; } = "";
}

public sealed class SpanishSentence
{
    public string Spanish { get; set; } = "";
}

public sealed class EnglishTranslation
{
    public string Spanish { get; set; } = "";

    public string Translation { get; set; } = "";
}

[TestClass]
public sealed class TranslationTests
{
    private static TranslationTransformer _model = null!;
    private static List<Pair> _pairs = null!;
    private static readonly List<string> Logged = new();

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        _pairs = TestData.SentencePairLines
            .Select(l => l.Split('\t')).Select(p => new Pair { English = p[0], Spanish = p[1] }).ToList();
        var ml = new MLContext(seed: 1);
        ml.Log += (_, e) => { lock (Logged) { Logged.Add(e.Message); } };
        var data = _pairs.Concat(new[] { new Pair { English = "   ", Spanish = "Hola" }, new Pair { English = "Hi", Spanish = "" } });
        _model = ml.Transformers().Translation(Tiny()).Fit(ml.Data.LoadFromEnumerable(data), ml.Data.LoadFromEnumerable(_pairs.Take(200)));
    }

    [ClassCleanup]
    public static void Cleanup() => _model?.Dispose();

    internal static TranslationOptions Tiny() => new()
    {
        Model = new TransformerConfig { NumLayers = 2, ModelDimension = 64, FeedForwardDimension = 128, NumHeads = 4, Dropout = 0.1, MaxSequenceLength = 128 },
        VocabularySize = 500,
        Epochs = 12,
        MaxTokensPerBatch = 1024,
        WarmupSteps = 50,
        LearningRateScale = 0.2, // peak 0.2 * 64^-0.5 * 50^-0.5 = 3.5e-3 for this width
        LogEverySteps = 1000,
        TransformBatchSize = 64,
    };

    [TestMethod]
    public void TheTimeBudgetRecipeIsThePresetWithoutDropoutOnASchedulePlannedOverTheBudget()
    {
        // The recipe measured in the benchmark and run by the example and the README (BLEU 51 in 4,136 steps, what 10
        // minutes are on a Zen 5, against about 31 for the paper's schedule with dropout, this class's defaults).
        foreach (TranslationPreset preset in new[] { TranslationPreset.Compact, TranslationPreset.Small, TranslationPreset.Base })
        {
            TranslationOptions recipe = TranslationOptions.ForTimeBudget(TimeSpan.FromMinutes(10), preset);
            recipe.Validate();
            TransformerConfig architecture = TranslationOptions.PresetConfig(preset);
            Assert.AreEqual((architecture.NumLayers, architecture.ModelDimension, architecture.FeedForwardDimension, architecture.NumHeads),
                (recipe.Model!.NumLayers, recipe.Model.ModelDimension, recipe.Model.FeedForwardDimension, recipe.Model.NumHeads), $"{preset}'s architecture");
            Assert.IsGreaterThan(0.0, architecture.Dropout, "the preset has dropout");
            Assert.AreEqual(0.0, recipe.Model.Dropout, "the recipe has none");
            Assert.AreEqual(TimeSpan.FromMinutes(10), recipe.MaxTrainingTime);
            Assert.AreEqual(LearningRateScheduleKind.WarmupCosine, recipe.Schedule);
            Assert.AreEqual((1e-3, 400, 0.05), (recipe.LearningRate, recipe.WarmupSteps, recipe.MinLearningRateRatio));
            Assert.AreEqual((5, 0.25), (recipe.AveragedCheckpoints, recipe.AveragingSpan));
            Assert.AreEqual((4000, 1024, TrainingPrecision.Auto), (recipe.VocabularySize, recipe.MaxTokensPerBatch, recipe.Precision));
            Assert.AreEqual((4, 1.0), (recipe.BeamSize, recipe.LengthPenalty), "beam 4 with a length penalty chosen on validation pairs");
        }
        // Without a preset, the recipe trains Compact: Small's depth and heads at three quarters of its width, which in
        // 10 minutes on two Zen 3 cores took 1.7x the steps and scored more (BLEU 41.8 against 36.0-39.8).
        TransformerConfig compact = TranslationOptions.ForTimeBudget(TimeSpan.FromMinutes(10)).Model!;
        TransformerConfig small = TranslationOptions.PresetConfig(TranslationPreset.Small);
        Assert.AreEqual((small.NumLayers, small.NumHeads, 192, 768), (compact.NumLayers, compact.NumHeads, compact.ModelDimension, compact.FeedForwardDimension));
        Assert.AreEqual(TranslationPreset.Compact, TranslationOptions.ForTimeBudget(TimeSpan.FromMinutes(10)).Preset);
        var defaults = new TranslationOptions();
        Assert.AreEqual(LearningRateScheduleKind.InverseSquareRoot, defaults.Schedule, "the defaults stay the paper's");
        Assert.AreEqual((4, 0.6), (defaults.BeamSize, defaults.LengthPenalty), "the paper's decoding");
        Assert.IsNull(defaults.Model);
        // A budget that is no budget fails where the options are checked, naming it.
        var none = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TranslationOptions.ForTimeBudget(TimeSpan.Zero).Validate());
        StringAssert.Contains(none.Message, "MaxTrainingTime");
        // Each call gives options of their own.
        TranslationOptions first = TranslationOptions.ForTimeBudget(TimeSpan.FromMinutes(1));
        first.Model!.NumLayers = 1;
        Assert.AreEqual(3, TranslationOptions.ForTimeBudget(TimeSpan.FromMinutes(1)).Model!.NumLayers);
    }

    [TestMethod]
    public void TrainingLowersTheValidationLossAndSkipsEmptyPairs()
    {
        var epochs = _model.EpochReports;
        Assert.AreEqual(12, epochs.Count);
        Assert.IsLessThan(epochs[0].ValidationValue!.Value, epochs[^1].ValidationValue!.Value);
        Assert.IsLessThan(3.0, epochs[^1].ValidationValue!.Value, $"validation loss {epochs[^1].ValidationValue}");
        Assert.IsTrue(epochs.All(e => e.Sample is not null), "a sample translation after each epoch");
        lock (Logged)
        {
            Assert.IsTrue(Logged.Any(m => m.Contains("Skipped 2 training pair(s) with an empty or whitespace-only sentence")), string.Join("\n", Logged.Take(10)));
        }
    }

    [TestMethod]
    public void TheSourceCaseIsNormalisedWhenTheTrainingSourcesBeginWithACapitalOrWhenAsked()
    {
        Assert.IsTrue(_model.NormalizeSourceCase);
        lock (Logged)
        {
            Assert.IsTrue(Logged.Any(m => m.Contains("of the training sources begin with a capital: sentences typed in lower case or in capitals are translated in that case (NormalizeSourceCase)")),
                string.Join("\n", Logged.Take(10)));
        }
        // A corpus written in lower case: its model reads sentences as typed, unless the option says otherwise.
        var lowerCase = _pairs.Take(60).Select(p => new Pair { English = p.English.ToLowerInvariant(), Spanish = p.Spanish.ToLowerInvariant() }).ToList();
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) { log.Add(e.Message); } };
        foreach (bool? option in new bool?[] { null, true, false })
        {
            TranslationOptions options = Tiny();
            options.Epochs = 1;
            options.NormalizeSourceCase = option;
            using TranslationTransformer model = ml.Transformers().Translation(options).Fit(ml.Data.LoadFromEnumerable(lowerCase));
            Assert.AreEqual(option ?? false, model.NormalizeSourceCase, $"option {option}");
        }
        lock (log)
        {
            Assert.AreEqual(1, log.Count(m => m.Contains("0.0 % of the training sources begin with a capital (under 90 %): sentences are translated as typed (NormalizeSourceCase).")),
                string.Join("\n", log.Where(m => m.Contains("capital"))));
        }
    }

    [TestMethod]
    public void NBestListsStartWithTheTranslationAndAreRankedByScore()
    {
        string[] sentences = _pairs.Skip(3000).Take(12).Select(p => p.Spanish).Append("   ").ToArray();
        IReadOnlyList<string> best = _model.Translate(sentences, beamSize: 4);
        IReadOnlyList<IReadOnlyList<TranslationCandidate>> nBest = _model.TranslateNBest(sentences, 3, beamSize: 4);
        Assert.HasCount(sentences.Length, nBest);
        for (int i = 0; i < sentences.Length - 1; i++)
        {
            IReadOnlyList<TranslationCandidate> list = nBest[i];
            Assert.IsTrue(list.Count is >= 1 and <= 3, $"{list.Count} candidates");
            Assert.AreEqual(best[i], list[0].Text, "the first is Translate's");
            Assert.HasCount(list.Count, list.Select(c => c.Text).Distinct().ToList(), "no text twice");
            Assert.IsTrue(list.Zip(list.Skip(1)).All(p => p.First.Score >= p.Second.Score), string.Join(" | ", list));
            Assert.IsTrue(list.All(c => c.Score < 0 && double.IsFinite(c.Score)), "log-probabilities, normalised");
        }
        Assert.IsGreaterThan(8, nBest.Count(l => l.Count == 3), "alternatives for most sentences");
        Assert.AreEqual(new TranslationCandidate("", 0), nBest[^1].Single(), "an empty sentence: one empty translation");
        // A single sentence gives what it gives in a batch; greedy decoding (beam 1) gives one, scored.
        IReadOnlyList<TranslationCandidate> alone = _model.TranslateNBest(sentences[0], 3, beamSize: 4);
        CollectionAssert.AreEqual(nBest[0].Select(c => c.Text).ToArray(), alone.Select(c => c.Text).ToArray());
        Assert.IsLessThan(1e-4, nBest[0].Zip(alone).Max(p => Math.Abs(p.First.Score - p.Second.Score)), "float32 in a padded batch and alone");
        TranslationCandidate greedy = _model.TranslateNBest(sentences[0], 1, beamSize: 1).Single();
        Assert.AreEqual(_model.Translate(sentences[0], beamSize: 1), greedy.Text);
        Assert.IsLessThan(0, greedy.Score);

        var tooMany = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _model.TranslateNBest(sentences, 5, beamSize: 4));
        Assert.AreEqual("count", tooMany.ParamName);
        StringAssert.Contains(tooMany.Message, "between 1 and the beam size (4)");
        var beam = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _model.Translate(sentences, beamSize: 0));
        Assert.AreEqual("beamSize", beam.ParamName);
        var penalty = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _model.Translate(sentences, lengthPenalty: double.NaN));
        Assert.AreEqual("lengthPenalty", penalty.ParamName);
    }

    [TestMethod]
    public void TextsOfSeveralSentencesAreTranslatedSentenceBySentence()
    {
        Assert.IsTrue(_model.SplitSentences, "the default");
        string[] sentences = _pairs.Skip(3100).Select(p => p.Spanish.Trim()).Where(s => SentenceSplitter.Split(s).Count == 1).Take(4).ToArray();
        string[] separators = { " ", "\n", "\n\n", "" };
        string text = string.Concat(sentences.Zip(separators, (s, separator) => s + separator));
        IReadOnlyList<IReadOnlyList<TranslationCandidate>> each = _model.TranslateNBest(sentences, 3, beamSize: 4);
        IReadOnlyList<TranslationCandidate> joined = _model.TranslateNBest(text, 3, beamSize: 4);
        string Join(IEnumerable<string> texts) => string.Concat(texts.Zip(separators, (t, separator) => t + separator));
        Assert.AreEqual(Join(each.Select(e => e[0].Text)), joined[0].Text, "each sentence's best, spaced as the source was");
        Assert.AreEqual(each.Sum(e => e[0].Score), joined[0].Score, 1e-4, "scored by the sum of the sentences' scores");
        Assert.AreEqual(joined[0].Text, _model.Translate(text, beamSize: 4));
        // The n-best: the 3 best sums over every combination of the sentences' candidates (3^4 of them).
        var partial = new List<(string[] Texts, double Score)> { (Array.Empty<string>(), 0) };
        foreach (IReadOnlyList<TranslationCandidate> candidates in each)
        {
            partial = partial.SelectMany(p => candidates.Select(c => (p.Texts.Append(c.Text).ToArray(), p.Score + c.Score))).ToList();
        }
        var expected = partial.OrderByDescending(p => p.Score).Select(p => Join(p.Texts)).Distinct().Take(3).ToArray();
        CollectionAssert.AreEqual(expected, joined.Select(c => c.Text).ToArray(), string.Join(" | ", joined));
        Assert.IsTrue(joined.Zip(joined.Skip(1)).All(p => p.First.Score >= p.Second.Score));

        // Off, the text is one sequence: 30 sentences are far beyond the 64 tokens a source may have, so it is truncated.
        var ml = new MLContext(seed: 1);
        var logged = new List<string>();
        ml.Log += (_, e) => logged.Add(e.RawMessage);
        string path = TestUtil.TempPath();
        _model.Save(path);
        using TranslationTransformer loaded = ml.Transformers().LoadTranslation(path);
        string long30 = string.Join(" ", Enumerable.Range(0, 30).Select(i => sentences[i % 4]));
        string split = loaded.Translate(long30, beamSize: 2);
        Assert.IsFalse(logged.Any(m => m.Contains("were truncated", StringComparison.Ordinal)), string.Join("\n", logged));
        Assert.AreEqual(30, SentenceSplitter.Split(long30).Count);
        Assert.IsGreaterThan(20, split.Split(' ').Length, $"every sentence translated: {split}");
        loaded.SplitSentences = false;
        loaded.Translate(long30, beamSize: 2);
        Assert.IsTrue(logged.Any(m => m.Contains("1 source sentence(s) longer than 64 tokens were truncated", StringComparison.Ordinal)), string.Join("\n", logged));
    }

    [TestMethod]
    public void GreedyWithAndWithoutCacheAndBeamOfOneAgree()
    {
        string[] sentences = _pairs.Skip(3000).Take(12).Select(p => p.Spanish).ToArray();
        string[] cached = _model.TranslateBatch(sentences, beamSize: 1, lengthPenalty: 0.6, useCache: true);
        string[] uncached = _model.TranslateBatch(sentences, beamSize: 1, lengthPenalty: 0.6, useCache: false);
        CollectionAssert.AreEqual(cached, uncached);
        // Translating one at a time gives the same as in a padded batch (the padding is masked).
        for (int i = 0; i < 4; i++)
        {
            Assert.AreEqual(cached[i], _model.Translate(sentences[i], beamSize: 1));
        }
        string[] beam4 = _model.TranslateBatch(sentences, beamSize: 4, lengthPenalty: 0.6, useCache: true);
        CollectionAssert.AreEqual(beam4, _model.TranslateBatch(sentences, beamSize: 4, lengthPenalty: 0.6, useCache: false),
            "beam search with the cache (reordered as beams move) equals recomputing every prefix");
        Assert.AreEqual(sentences.Length, beam4.Length);
        Assert.IsTrue(beam4.All(t => t.Length > 0));
        for (int i = 0; i < 4; i++)
        {
            Assert.AreEqual(beam4[i], _model.Translate(sentences[i], beamSize: 4), "beam search per sentence equals in a batch");
        }
    }

    [TestMethod]
    public void TrainingSentencesAreLearned()
    {
        // Short training pairs: the model reproduces most of them (a memorisation check that the pipeline learns).
        var train = _pairs.Where(p => p.Spanish.Length < 12).Take(40).ToList();
        IReadOnlyList<string> translations = _model.Translate(train.Select(p => p.Spanish).ToList(), beamSize: 4);
        TranslationMetrics metrics = SacreBleu.Score(translations, new[] { train.Select(p => p.English).ToList() });
        Assert.IsGreaterThan(15.0, metrics.ChrF, metrics.ToString());
    }

    [TestMethod]
    public void TransformPredictionEngineSaveLoadAndEvaluate()
    {
        var ml = new MLContext(seed: 1);
        var test = _pairs.Skip(3500).Take(20).Append(new Pair { English = "", Spanish = "   " }).ToList();
        IDataView scored = _model.Transform(ml.Data.LoadFromEnumerable(test));
        var rows = ml.Data.CreateEnumerable<EnglishTranslation>(scored, reuseRowObject: false).ToList();
        Assert.AreEqual(test.Count, rows.Count);
        Assert.AreEqual("", rows[^1].Translation, "an empty source gets an empty translation");
        IReadOnlyList<string> direct = _model.Translate(test.Take(20).Select(p => p.Spanish).ToList(), _model.BeamSize, _model.LengthPenalty);
        CollectionAssert.AreEqual(direct.ToList(), rows.Take(20).Select(r => r.Translation).ToList());

        var engine = ml.Model.CreatePredictionEngine<SpanishSentence, EnglishTranslation>(_model);
        Assert.AreEqual(direct[0], engine.Predict(new SpanishSentence { Spanish = test[0].Spanish }).Translation);
        Assert.AreEqual(direct[1], engine.Predict(new SpanishSentence { Spanish = test[1].Spanish }).Translation);

        TranslationMetrics metrics = ml.Transformers().EvaluateTranslation(scored, referenceColumnName: "English", translationColumnName: "Translation");
        TranslationMetrics expected = SacreBleu.Score(rows.Select(r => r.Translation).ToList(), new[] { test.Select(p => p.English).ToList() });
        Assert.AreEqual(expected.Bleu, metrics.Bleu, 1e-9);
        Assert.AreEqual(expected.ChrF, metrics.ChrF, 1e-9);
        Assert.AreEqual(test.Count, metrics.Sentences);

        string path = TestUtil.TempPath();
        _model.Save(path);
        using TranslationTransformer loaded = ml.Transformers().LoadTranslation(path);
        CollectionAssert.AreEqual(direct.ToList(), loaded.Translate(test.Take(20).Select(p => p.Spanish).ToList(), _model.BeamSize, _model.LengthPenalty).ToList());
        // The decoding settings of Transform travel with the model: a reloaded model's Transform writes the same column.
        int beam = _model.BeamSize;
        double penalty = _model.LengthPenalty;
        try
        {
            _model.BeamSize = 3;
            _model.LengthPenalty = 1.5;
            _model.SplitSentences = false;
            _model.Save(path);
            using TranslationTransformer reloaded = ml.Transformers().LoadTranslation(path);
            Assert.AreEqual(3, reloaded.BeamSize);
            Assert.AreEqual(1.5, reloaded.LengthPenalty);
            Assert.IsFalse(reloaded.SplitSentences);
            Assert.AreEqual(_model.TransformBatchSize, reloaded.TransformBatchSize);
            IDataView input = ml.Data.LoadFromEnumerable(test);
            CollectionAssert.AreEqual(_model.Transform(input).GetColumn<string>("Translation").ToArray(), reloaded.Transform(input).GetColumn<string>("Translation").ToArray());
        }
        finally
        {
            _model.BeamSize = beam;
            _model.LengthPenalty = penalty;
            _model.SplitSentences = true;
        }
        var wrong = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadTextGeneration(path));
        StringAssert.Contains(wrong.Message, "holds a model of kind 'translation'; expected kind 'text-generation'");
    }

    [TestMethod]
    public void WeightsThatOverflowAreRefusedByTheLoadersForwardPass()
    {
        string path = TestUtil.TempPath();
        _model.Save(path);
        TestUtil.AssertOverflowingWeightsAreRefused(path, f => new MLContext().Transformers().LoadTranslation(f));
    }

    [TestMethod]
    public void BatchesFollowTheTokenBudgetAndCoverEveryPairOnce()
    {
        var random = new Random(3);
        var pairs = Enumerable.Range(0, 500).Select(_ => (new int[random.Next(2, 30)], new int[random.Next(2, 30)])).ToList();
        List<int[]> batches = TranslationTask.Batches(pairs, new Random(1), 256);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 500).ToList(), batches.SelectMany(b => b).ToList());
        foreach (int[] batch in batches)
        {
            int longest = batch.Max(i => Math.Max(pairs[i].Item1.Length, pairs[i].Item2.Length + 1));
            Assert.IsTrue(batch.Length == 1 || batch.Length * longest <= 256, $"batch of {batch.Length} x {longest}");
        }
        // Similar lengths go together: far fewer padding tokens than in random batches of the same sizes.
        Assert.IsGreaterThan(batches.Count / 2.0, (double)batches.Count(b => b.Max(i => pairs[i].Item1.Length) - b.Min(i => pairs[i].Item1.Length) <= 2));
    }

    [TestMethod]
    public void SomeSourcesLoseTheirPunctuationEachEpochAndTheTargetsKeepTheirs()
    {
        Assert.AreEqual("Gracias", TranslationTask.Unpunctuated("Gracias."));
        // As typed without punctuation: an exclamation loses its opening mark too; a question keeps its "¿".
        Assert.AreEqual("¿Dónde está la biblioteca", TranslationTask.Unpunctuated("¿Dónde está la biblioteca? "));
        Assert.AreEqual("Gracias", TranslationTask.Unpunctuated("¡Gracias!"));
        Assert.AreEqual("Ya voy", TranslationTask.Unpunctuated("¡Ya voy!..."));
        Assert.AreEqual("Hola, ¿qué tal", TranslationTask.Unpunctuated("Hola, ¿qué tal?"));
        Assert.IsNull(TranslationTask.Unpunctuated("Hola"));
        Assert.IsNull(TranslationTask.Unpunctuated("¡Hola"));
        Assert.IsNull(TranslationTask.Unpunctuated("?!"));
        Assert.IsNull(TranslationTask.Unpunctuated("¡!"));

        var codec = new TranslationCodec(TextTokenizer.Train(TokenizerKind.BytePairEncoding, string.Join("\n", _pairs.Select(p => p.Spanish + "\n" + p.English)), 300), 64, copyVerbatimSpans: false);
        List<(int[], int[])> train = _pairs.Select(p => (codec.Encode(p.Spanish).Ids, codec.Encode(p.English).Ids)).ToList();
        int[]?[] unpunctuated = _pairs.Select(p => TranslationTask.Unpunctuated(p.Spanish) is string s ? codec.Encode(s).Ids : null).ToArray();
        Assert.IsGreaterThan(_pairs.Count * 0.9, (double)unpunctuated.Count(u => u is not null), "the test pairs end with punctuation");
        TorchSharp.torch.manual_seed(1);
        using var model = new EncoderDecoderTransformer("t", Tiny().Model!, codec.VocabularySize);
        var task = new TranslationTask(model, codec, train, new(), unpunctuated, 0.25, 512, 0.1, TorchSharp.torch.CPU, _ => null);

        int[] Epoch(int epoch, int seed) => task.PlanEpoch(epoch, new Random(seed)).SelectMany(b => b).ToArray();
        int[] first = Epoch(0, 7);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, train.Count).ToList(), first.Select(i => i < 0 ? ~i : i).ToList(), "every pair once");
        double dropped = first.Count(i => i < 0) / (double)first.Length;
        Assert.AreEqual(0.25, dropped, 0.08, "about the fraction asked for");
        Assert.IsTrue(first.Where(i => i < 0).All(i => unpunctuated[~i] is not null), "only sources that had punctuation");
        CollectionAssert.AreEqual(first, Epoch(0, 7), "the same epoch random gives the same choice (exact resumption)");
        CollectionAssert.AreNotEqual(first.Where(i => i < 0).Select(i => ~i).Order().ToList(), Epoch(1, 8).Where(i => i < 0).Select(i => ~i).Order().ToList(), "drawn afresh each epoch");

        // A batch of unpunctuated sources has fewer source tokens and the same targets: the same number of targets counted.
        int[] batch = Enumerable.Range(0, 8).Where(i => unpunctuated[i] is not null).ToArray();
        using (TorchSharp.torch.no_grad())
        {
            using LossSum plain = task.ComputeLoss(batch);
            using LossSum stripped = task.ComputeLoss(batch.Select(i => ~i).ToArray());
            Assert.AreEqual(plain.Count.item<long>(), stripped.Count.item<long>());
            Assert.AreNotEqual(plain.Sum.item<float>(), stripped.Sum.item<float>());
        }
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TranslationOptions { SourcePunctuationDropout = 1.5 }.Validate());
        StringAssert.Contains(bad.Message, "SourcePunctuationDropout");
    }

    [TestMethod]
    public void BadInputNamesTheProblem()
    {
        var ml = new MLContext();
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transformers().Translation(new TranslationOptions { SourceColumnName = "French" }).Fit(ml.Data.LoadFromEnumerable(_pairs.Take(10))));
        StringAssert.Contains(missing.Message, "no column 'French'");
        IDataView numbers = ml.Data.LoadFromEnumerable(new[] { new { Spanish = 1f, English = "x" } });
        var wrongType = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transformers().Translation(Tiny()).Fit(numbers));
        StringAssert.Contains(wrongType.Message, "Column 'Spanish' is Single; expected Text");
        var empty = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ml.Transformers().Translation(Tiny()).Fit(ml.Data.LoadFromEnumerable(new[] { new Pair { English = " ", Spanish = "" } })));
        StringAssert.Contains(empty.Message, "no pair with text on both sides");
        var beam = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TranslationOptions { BeamSize = 0 }.Validate());
        StringAssert.Contains(beam.Message, "BeamSize");
        var noSource = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _model.Transform(ml.Data.LoadFromEnumerable(new[] { new { English = "x" } })));
        StringAssert.Contains(noSource.Message, "no source column 'Spanish'");
        // A sentence longer than the limit is truncated (and logged), not an error.
        Assert.IsNotNull(_model.Translate(string.Join(" ", Enumerable.Repeat("hola", 200)), beamSize: 2));
    }

    [TestMethod]
    public void EvaluationAcceptsSeveralReferencesPerSentence()
    {
        var ml = new MLContext();
        // sacreBLEU's README example, with both reference streams in one vector column per sentence.
        var rows = new[]
        {
            new { Translation = "The dog bit the man.", English = new[] { "The dog bit the man.", "The dog had bit the man." } },
            new { Translation = "It wasn't surprising.", English = new[] { "It was not unexpected.", "No one was surprised." } },
            new { Translation = "The man had just bitten him.", English = new[] { "The man bit him first.", "The man had bitten the dog." } },
        };
        TranslationMetrics m = ml.Transformers().EvaluateTranslation(ml.Data.LoadFromEnumerable(rows));
        Assert.AreEqual(48.530827, m.Bleu, 1e-5);
        Assert.AreEqual(59.73, m.ChrF, 0.005);
        var wrong = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transformers().EvaluateTranslation(ml.Data.LoadFromEnumerable(new[] { new { Translation = "a", English = 1f } })));
        StringAssert.Contains(wrong.Message, "Reference column 'English' is Single");
    }

    [TestMethod]
    public void MLNetsModelSaveIsRefusedWithTheWayToSave()
    {
        var ml = new MLContext();
        IDataView data = ml.Data.LoadFromEnumerable(_pairs.Take(2));
        Exception e = Assert.Throws<Exception>(() => ml.Model.Save(_model, data.Schema, TestUtil.TempPath(".zip")));
        while (e is not NotSupportedException && e.InnerException is not null)
        {
            e = e.InnerException;
        }
        Assert.IsInstanceOfType<NotSupportedException>(e);
        StringAssert.Contains(e.Message, "Use model.Save(path) and mlContext.Transformers().LoadTranslation(path)");
    }

    [TestMethod]
    public void LengthPenaltyIsGnmts()
    {
        Assert.AreEqual(1.0, Seq2SeqSearch.Penalty(1, 0.6), 1e-12);
        Assert.AreEqual(Math.Pow(10.0 / 6.0, 0.6), Seq2SeqSearch.Penalty(5, 0.6), 1e-12);
        Assert.AreEqual(1.0, Seq2SeqSearch.Penalty(30, 0.0), 1e-12);
    }
}

/// <summary>The attention weights a translator gives for a sentence: shapes, probabilities, causality, labels.</summary>
[TestClass]
public sealed class TranslationAttentionTests
{
    [TestMethod]
    public void AttentionHasOneRowPerTokenSummingToOneAndACausalDecoder()
    {
        var ml = new MLContext(seed: 1);
        var pairs = TestData.SentencePairLines.Take(400).Select(l => l.Split('\t')).Select(p => new Pair { English = p[0], Spanish = p[1] }).ToList();
        TranslationOptions options = TranslationTests.Tiny();
        options.Epochs = 1;
        using TranslationTransformer model = ml.Transformers().Translation(options).Fit(ml.Data.LoadFromEnumerable(pairs));
        TranslationAttention attention = model.Attention("Soy un estudiante", "I am a student.");
        Assert.AreEqual("I am a student.", attention.Translation);
        foreach (AttentionWeights a in new[] { attention.Encoder, attention.DecoderSelf, attention.Cross })
        {
            Assert.AreEqual(2, a.Layers, a.Name);
            Assert.AreEqual(4, a.Heads, a.Name);
            for (int layer = 0; layer < a.Layers; layer++)
            {
                for (int head = 0; head < a.Heads; head++)
                {
                    float[] w = a.Head(layer, head);
                    Assert.AreEqual(a.QueryTokens.Count * a.KeyTokens.Count, w.Length);
                    for (int q = 0; q < a.QueryTokens.Count; q++)
                    {
                        double sum = w.AsSpan(q * a.KeyTokens.Count, a.KeyTokens.Count).ToArray().Sum(x => (double)x);
                        Assert.AreEqual(1.0, sum, 1e-4, $"{a.Name} layer {layer} head {head} row {q}");
                    }
                }
            }
        }
        Assert.AreEqual("</s>", attention.Encoder.KeyTokens[^1]);
        Assert.AreEqual("<s>", attention.DecoderSelf.QueryTokens[0]);
        CollectionAssert.AreEqual(attention.Encoder.KeyTokens.ToArray(), attention.Cross.KeyTokens.ToArray(), "cross-attention looks at the source");
        CollectionAssert.AreEqual(attention.DecoderSelf.QueryTokens.ToArray(), attention.Cross.QueryTokens.ToArray());
        string decoded = string.Concat(attention.DecoderSelf.QueryTokens.Skip(1)).Replace(" ", "");
        StringAssert.StartsWith(decoded, "Iamastudent", "the decoder reads the translation's tokens after <s>");
        float[] self = attention.DecoderSelf.Head(0, 0);
        int n = attention.DecoderSelf.KeyTokens.Count;
        for (int q = 0; q < n; q++)
        {
            for (int k = q + 1; k < n; k++)
            {
                Assert.AreEqual(0f, self[q * n + k], $"decoder position {q} sees the later position {k}");
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => attention.Cross.Head(2, 0));
        Assert.Throws<ArgumentException>(() => model.Attention("  "));
    }
}

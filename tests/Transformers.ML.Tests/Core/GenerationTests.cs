using Transformers.ML.Core.Generation;

namespace Transformers.ML.Tests.Core;

/// <summary>Each decoding rule on toy logits, against values worked out by hand; and the shared decoding loop on a scripted stepper.</summary>
[TestClass]
public sealed class GenerationTests
{
    [TestMethod]
    public void TemperatureDividesTheLogits()
    {
        float[] logits = { 1, -2, 3 };
        LogitsRules.ApplyTemperature(logits, 0.5);
        CollectionAssert.AreEqual(new[] { 2f, -4f, 6f }, logits);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: false, temperature: 0));
    }

    [TestMethod]
    public void TopKKeepsTheKLargest()
    {
        float[] logits = { 1, 5, 3, 4 };
        LogitsRules.ApplyTopK(logits, 2);
        CollectionAssert.AreEqual(new[] { float.NegativeInfinity, 5f, float.NegativeInfinity, 4f }, logits);
        float[] all = { 1, 2 };
        LogitsRules.ApplyTopK(all, 10); // k larger than the vocabulary keeps all
        CollectionAssert.AreEqual(new[] { 1f, 2f }, all);
        float[] ties = { 3, 3, 1, 3 };
        LogitsRules.ApplyTopK(ties, 2); // ties with the k-th are kept
        CollectionAssert.AreEqual(new[] { 3f, 3f, float.NegativeInfinity, 3f }, ties);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: false, topK: -1));
    }

    [TestMethod]
    public void TopPKeepsTheSmallestNucleusReachingP()
    {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (logits ln of them).
        float[] Logits() => new[] { MathF.Log(0.125f), MathF.Log(0.5f), MathF.Log(0.125f), MathF.Log(0.25f) };
        // p = 0.7: 0.5 alone is not enough, 0.5 + 0.25 = 0.75 is: keep those two.
        float[] kept = Logits();
        LogitsRules.ApplyTopP(kept, 0.7);
        CollectionAssert.AreEqual(new[] { false, true, false, true }, kept.Select(float.IsFinite).ToArray());
        // p = 0.5: exactly reached by the first token.
        kept = Logits();
        LogitsRules.ApplyTopP(kept, 0.5);
        CollectionAssert.AreEqual(new[] { false, true, false, false }, kept.Select(float.IsFinite).ToArray());
        // A tiny p still keeps the most likely token.
        kept = Logits();
        LogitsRules.ApplyTopP(kept, 1e-6);
        Assert.AreEqual(1, kept.Count(float.IsFinite));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: false, topP: 1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: false, topP: 0));
    }

    [TestMethod]
    public void MinPKeepsTheTokensAtLeastThatFractionAsLikelyAsTheMostLikely()
    {
        // Probabilities 0.5, 0.25, 0.15, 0.1 (logits ln of them).
        float[] Logits() => new[] { MathF.Log(0.25f), MathF.Log(0.1f), MathF.Log(0.5f), MathF.Log(0.15f) };
        float[] kept = Logits();
        LogitsRules.ApplyMinP(kept, 0.4); // the bar: 0.4 x 0.5 = 0.2
        CollectionAssert.AreEqual(new[] { true, false, true, false }, kept.Select(float.IsFinite).ToArray());
        kept = Logits();
        LogitsRules.ApplyMinP(kept, 0.6);
        CollectionAssert.AreEqual(new[] { false, false, true, false }, kept.Select(float.IsFinite).ToArray());
        kept = Logits();
        LogitsRules.ApplyMinP(kept, 0.1); // 0.05: all stay
        CollectionAssert.AreEqual(Logits(), kept);
        // Through Next: with min-p 0.6 only the most likely is ever drawn.
        var rules = new LogitsRules(greedy: false, minP: 0.6, seed: 1);
        Random random = rules.NewRandom();
        Assert.IsTrue(Enumerable.Range(0, 100).All(_ => rules.Next(Logits(), Array.Empty<int>(), random) == 2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: false, minP: 1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: false, minP: -0.1));
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Transformers.ML.TextGeneration.GenerationOptions { MinP = 2 }.Validate());
        StringAssert.Contains(bad.Message, "MinP must be in [0, 1] (0: off); found 2");
    }

    [TestMethod]
    public void GenerationOptionsSayTheRuleTheyAskFor()
    {
        Assert.AreEqual("temperature 0.8, top-k 40, min-p 0.1, seed 1", new Transformers.ML.TextGeneration.TextGenerationOptions().Generation.ToString());
        Assert.AreEqual("temperature 1", new Transformers.ML.TextGeneration.GenerationOptions().ToString());
        var all = new Transformers.ML.TextGeneration.GenerationOptions { Temperature = 0.7, TopK = 5, TopP = 0.9, MinP = 0.05, RepetitionPenalty = 1.3, NoRepeatNgramSize = 4, Seed = 11 };
        Assert.AreEqual("temperature 0.7, top-k 5, top-p 0.9, min-p 0.05, repetition penalty 1.3, no repeated 4-grams, seed 11", all.ToString());
        // Greedy decoding ignores the sampling rules and the seed; the penalties still apply.
        all.Temperature = 0;
        Assert.AreEqual("greedy, repetition penalty 1.3, no repeated 4-grams", all.ToString());
        var culture = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            Assert.AreEqual("temperature 0.75", new Transformers.ML.TextGeneration.GenerationOptions { Temperature = 0.75 }.ToString());
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = culture;
        }
    }

    [TestMethod]
    public void NoRepeatNgramsBanTheTokensThatWouldRepeatOne()
    {
        int[] sequence = { 5, 6, 7, 5, 6 };
        float[] Banned(int n)
        {
            float[] logits = Enumerable.Range(0, 10).Select(i => (float)i).ToArray();
            LogitsRules.BanRepeatedNgrams(logits, sequence, n);
            return logits;
        }
        static int[] Gone(float[] logits) => Enumerable.Range(0, logits.Length).Where(i => float.IsNegativeInfinity(logits[i])).ToArray();
        CollectionAssert.AreEqual(new[] { 7 }, Gone(Banned(3)));          // "5 6" was followed by 7
        CollectionAssert.AreEqual(new[] { 7 }, Gone(Banned(2)));          // "6" was followed by 7
        CollectionAssert.AreEqual(new[] { 5, 6, 7 }, Gone(Banned(1)));    // every token seen
        CollectionAssert.AreEqual(Array.Empty<int>(), Gone(Banned(4)));   // "7 5 6" never came before
        CollectionAssert.AreEqual(Array.Empty<int>(), Gone(Banned(6)));   // no 6-gram yet
        // Greedy decoding too: 7 is the most likely, the rule takes the next.
        float[] scores = { 0, 0, 0, 0, 0, 1, 1, 9, 2, 0 };
        Assert.AreEqual(8, new LogitsRules(greedy: true, noRepeatNgramSize: 3).Next(scores, sequence, new Random(1)));
        // When every token would be banned, none is: the text goes on.
        float[] three = { 1, 2, 3 };
        LogitsRules.BanRepeatedNgrams(three, new[] { 0, 1, 2 }, 1);
        CollectionAssert.AreEqual(new[] { 1f, 2f, 3f }, three);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: true, noRepeatNgramSize: -1));
    }

    [TestMethod]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokensOnce()
    {
        float[] logits = { 4, 1, -3, 2 };
        LogitsRules.ApplyRepetitionPenalty(logits, new[] { 0, 2, 2 }, 2.0);
        CollectionAssert.AreEqual(new[] { 2f, 1f, -6f, 2f }, logits);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LogitsRules(greedy: true, repetitionPenalty: 0));
    }

    [TestMethod]
    public void SamplingFollowsTheDistributionAndTheSeed()
    {
        // Probabilities 0.5, 0.25, 0.25: over 20,000 draws each within 1.5 % of its share; the same seed, the same draws.
        var rules = new LogitsRules(greedy: false, seed: 3);
        float[] Logits() => new[] { MathF.Log(0.5f), MathF.Log(0.25f), MathF.Log(0.25f) };
        Random random = rules.NewRandom();
        int[] counts = new int[3];
        for (int i = 0; i < 20_000; i++)
        {
            counts[rules.Next(Logits(), Array.Empty<int>(), random)]++;
        }
        Assert.AreEqual(0.5, counts[0] / 20_000.0, 0.015);
        Assert.AreEqual(0.25, counts[1] / 20_000.0, 0.015);
        Random a = rules.NewRandom(), b = rules.NewRandom();
        CollectionAssert.AreEqual(Enumerable.Range(0, 50).Select(_ => rules.Next(Logits(), Array.Empty<int>(), a)).ToArray(),
            Enumerable.Range(0, 50).Select(_ => rules.Next(Logits(), Array.Empty<int>(), b)).ToArray());
        // Top-k 1 is greedy whatever the draw.
        var top1 = new LogitsRules(greedy: false, topK: 1, seed: 1);
        Random r = top1.NewRandom();
        Assert.IsTrue(Enumerable.Range(0, 100).All(_ => top1.Next(Logits(), Array.Empty<int>(), r) == 0));
    }

    [TestMethod]
    public void TheLoopFeedsThePromptThenOneTokenAndRestartsAFullWindowFromThreeQuarters()
    {
        // A scripted model: the next token is (last token + 1) mod 50; context 8.
        var stepper = new CountingStepper(context: 8, cache: true);
        List<int>[] outputs = CausalDecoding.Generate(stepper, new[] { new[] { 1, 2, 3 }, new[] { 10, 11, 12 } }, new DecodingSettings { MaxNewTokens = 10 });
        CollectionAssert.AreEqual(Enumerable.Range(4, 10).ToList(), outputs[0]);
        CollectionAssert.AreEqual(Enumerable.Range(13, 10).ToList(), outputs[1]);
        // Inputs: the prompt (3), then one token per step until 3 + 5 = 8 positions fill the window; then the last 6
        // (three quarters of 8) again, and one per step.
        CollectionAssert.AreEqual(new[] { 3, 1, 1, 1, 1, 1, 6, 1, 1, 6 }, stepper.InputLengths);
        // The cache is sized once for the whole generation: the prompt and the new tokens, at most the window.
        CollectionAssert.AreEqual(new[] { 8 }, stepper.Reserved);
        var short_ = new CountingStepper(context: 8, cache: true);
        CausalDecoding.Generate(short_, new[] { new[] { 1, 2, 3 } }, new DecodingSettings { MaxNewTokens = 2 });
        CollectionAssert.AreEqual(new[] { 5 }, short_.Reserved);

        // Without a cache every step sees the window (at most the context).
        var uncached = new CountingStepper(context: 8, cache: false);
        CollectionAssert.AreEqual(outputs[0], CausalDecoding.Generate(uncached, new[] { new[] { 1, 2, 3 } }, new DecodingSettings { MaxNewTokens = 10 })[0]);
        CollectionAssert.AreEqual(new[] { 3, 4, 5, 6, 7, 8, 8, 8, 8, 8 }, uncached.InputLengths);
        Assert.IsEmpty(uncached.Reserved);

        // End of text ends a row (not in its output); the caller's stop ends another; NaN scores are an error that says so.
        var ended = CausalDecoding.Generate(new CountingStepper(8, true), new[] { new[] { 5 }, new[] { 30 } }, new DecodingSettings { MaxNewTokens = 20, EndOfTextId = 8 },
            shouldStop: (row, tokens) => row == 1 && tokens.Count == 2);
        CollectionAssert.AreEqual(new[] { 6, 7 }, ended[0]);
        CollectionAssert.AreEqual(new[] { 31, 32 }, ended[1]);
        // Not before MinNewTokens: the end of text is not chosen (the scripted model's next choice, token 0, is), and the
        // row ends at the next end of text after them.
        var atLeast = CausalDecoding.Generate(new CountingStepper(8, true), new[] { new[] { 5 } }, new DecodingSettings { MaxNewTokens = 20, EndOfTextId = 8, MinNewTokens = 4 });
        CollectionAssert.AreEqual(new[] { 6, 7, 0, 1, 2, 3, 4, 5, 6, 7 }, atLeast[0]);
        var nan = Assert.ThrowsExactly<InvalidOperationException>(() => CausalDecoding.Generate(new CountingStepper(8, true) { PoisonAfter = 2 }, new[] { new[] { 1 } }, new DecodingSettings { MaxNewTokens = 5 }));
        StringAssert.Contains(nan.Message, "not finite numbers (NaN or infinity) after 2 generated tokens");
        var mixed = Assert.ThrowsExactly<ArgumentException>(() => CausalDecoding.Generate(stepper, new[] { new[] { 1, 2 }, new[] { 3 } }, new DecodingSettings { MaxNewTokens = 1 }));
        StringAssert.Contains(mixed.Message, "found lengths 2, 1");
    }

    [TestMethod]
    public void PromptsOfDifferentLengthsArePaddedOnTheLeftUntilTheWindowLeavesNoRoomForPadding()
    {
        // Context 8, prompts of 3 and 1 tokens: the short one is padded with 2 slots, which the stepper is told of at every
        // step while the cache lives; the restart keeps the last 6 slots, where both rows have real tokens.
        var stepper = new CountingStepper(context: 8, cache: true) { AcceptsPadding = true };
        List<int>[] outputs = CausalDecoding.Generate(stepper, new[] { new[] { 1, 2, 3 }, new[] { 20 } }, new DecodingSettings { MaxNewTokens = 10 });
        CollectionAssert.AreEqual(Enumerable.Range(4, 10).ToList(), outputs[0]);
        CollectionAssert.AreEqual(Enumerable.Range(21, 10).ToList(), outputs[1]);
        CollectionAssert.AreEqual(new[] { 3, 1, 1, 1, 1, 1, 6, 1, 1, 6 }, stepper.InputLengths);
        CollectionAssert.AreEqual(Enumerable.Repeat("0,2", 6).Concat(Enumerable.Repeat("", 4)).ToList(), stepper.Paddings);
        CollectionAssert.AreEqual(new[] { 8 }, stepper.Reserved, "sized for the longest prompt");

        // Without a cache every step's window pads the short row until it has grown to the window.
        var uncached = new CountingStepper(context: 8, cache: false) { AcceptsPadding = true };
        outputs = CausalDecoding.Generate(uncached, new[] { new[] { 1, 2, 3 }, new[] { 20 } }, new DecodingSettings { MaxNewTokens = 10 });
        CollectionAssert.AreEqual(Enumerable.Range(21, 10).ToList(), outputs[1]);
        CollectionAssert.AreEqual(new[] { 3, 4, 5, 6, 7, 8, 8, 8, 8, 8 }, uncached.InputLengths);
        CollectionAssert.AreEqual(new[] { "0,2", "0,2", "0,2", "0,2", "0,2", "0,2", "0,1", "", "", "" }, uncached.Paddings);

        // Prompts of one length have no padding at all: the steps are those of before.
        var same = new CountingStepper(context: 8, cache: true) { AcceptsPadding = true };
        CausalDecoding.Generate(same, new[] { new[] { 1, 2 }, new[] { 3, 4 } }, new DecodingSettings { MaxNewTokens = 3 });
        Assert.IsTrue(same.Paddings.All(p => p.Length == 0));
        Assert.ThrowsExactly<ArgumentException>(() => CausalDecoding.Generate(same, new[] { new[] { 1, 2 }, Array.Empty<int>() }, new DecodingSettings { MaxNewTokens = 1 }));
    }

    private sealed class CountingStepper(int context, bool cache) : ICausalStepper
    {
        private int _cached;
        private int _steps;

        public List<int> InputLengths { get; } = new();

        public List<int> Reserved { get; } = new();

        /// <summary>Each step's left padding, as a string ("0,2"; "" for none).</summary>
        public List<string> Paddings { get; } = new();

        public bool AcceptsPadding { get; init; }

        public int PoisonAfter { get; init; } = int.MaxValue;

        public int ContextLength => context;

        public bool HasCache => cache;

        public int CachedLength => _cached;

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int>? leftPadding = null)
        {
            InputLengths.Add(ids[0].Count);
            Paddings.Add(leftPadding is null ? "" : string.Join(",", leftPadding));
            Assert.IsTrue(ids.All(row => row.Count == ids[0].Count), "every row of a step has the same length");
            if (cache)
            {
                _cached += ids[0].Count;
                Assert.IsLessThanOrEqualTo(context, _cached, "the loop never overfills the window");
            }
            else
            {
                Assert.IsLessThanOrEqualTo(context, ids[0].Count);
            }
            float poison = _steps++ >= PoisonAfter ? float.NaN : 0;
            return ids.Select(row =>
            {
                var scores = new float[50];
                scores[(row[^1] + 1) % 50] = 10;
                scores[0] += poison;
                return scores;
            }).ToArray();
        }

        public void ResetCache() => _cached = 0;

        public void Reserve(int positions) => Reserved.Add(positions);

        public void Dispose()
        {
        }
    }
}

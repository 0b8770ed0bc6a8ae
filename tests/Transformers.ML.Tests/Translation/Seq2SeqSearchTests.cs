using Transformers.ML.Translation;

namespace Transformers.ML.Tests.Translation;

/// <summary>
/// The shared search over a made-up decoder whose next-token log-probabilities depend on the sentence and the whole prefix,
/// checked against every possible output, enumerated: beam search wide enough to keep every prefix is exhaustive, so its
/// hypotheses are all outputs ranked by score; a narrow beam's are correctly scored and ranked; greedy takes the most
/// likely token each step.
/// </summary>
[TestClass]
public sealed class Seq2SeqSearchTests
{
    private const int EndOfSentence = 0, Padding = 4, Vocabulary = 5;
    private const double Alpha = 0.6;

    /// <summary>Rows are sentence b's beams b*K .. b*K + K - 1; log-probabilities from a hash of (sentence, prefix).</summary>
    private sealed class MadeUpDecoder(int beams) : ISeq2SeqStepper
    {
        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> prefixes) =>
            prefixes.Select((p, row) => LogProbabilities(row / beams, p.Skip(1).ToList())).ToArray(); // without the start token

        public void Reorder(long[] rows)
        {
        }
    }

    private static float[] LogProbabilities(int sentence, IReadOnlyList<int> prefix)
    {
        var random = new Random(prefix.Aggregate(17 + sentence * 7919, (h, t) => unchecked(h * 31 + t + 1)));
        double[] logits = Enumerable.Range(0, Vocabulary).Select(_ => random.NextDouble() * 4).ToArray();
        double max = logits.Max(), log = Math.Log(logits.Sum(l => Math.Exp(l - max)));
        return logits.Select(l => (float)(l - max - log)).ToArray();
    }

    /// <summary>Every output of a sentence within <paramref name="limit"/> tokens and its score, as the search defines them.</summary>
    private static List<(List<int> Tokens, double Score)> AllOutputs(int sentence, int limit)
    {
        var outputs = new List<(List<int>, double)>();
        void Extend(List<int> prefix, double sum)
        {
            float[] next = LogProbabilities(sentence, prefix);
            for (int token = 0; token < Vocabulary; token++)
            {
                if (token == Padding)
                {
                    continue;
                }
                double score = sum + next[token];
                if (token == EndOfSentence)
                {
                    outputs.Add((prefix, score / Seq2SeqSearch.Penalty(prefix.Count + 1, Alpha)));
                }
                else if (prefix.Count + 1 >= limit)
                {
                    outputs.Add((new List<int>(prefix) { token }, score / Seq2SeqSearch.Penalty(prefix.Count + 2, Alpha)));
                }
                else
                {
                    Extend(new List<int>(prefix) { token }, score);
                }
            }
        }
        Extend(new List<int>(), 0);
        return outputs;
    }

    [TestMethod]
    public void AWideBeamRanksEveryOutputByItsScore()
    {
        int[] limits = { 3, 4 };
        const int k = 200; // more than the 40 prefixes of 4 tokens: nothing is pruned
        List<Seq2SeqHypothesis>[] found = Seq2SeqSearch.Beam(new MadeUpDecoder(k), limits, k, Alpha, EndOfSentence, Padding);
        for (int b = 0; b < limits.Length; b++)
        {
            var all = AllOutputs(b, limits[b]).OrderByDescending(o => o.Score).ToList();
            Assert.AreEqual(limits[b] == 3 ? 13 + 27 : 40 + 81, all.Count, "outputs enumerated");
            Assert.HasCount(all.Count, found[b], $"sentence {b}: every output");
            for (int i = 0; i < all.Count; i++)
            {
                CollectionAssert.AreEqual(all[i].Tokens, found[b][i].Tokens, $"sentence {b}, rank {i}");
                Assert.AreEqual(all[i].Score, found[b][i].Score, 1e-5, $"sentence {b}, rank {i}");
            }
        }
        // The two sentences' decoders differ, so that a mix-up of rows would show.
        Assert.AreNotEqual(found[0][0].Score, found[1][0].Score);
    }

    [TestMethod]
    public void ANarrowBeamScoresAndRanksWhatItFinds()
    {
        int[] limits = { 6, 5, 6 };
        const int k = 3;
        List<Seq2SeqHypothesis>[] found = Seq2SeqSearch.Beam(new MadeUpDecoder(k), limits, k, Alpha, EndOfSentence, Padding);
        for (int b = 0; b < limits.Length; b++)
        {
            var exact = AllOutputs(b, limits[b]).ToDictionary(o => string.Join(",", o.Tokens), o => o.Score);
            Assert.IsGreaterThanOrEqualTo(k, found[b].Count, $"sentence {b}: at least K hypotheses");
            Assert.HasCount(found[b].Count, found[b].Select(h => string.Join(",", h.Tokens)).Distinct().ToList(), "no output twice");
            foreach (Seq2SeqHypothesis h in found[b])
            {
                Assert.AreEqual(exact[string.Join(",", h.Tokens)], h.Score, 1e-5, string.Join(",", h.Tokens));
            }
            Assert.IsTrue(found[b].Zip(found[b].Skip(1)).All(p => p.First.Score >= p.Second.Score), "best first");
            Assert.IsLessThanOrEqualTo(exact.Values.Max() + 1e-5, found[b][0].Score, "no better than the best output");
        }
    }

    [TestMethod]
    public void GreedyTakesTheMostLikelyTokenEachStepAndScoresLikeTheBeam()
    {
        int[] limits = { 6, 4 };
        List<Seq2SeqHypothesis>[] found = Seq2SeqSearch.Greedy(new MadeUpDecoder(1), limits, Alpha, EndOfSentence, Padding);
        for (int b = 0; b < limits.Length; b++)
        {
            // The greedy path, followed by hand.
            var tokens = new List<int>();
            double sum = 0;
            while (true)
            {
                float[] next = LogProbabilities(b, tokens);
                next[Padding] = float.NegativeInfinity;
                int token = Array.IndexOf(next, next.Max());
                sum += next[token];
                if (token == EndOfSentence)
                {
                    break;
                }
                tokens.Add(token);
                if (tokens.Count >= limits[b])
                {
                    break;
                }
            }
            Seq2SeqHypothesis only = found[b].Single();
            CollectionAssert.AreEqual(tokens, only.Tokens, $"sentence {b}");
            Assert.AreEqual(AllOutputs(b, limits[b]).Single(o => o.Tokens.SequenceEqual(tokens)).Score, only.Score, 1e-5);
        }
    }

    [TestMethod]
    public void AQuotaKeepsExactlyTheOutputsThatHoldTheirCountOfAClass()
    {
        // Token 3 is a placeholder: sentence 0's output must hold it once, sentence 1's not at all. Output that ends
        // with the end token holds exactly its count; one stopped by the limit no more than it.
        const int placeholder = 3;
        int[] limits = { 4, 4 };
        int[] required = { 1, 0 };
        var quota = new TokenQuota(new[] { new Dictionary<int, int> { [placeholder] = 1 } }, required.Select(r => new[] { r }).ToArray());
        const int k = 200;
        List<Seq2SeqHypothesis>[] found = Seq2SeqSearch.Beam(new MadeUpDecoder(k), limits, k, Alpha, EndOfSentence, Padding, quota);
        List<Seq2SeqHypothesis>[] greedy = Seq2SeqSearch.Greedy(new MadeUpDecoder(1), limits, Alpha, EndOfSentence, Padding, quota);
        List<Seq2SeqHypothesis>[] free = Seq2SeqSearch.Greedy(new MadeUpDecoder(1), limits, Alpha, EndOfSentence, Padding);
        for (int b = 0; b < limits.Length; b++)
        {
            var allowed = AllOutputs(b, limits[b])
                .Where(o => o.Tokens.Count(t => t == placeholder) is int n && (o.Tokens.Count == limits[b] ? n <= required[b] : n == required[b]))
                .OrderByDescending(o => o.Score).ToList();
            Assert.HasCount(allowed.Count, found[b], $"sentence {b}: every allowed output, no other");
            for (int i = 0; i < allowed.Count; i++)
            {
                CollectionAssert.AreEqual(allowed[i].Tokens, found[b][i].Tokens, $"sentence {b}, rank {i}");
                Assert.AreEqual(allowed[i].Score, found[b][i].Score, 1e-5, $"sentence {b}, rank {i}: the model's scores");
            }
            List<int> g = greedy[b].Single().Tokens;
            Assert.IsTrue(g.Count(t => t == placeholder) == required[b] || (g.Count == limits[b] && g.Count(t => t == placeholder) < required[b]),
                $"sentence {b}: greedy under the quota wrote {string.Join(",", g)}");
        }
        // The made-up decoder left to itself breaks the quota, so the test can tell.
        Assert.IsTrue(Enumerable.Range(0, limits.Length).Any(b => free[b].Single().Tokens.Count(t => t == placeholder) != required[b]),
            "without the quota greedy output breaks it for some sentence");
    }
}

using Transformers.ML.Core.Generation;

namespace Transformers.ML.Tests.Core;

/// <summary>
/// The decoding rules select instead of sorting the vocabulary; these tests hold them to the textbook form they replace
/// (<see cref="TextbookRules"/>: sort every score, take a softmax over the whole vocabulary): the same token at every
/// draw and the same masked scores, on random, tied, flat and peaked scores, so that a seed keeps its text.
/// </summary>
[TestClass]
public sealed class LogitsRulesReferenceTests
{
    [TestMethod]
    public void TheRulesPickWhatTheTextbookFormPicks()
    {
        var data = new Random(7);
        int cases = 0;
        foreach (int vocabulary in new[] { 1, 2, 5, 64, 300, 5000 })
        {
            foreach (string shape in new[] { "normal", "ties", "flat", "peaked", "zeros" })
            {
                float[] scores = Scores(data, vocabulary, shape);
                foreach (double temperature in new[] { 1.0, 0.7, 1.6 })
                {
                    foreach (int topK in new[] { 0, 1, 3, 40, vocabulary - 1, vocabulary, vocabulary + 5 }.Where(k => k >= 0).Distinct())
                    {
                        foreach (double topP in new[] { 1.0, 0.9, 0.5, 0.999, 1e-6 })
                        {
                            double penalty = (cases % 3) == 0 ? 1.3 : 1.0;
                            var rules = new LogitsRules(greedy: false, temperature, topK, topP, penalty, seed: cases);
                            var textbook = new TextbookRules(temperature, topK, topP, penalty);
                            Random a = rules.NewRandom(), b = new Random(cases);
                            var sequence = new List<int> { 0, vocabulary / 2 };
                            for (int draw = 0; draw < 6; draw++)
                            {
                                float[] ours = (float[])scores.Clone(), theirs = (float[])scores.Clone();
                                int token = rules.Next(ours, sequence, a), expected = textbook.Next(theirs, sequence, b);
                                string where = $"V {vocabulary}, {shape}, T {temperature}, k {topK}, p {topP}, penalty {penalty}, draw {draw}";
                                Assert.AreEqual(expected, token, where);
                                CollectionAssert.AreEqual(theirs, ours, where);
                                sequence.Add(token);
                            }
                            cases++;
                        }
                    }
                }
            }
        }
        Assert.IsTrue(cases > 2000, $"{cases} cases");
    }

    [TestMethod]
    public void ANucleusLargerThanTheFirstGuessIsWalkedToTheEnd()
    {
        // 5,000 almost equal scores and p 0.99: the nucleus holds about 4,950 tokens, past 64 and 512 sorted ones.
        var data = new Random(3);
        float[] scores = Enumerable.Range(0, 5000).Select(_ => (float)(data.NextDouble() * 0.01)).ToArray();
        float[] ours = (float[])scores.Clone(), theirs = (float[])scores.Clone();
        LogitsRules.ApplyTopP(ours, 0.99);
        TextbookRules.ApplyTopP(theirs, 0.99);
        CollectionAssert.AreEqual(theirs, ours);
        Assert.IsTrue(ours.Count(float.IsFinite) is > 4900 and < 5000, $"{ours.Count(float.IsFinite)} kept");
    }

    [TestMethod]
    public void TemperatureDividesAsOneDivisionAtATimeDoes()
    {
        // Values from 1e-40 (below float's normal range) to 1e38, both signs, and temperatures from 0.01 to 5: the vector
        // division gives the same floats, lengths around the vector width included.
        var data = new Random(5);
        for (int trial = 0; trial < 300; trial++)
        {
            double temperature = 0.01 + data.NextDouble() * 5;
            float[] values = Enumerable.Range(0, data.Next(0, 70)).Select(_ => (float)((data.NextDouble() - 0.5) * Math.Pow(10, data.Next(-40, 38)))).ToArray();
            float[] expected = values.Select(v => (float)(v / temperature)).ToArray();
            LogitsRules.ApplyTemperature(values, temperature);
            CollectionAssert.AreEqual(expected, values, $"temperature {temperature}, {values.Length} values");
        }
    }

    private static float[] Scores(Random data, int vocabulary, string shape) => Enumerable.Range(0, vocabulary).Select(i => shape switch
    {
        "normal" => (float)(Normal(data) * 2),
        "ties" => (float)data.Next(-2, 3),                          // five values, many repeats: ties at the k-th and in the walk
        "flat" => (float)(data.NextDouble() * 0.05),                // a nucleus of nearly everything
        "peaked" => i == vocabulary / 3 ? 12f : (float)(Normal(data) * 3),
        _ => data.Next(3) switch { 0 => 0f, 1 => -0f, _ => (float)Normal(data) }, // +0 and -0 are equal scores
    }).ToArray();

    private static double Normal(Random data) =>
        Math.Sqrt(-2 * Math.Log(1 - data.NextDouble())) * Math.Cos(2 * Math.PI * data.NextDouble());

    /// <summary>The rules as first written: a full sort for top-k, a softmax and a sort of the whole vocabulary for top-p.</summary>
    private sealed class TextbookRules(double temperature, int topK, double topP, double penalty)
    {
        public int Next(float[] logits, IReadOnlyList<int> sequence, Random random)
        {
            if (penalty != 1.0)
            {
                LogitsRules.ApplyRepetitionPenalty(logits, sequence, penalty);
            }
            if (temperature != 1.0)
            {
                for (int i = 0; i < logits.Length; i++)
                {
                    logits[i] = (float)(logits[i] / temperature);
                }
            }
            if (topK > 0)
            {
                ApplyTopK(logits, topK);
            }
            if (topP < 1.0)
            {
                ApplyTopP(logits, topP);
            }
            double[] probabilities = Softmax(logits);
            double u = random.NextDouble(), sum = 0;
            for (int i = 0; i < probabilities.Length; i++)
            {
                sum += probabilities[i];
                if (u < sum)
                {
                    return i;
                }
            }
            return Transformers.ML.Core.Generation.Scores.ArgMax(logits);
        }

        private static void ApplyTopK(float[] logits, int k)
        {
            if (k >= logits.Length)
            {
                return;
            }
            float[] sorted = (float[])logits.Clone();
            Array.Sort(sorted);
            float kth = sorted[^k];
            for (int i = 0; i < logits.Length; i++)
            {
                if (logits[i] < kth)
                {
                    logits[i] = float.NegativeInfinity;
                }
            }
        }

        public static void ApplyTopP(float[] logits, double p)
        {
            double[] probabilities = Softmax(logits);
            int[] order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
            double before = 0;
            foreach (int i in order)
            {
                if (before >= p)
                {
                    logits[i] = float.NegativeInfinity;
                }
                before += probabilities[i];
            }
        }

        private static double[] Softmax(float[] logits)
        {
            float max = logits.Max();
            var e = new double[logits.Length];
            double total = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                e[i] = float.IsNegativeInfinity(logits[i]) ? 0 : Math.Exp(logits[i] - max);
                total += e[i];
            }
            for (int i = 0; i < e.Length; i++)
            {
                e[i] /= total;
            }
            return e;
        }
    }
}

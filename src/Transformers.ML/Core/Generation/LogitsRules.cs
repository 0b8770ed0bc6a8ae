// The decoding rules of every causal generator (TorchSharp and ONNX Runtime alike), in one place and on plain arrays:
// repetition penalty (CTRL, Keskar et al. 2019), temperature, top-k (Fan et al. 2018), top-p (Holtzman et al. 2020),
// then the greedy choice or a draw from a seeded .NET random source. Working on the last position's scores only, the
// rules cost little next to a decoder step, and the same seed gives the same text on both runtimes.
namespace Transformers.ML.Core.Generation;

internal sealed class LogitsRules
{
    /// <summary>The most likely token at every step, nothing else.</summary>
    public static readonly LogitsRules Greedy = new(greedy: true);

    /// <param name="greedy">Take the most likely token (after the repetition penalty) instead of sampling.</param>
    /// <param name="temperature">Divides the logits before sampling: below 1 sharpens, above 1 flattens. Positive.</param>
    /// <param name="topK">Keep the k most likely tokens (0: all).</param>
    /// <param name="topP">Keep the smallest set of most likely tokens whose probability reaches p (1: all). In (0, 1].</param>
    /// <param name="repetitionPenalty">Divides positive and multiplies negative logits of tokens already in the sequence (1: off). Positive.</param>
    /// <param name="seed">Seed of the draws; null: a different sequence every time.</param>
    public LogitsRules(bool greedy, double temperature = 1.0, int topK = 0, double topP = 1.0, double repetitionPenalty = 1.0, int? seed = null)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, $"Temperature must be a positive finite number; found {temperature} (0 or less means greedy decoding).");
        }
        if (topK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"Top-k must be 0 (off) or at least 1; found {topK}.");
        }
        if (!(topP > 0 && topP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(topP), topP, $"Top-p must be in (0, 1]; found {topP}.");
        }
        if (!(repetitionPenalty > 0) || double.IsInfinity(repetitionPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(repetitionPenalty), repetitionPenalty, $"Repetition penalty must be a positive finite number; found {repetitionPenalty}.");
        }
        IsGreedy = greedy;
        Temperature = temperature;
        TopK = topK;
        TopP = topP;
        RepetitionPenalty = repetitionPenalty;
        Seed = seed;
    }

    public bool IsGreedy { get; }

    public double Temperature { get; }

    public int TopK { get; }

    public double TopP { get; }

    public double RepetitionPenalty { get; }

    public int? Seed { get; }

    /// <summary>The random source of one generation call.</summary>
    public Random NewRandom() => Seed is int seed ? new Random(seed) : new Random();

    /// <summary>The next token of one row: <paramref name="logits"/> (V) are changed in place; <paramref name="sequence"/> is the row so far (prompt included).</summary>
    public int Next(float[] logits, IReadOnlyList<int> sequence, Random random)
    {
        if (RepetitionPenalty != 1.0)
        {
            ApplyRepetitionPenalty(logits, sequence, RepetitionPenalty);
        }
        if (IsGreedy)
        {
            return Scores.ArgMax(logits);
        }
        if (Temperature != 1.0)
        {
            ApplyTemperature(logits, Temperature);
        }
        if (TopK > 0)
        {
            ApplyTopK(logits, TopK);
        }
        if (TopP < 1.0)
        {
            ApplyTopP(logits, TopP);
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
        return Scores.ArgMax(logits); // u within rounding of 1
    }

    /// <summary>Each token of <paramref name="sequence"/> once: its logit divided by the penalty when positive, multiplied when negative.</summary>
    internal static void ApplyRepetitionPenalty(float[] logits, IReadOnlyList<int> sequence, double penalty)
    {
        foreach (int id in sequence.Distinct())
        {
            if (id >= 0 && id < logits.Length)
            {
                logits[id] = logits[id] > 0 ? (float)(logits[id] / penalty) : (float)(logits[id] * penalty);
            }
        }
    }

    internal static void ApplyTemperature(float[] logits, double temperature)
    {
        for (int i = 0; i < logits.Length; i++)
        {
            logits[i] = (float)(logits[i] / temperature);
        }
    }

    /// <summary>Keeps the k largest (ties with the k-th kept); the others become -inf.</summary>
    internal static void ApplyTopK(float[] logits, int k)
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

    /// <summary>Drops a token when the more likely tokens before it already reach p (the most likely always stays).</summary>
    internal static void ApplyTopP(float[] logits, double p)
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

    internal static double[] Softmax(float[] logits)
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

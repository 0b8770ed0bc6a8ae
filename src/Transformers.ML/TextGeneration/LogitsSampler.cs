// The decoding rules of Core/Generation/LogitsProcessors on plain float arrays, for the ONNX Runtime generator, which
// must run without libtorch: repetition penalty, temperature, top-k, top-p, then greedy choice or a seeded draw.
// A test checks each rule against the TorchSharp processor on the same logits.
using Transformers.ML.Core.Generation;
using Transformers.ML.TextGeneration;

namespace Transformers.ML.TextGeneration;

internal sealed class LogitsSampler
{
    private readonly GenerationOptions _options;
    private readonly Random _random;

    public LogitsSampler(GenerationOptions options)
    {
        options.Validate();
        _options = options;
        _random = options.Seed is int seed ? new Random(seed) : new Random();
    }

    /// <summary>The next token for one row: <paramref name="logits"/> (V) are changed in place; <paramref name="sequence"/> is the row so far.</summary>
    public int Next(float[] logits, IReadOnlyList<int> sequence)
    {
        if (_options.RepetitionPenalty != 1.0)
        {
            RepetitionPenalty(logits, sequence, _options.RepetitionPenalty);
        }
        if (_options.IsGreedy)
        {
            return Scores.ArgMax(logits);
        }
        if (_options.Temperature != 1.0)
        {
            Temperature(logits, _options.Temperature);
        }
        if (_options.TopK > 0)
        {
            TopK(logits, _options.TopK);
        }
        if (_options.TopP < 1.0)
        {
            TopP(logits, _options.TopP);
        }
        double[] probabilities = Softmax(logits);
        double u = _random.NextDouble(), sum = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            sum += probabilities[i];
            if (u < sum)
            {
                return i;
            }
        }
        return Scores.ArgMax(logits);
    }

    internal static void RepetitionPenalty(float[] logits, IReadOnlyList<int> sequence, double penalty)
    {
        foreach (int id in sequence.Distinct())
        {
            logits[id] = logits[id] > 0 ? (float)(logits[id] / penalty) : (float)(logits[id] * penalty);
        }
    }

    internal static void Temperature(float[] logits, double temperature)
    {
        for (int i = 0; i < logits.Length; i++)
        {
            logits[i] = (float)(logits[i] / temperature);
        }
    }

    /// <summary>Keeps the k largest (ties with the k-th kept), others -inf.</summary>
    internal static void TopK(float[] logits, int k)
    {
        k = Math.Min(k, logits.Length);
        float kth = logits.OrderByDescending(v => v).ElementAt(k - 1);
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] < kth)
            {
                logits[i] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>Drops a token when the more likely tokens before it already reach p (the most likely always stays).</summary>
    internal static void TopP(float[] logits, double p)
    {
        double[] probabilities = Softmax(logits);
        int[] order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
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
        double[] e = logits.Select(v => float.IsNegativeInfinity(v) ? 0 : Math.Exp(v - max)).ToArray();
        double total = e.Sum();
        return e.Select(v => v / total).ToArray();
    }
}

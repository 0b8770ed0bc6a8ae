// The decoding rules of every causal generator (TorchSharp and ONNX Runtime alike), in one place and on plain arrays:
// repetition penalty (CTRL, Keskar et al. 2019), no repeated n-grams (Paulus et al. 2017; Hugging Face's
// no_repeat_ngram_size), temperature, top-k (Fan et al. 2018), top-p (Holtzman et al. 2020), min-p (Nguyen et al.
// 2024), then the greedy choice or a draw from a seeded .NET random source, in Hugging Face's order. Working on the
// last position's scores only, the rules cost little next to a decoder step, and the same seed gives the same text on
// both runtimes.
//
// Cost. A GPT-2 vocabulary has 50,257 tokens, and a cached GPT-2 small step in ONNX Runtime on two cores takes 4 ms
// (int8) to 13 ms (float32) at batch 1 and about 1 ms a row at batch 8, so the rules must not sort the vocabulary
// (sorting made sampling 3x slower than greedy decoding at batch 1, 8x at batch 8): top-k finds its k-th score with a
// heap of the k largest in one pass, and top-p sorts only a growing set of the most likely tokens until they reach p.
// The tokens still in play travel between the rules as a list of indices in ascending order, so later rules and the
// draw visit only those. Every rule computes exactly what its textbook form does (the same values, added in the same
// order), so a seed gives the tokens it gave when the rules sorted (LogitsRulesReferenceTests holds them to that form
// on random, tied, flat and peaked scores).
using System.Buffers;
using System.Numerics;

namespace Transformers.ML.Core.Generation;

internal sealed class LogitsRules
{
    /// <summary>The most likely token at every step, nothing else.</summary>
    public static readonly LogitsRules Greedy = new(greedy: true);

    /// <summary>How many of the most likely tokens top-p sorts first; a nucleus larger than this sorts eight times more, and so on.</summary>
    private const int FirstNucleusGuess = 64;

    /// <param name="greedy">Take the most likely token (after the repetition penalty and the n-gram ban) instead of sampling.</param>
    /// <param name="temperature">Divides the logits before sampling: below 1 sharpens, above 1 flattens. Positive.</param>
    /// <param name="topK">Keep the k most likely tokens (0: all).</param>
    /// <param name="topP">Keep the smallest set of most likely tokens whose probability reaches p (1: all). In (0, 1].</param>
    /// <param name="repetitionPenalty">Divides positive and multiplies negative logits of tokens already in the sequence (1: off). Positive.</param>
    /// <param name="seed">Seed of the draws; null: a different sequence every time.</param>
    /// <param name="minP">Drop the tokens less likely than this fraction of the most likely one's probability (0: off). In [0, 1].</param>
    /// <param name="noRepeatNgramSize">Ban the tokens that would repeat an n-gram of this size already in the sequence (0: off).</param>
    public LogitsRules(bool greedy, double temperature = 1.0, int topK = 0, double topP = 1.0, double repetitionPenalty = 1.0, int? seed = null,
        double minP = 0, int noRepeatNgramSize = 0)
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
        if (!(minP >= 0 && minP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(minP), minP, $"Min-p must be in [0, 1]; found {minP}.");
        }
        if (noRepeatNgramSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(noRepeatNgramSize), noRepeatNgramSize, $"The no-repeat n-gram size must be 0 (off) or at least 1; found {noRepeatNgramSize}.");
        }
        IsGreedy = greedy;
        Temperature = temperature;
        MinP = minP;
        NoRepeatNgramSize = noRepeatNgramSize;
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

    public double MinP { get; }

    public int NoRepeatNgramSize { get; }

    /// <summary>
    /// The random source of prompt <paramref name="prompt"/> of one generation call: the Seed itself for the first, a seed
    /// mixed from it and the prompt's index for the others, so that a prompt's draws depend neither on the other prompts
    /// nor on how they are batched. Without a Seed, a fresh source.
    /// </summary>
    public Random NewRandom(int prompt = 0) => Seed is int seed ? new Random(prompt == 0 ? seed : PromptSeed(seed, prompt)) : new Random();

    /// <summary>SplitMix64's finalizer over (seed, prompt): neighbouring seeds and prompts give unrelated streams.</summary>
    private static int PromptSeed(int seed, int prompt)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)prompt) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    /// <summary>The next token of one row: <paramref name="logits"/> (V) are changed in place; <paramref name="sequence"/> is the row so far (prompt included).</summary>
    public int Next(float[] logits, IReadOnlyList<int> sequence, Random random)
    {
        if (RepetitionPenalty != 1.0)
        {
            ApplyRepetitionPenalty(logits, sequence, RepetitionPenalty);
        }
        if (NoRepeatNgramSize > 0)
        {
            BanRepeatedNgrams(logits, sequence, NoRepeatNgramSize);
        }
        if (IsGreedy)
        {
            return Scores.ArgMax(logits);
        }
        if (Temperature != 1.0)
        {
            ApplyTemperature(logits, Temperature);
        }
        // Scratch of the vocabulary's size, rented: one model serves several threads, and 50,257 keys are 400 kB.
        int[] candidates = ArrayPool<int>.Shared.Rent(logits.Length);
        ulong[] keys = ArrayPool<ulong>.Shared.Rent(logits.Length);
        double[] weights = ArrayPool<double>.Shared.Rent(logits.Length);
        try
        {
            int count = TopK > 0 ? KeepTopK(logits, TopK, candidates) : Candidates(logits, candidates);
            if (TopP < 1.0)
            {
                count = KeepTopP(logits, TopP, candidates, count, keys, weights);
            }
            if (MinP > 0)
            {
                count = KeepMinP(logits, MinP, candidates, count);
            }
            // Top-p leaves each candidate's exp(logit - max) in weights, and neither it nor min-p drops the most likely,
            // so the max and those values stand: the draw only adds them up again.
            return Draw(logits, candidates, count, weights, weighed: TopP < 1.0, random.NextDouble());
        }
        finally
        {
            ArrayPool<int>.Shared.Return(candidates);
            ArrayPool<ulong>.Shared.Return(keys);
            ArrayPool<double>.Shared.Return(weights);
        }
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

    /// <summary>
    /// The tokens that would complete an n-gram already in <paramref name="sequence"/> (the same n - 1 tokens before them
    /// as at its end) become -inf; unless that would ban every token still possible, when nothing is banned (a text can
    /// always go on).
    /// </summary>
    internal static void BanRepeatedNgrams(float[] logits, IReadOnlyList<int> sequence, int n)
    {
        int length = sequence.Count;
        if (length < n)
        {
            return; // no n-gram yet
        }
        var banned = new HashSet<int>();
        for (int start = 0; start + n <= length; start++)
        {
            // The n-gram at start matches the last n - 1 tokens in its first n - 1: its last token is banned.
            bool same = true;
            for (int j = 0; j < n - 1 && same; j++)
            {
                same = sequence[start + j] == sequence[length - n + 1 + j];
            }
            int token = sequence[start + n - 1];
            if (same && token >= 0 && token < logits.Length)
            {
                banned.Add(token);
            }
        }
        if (banned.Count == 0)
        {
            return;
        }
        bool anyLeft = false;
        for (int i = 0; i < logits.Length && !anyLeft; i++)
        {
            anyLeft = !float.IsNegativeInfinity(logits[i]) && !banned.Contains(i);
        }
        if (anyLeft)
        {
            foreach (int token in banned)
            {
                logits[token] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>
    /// Each logit divided by the temperature in double precision and rounded back to float, as (float)(x / t) does, a
    /// vector at a time (the same correctly rounded division, ten times faster than one at a time over 50,257 tokens).
    /// </summary>
    internal static void ApplyTemperature(float[] logits, double temperature)
    {
        var divisor = new Vector<double>(temperature);
        int i = 0;
        for (; i + Vector<float>.Count <= logits.Length; i += Vector<float>.Count)
        {
            Vector.Widen(new Vector<float>(logits, i), out Vector<double> low, out Vector<double> high);
            Vector.Narrow(low / divisor, high / divisor).CopyTo(logits, i);
        }
        for (; i < logits.Length; i++)
        {
            logits[i] = (float)(logits[i] / temperature);
        }
    }

    /// <summary>Keeps the k largest (ties with the k-th kept); the others become -inf.</summary>
    internal static void ApplyTopK(float[] logits, int k)
    {
        KeepTopK(logits, k, new int[logits.Length]);
    }

    /// <summary>Drops a token when the more likely tokens before it already reach p (the most likely always stays); dropped ones become -inf.</summary>
    internal static void ApplyTopP(float[] logits, double p)
    {
        var candidates = new int[logits.Length];
        KeepTopP(logits, p, candidates, Candidates(logits, candidates), new ulong[logits.Length], new double[logits.Length]);
    }

    /// <summary>The tokens still in play (logit above -inf) into <paramref name="candidates"/>, in ascending order; returns their number.</summary>
    private static int Candidates(float[] logits, int[] candidates)
    {
        int count = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (!float.IsNegativeInfinity(logits[i]))
            {
                candidates[count++] = i;
            }
        }
        return count;
    }

    /// <summary>
    /// Top-k: the k-th largest logit (counted with repeats, as in a sort) found with a heap of the k largest so far, then
    /// every logit below it set to -inf and the others listed in <paramref name="candidates"/>. Returns their number (k,
    /// or more when the k-th ties). Both passes look at a vector of logits at once and skip it when all are below the bar.
    /// </summary>
    private static int KeepTopK(float[] logits, int k, int[] candidates)
    {
        if (k >= logits.Length)
        {
            return Candidates(logits, candidates);
        }
        float[] heap = ArrayPool<float>.Shared.Rent(k);
        float kth;
        try
        {
            kth = KthLargest(logits, heap.AsSpan(0, k));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(heap);
        }
        int kept = 0, i = 0, width = Vector<float>.Count;
        var bar = new Vector<float>(kth);
        var dropped = new Vector<float>(float.NegativeInfinity);
        for (; i + width <= logits.Length; i += width)
        {
            if (!Vector.GreaterThanOrEqualAny(new Vector<float>(logits, i), bar))
            {
                dropped.CopyTo(logits, i);
                continue;
            }
            for (int j = i; j < i + width; j++)
            {
                kept = KeepAbove(logits, j, kth, candidates, kept);
            }
        }
        for (; i < logits.Length; i++)
        {
            kept = KeepAbove(logits, i, kth, candidates, kept);
        }
        return kept;
    }

    private static int KeepAbove(float[] logits, int i, float bar, int[] candidates, int kept)
    {
        if (logits[i] < bar)
        {
            logits[i] = float.NegativeInfinity;
            return kept;
        }
        candidates[kept] = i;
        return kept + 1;
    }

    /// <summary>The <c>heap.Length</c>-th largest logit: a min-heap keeps the largest seen, its root the smallest of them.</summary>
    private static float KthLargest(float[] logits, Span<float> heap)
    {
        int k = heap.Length;
        for (int j = 0; j < k; j++)
        {
            // Sift up.
            int child = j;
            heap[child] = logits[j];
            while (child > 0 && heap[(child - 1) / 2] > heap[child])
            {
                (heap[(child - 1) / 2], heap[child]) = (heap[child], heap[(child - 1) / 2]);
                child = (child - 1) / 2;
            }
        }
        int i = k, width = Vector<float>.Count;
        for (; i < logits.Length; i++)
        {
            // Whole vectors at or below the root cannot enter the heap: skip them.
            if (i % width == 0 && i + width <= logits.Length && !Vector.GreaterThanAny(new Vector<float>(logits, i), new Vector<float>(heap[0])))
            {
                i += width - 1;
                continue;
            }
            float value = logits[i];
            if (!(value > heap[0]))
            {
                continue;
            }
            // Replace the root and sift it down.
            heap[0] = value;
            int parent = 0;
            while (true)
            {
                int smallest = parent, left = 2 * parent + 1, right = left + 1;
                if (left < k && heap[left] < heap[smallest])
                {
                    smallest = left;
                }
                if (right < k && heap[right] < heap[smallest])
                {
                    smallest = right;
                }
                if (smallest == parent)
                {
                    break;
                }
                (heap[parent], heap[smallest]) = (heap[smallest], heap[parent]);
                parent = smallest;
            }
        }
        return heap[0];
    }

    /// <summary>
    /// Top-p over the candidates. Their probabilities are the softmax of their logits (the others' are 0); walking them from
    /// the most likely (the lower index first among equal logits), a token is dropped once the ones before it reach p. The
    /// walk sorts only the most likely <see cref="FirstNucleusGuess"/> tokens, then eight times more while p is not
    /// reached (the ones sorted stay in front). Returns the number left.
    /// </summary>
    private static int KeepTopP(float[] logits, double p, int[] candidates, int count, ulong[] keys, double[] weights)
    {
        if (count == 0)
        {
            return 0;
        }
        double total = Exponentials(logits, candidates, count, weights);
        for (int j = 0; j < count; j++)
        {
            keys[j] = Key(logits, candidates[j]);
        }
        // keys[..walked] are the most likely, sorted; each round moves the next most likely to follow them and sorts those.
        int walked = 0;
        double before = 0;
        ulong lastKept = 0;
        bool reached = false;
        while (!reached && walked < count)
        {
            int end = (int)Math.Min(count, Math.Max(FirstNucleusGuess, walked * 8L));
            SelectLargest(keys.AsSpan(walked, count - walked), end - walked);
            Span<ulong> next = keys.AsSpan(walked, end - walked);
            next.Sort();
            for (int j = next.Length - 1; j >= 0 && !reached; j--)
            {
                if (before >= p)
                {
                    reached = true;
                }
                else
                {
                    lastKept = next[j];
                    before += weights[IndexOf(next[j])] / total;
                }
            }
            walked = end;
            reached |= before >= p; // the next token would be dropped
        }
        int kept = 0;
        for (int j = 0; j < count; j++)
        {
            int i = candidates[j];
            if (Key(logits, i) < lastKept)
            {
                logits[i] = float.NegativeInfinity;
            }
            else
            {
                candidates[kept++] = i;
            }
        }
        return kept;
    }

    /// <summary>
    /// Min-p over the candidates: a token stays when its probability is at least <paramref name="minP"/> times the most
    /// likely one's, that is when logit - max >= ln(minP) (the softmax's normalisation cancels). Returns the number left.
    /// </summary>
    private static int KeepMinP(float[] logits, double minP, int[] candidates, int count)
    {
        float max = Largest(logits, candidates, count);
        double bar = Math.Log(minP);
        int kept = 0;
        for (int j = 0; j < count; j++)
        {
            int i = candidates[j];
            if (logits[i] - max < bar)
            {
                logits[i] = float.NegativeInfinity;
            }
            else
            {
                candidates[kept++] = i;
            }
        }
        return kept;
    }

    /// <summary>Keeps the tokens at least <paramref name="minP"/> times as likely as the most likely; the others become -inf.</summary>
    internal static void ApplyMinP(float[] logits, double minP)
    {
        var candidates = new int[logits.Length];
        KeepMinP(logits, minP, candidates, Candidates(logits, candidates));
    }

    /// <summary>
    /// One token drawn from the softmax of the candidates' logits with <paramref name="u"/> in [0, 1): the first whose
    /// cumulative probability, in index order, passes u. The most likely when u is within rounding of 1.
    /// <paramref name="weighed"/>: <paramref name="weights"/> already hold the candidates' exp(logit - max).
    /// </summary>
    private static int Draw(float[] logits, int[] candidates, int count, double[] weights, bool weighed, double u)
    {
        double total = 0, sum = 0;
        if (weighed)
        {
            for (int j = 0; j < count; j++)
            {
                total += weights[candidates[j]];
            }
        }
        else
        {
            total = Exponentials(logits, candidates, count, weights);
        }
        for (int j = 0; j < count; j++)
        {
            sum += weights[candidates[j]] / total;
            if (u < sum)
            {
                return candidates[j];
            }
        }
        return Scores.ArgMax(logits);
    }

    /// <summary>exp(logit - max) of each candidate into <paramref name="weights"/> (by token index); returns their sum, added in index order.</summary>
    private static double Exponentials(float[] logits, int[] candidates, int count, double[] weights)
    {
        float max = Largest(logits, candidates, count);
        double total = 0;
        for (int j = 0; j < count; j++)
        {
            int i = candidates[j];
            weights[i] = Math.Exp(logits[i] - max);
            total += weights[i];
        }
        return total;
    }

    /// <summary>The largest logit of the candidates (-inf when there are none).</summary>
    private static float Largest(float[] logits, int[] candidates, int count)
    {
        float max = float.NegativeInfinity;
        for (int j = 0; j < count; j++)
        {
            max = Math.Max(max, logits[candidates[j]]);
        }
        return max;
    }

    /// <summary>
    /// A token's place in the order "larger logit first, lower index first among equals" as one number, larger first: the
    /// logit's bits made to sort as the float does (-0 as +0), above the index counted down.
    /// </summary>
    private static ulong Key(float[] logits, int index)
    {
        float value = logits[index] == 0 ? 0f : logits[index];
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint ordered = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
        return ((ulong)ordered << 32) | (uint.MaxValue - (uint)index);
    }

    private static int IndexOf(ulong key) => (int)(uint.MaxValue - (uint)key);

    /// <summary>Moves the <paramref name="count"/> largest keys (all distinct) to the front of <paramref name="keys"/>, in no order (quickselect).</summary>
    private static void SelectLargest(Span<ulong> keys, int count)
    {
        int lo = 0, hi = keys.Length - 1;
        while (lo < hi && count > lo && count <= hi)
        {
            // Median of three as the pivot, then partition into larger | smaller.
            int mid = lo + (hi - lo) / 2;
            ulong a = keys[lo], b = keys[mid], c = keys[hi];
            ulong pivot = Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
            int i = lo, j = hi;
            while (i <= j)
            {
                while (keys[i] > pivot)
                {
                    i++;
                }
                while (keys[j] < pivot)
                {
                    j--;
                }
                if (i <= j)
                {
                    (keys[i], keys[j]) = (keys[j], keys[i]);
                    i++;
                    j--;
                }
            }
            // Now keys[lo..j] >= pivot >= keys[i..hi], and keys between j and i equal the pivot.
            if (count <= j + 1)
            {
                hi = j;
            }
            else if (count >= i)
            {
                lo = i;
            }
            else
            {
                return;
            }
        }
    }
}

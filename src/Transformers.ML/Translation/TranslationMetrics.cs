// Corpus BLEU and chrF exactly as sacreBLEU 2.x computes them (Post 2018), so that numbers are comparable:
// BLEU (Papineni et al. 2002) with the 13a tokenizer of mteval-v13a, exp smoothing, mixed case, the closest
// reference length; chrF2 (Popović 2015): character 6-grams without whitespace, beta 2, and for several
// references the one with the best sentence-level F-score.
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Transformers.ML.Translation;

/// <summary>Corpus-level translation quality, as sacreBLEU reports it.</summary>
public sealed record TranslationMetrics
{
    /// <summary>Corpus BLEU, 0..100 (sacreBLEU: nrefs:N|case:mixed|eff:no|tok:13a|smooth:exp).</summary>
    public required double Bleu { get; init; }

    /// <summary>Modified n-gram precisions for n = 1..4, in percent.</summary>
    public required IReadOnlyList<double> Precisions { get; init; }

    /// <summary>Brevity penalty: exp(1 - r/c) when the hypotheses are shorter than the references, else 1.</summary>
    public required double BrevityPenalty { get; init; }

    /// <summary>Tokens of the hypotheses (13a tokenization).</summary>
    public required long HypothesisLength { get; init; }

    /// <summary>Tokens of the closest references.</summary>
    public required long ReferenceLength { get; init; }

    /// <summary>chrF2, 0..100 (sacreBLEU: nrefs:N|case:mixed|eff:yes|nc:6|nw:0|space:no).</summary>
    public required double ChrF { get; init; }

    /// <summary>Sentences scored.</summary>
    public required int Sentences { get; init; }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"BLEU = {Bleu:F2} {string.Join("/", Precisions.Select(p => p.ToString("F1", CultureInfo.InvariantCulture)))} (BP = {BrevityPenalty:F3} ratio = {(double)HypothesisLength / Math.Max(1, ReferenceLength):F3} hyp_len = {HypothesisLength} ref_len = {ReferenceLength}); chrF2 = {ChrF:F2}");
}

/// <summary>sacreBLEU's corpus BLEU and chrF.</summary>
public static partial class SacreBleu
{
    private const int MaxOrder = 4;
    private const int CharOrder = 6;
    private const double Beta = 2;

    /// <summary>
    /// Scores <paramref name="hypotheses"/> against one or more reference streams; <c>references[k][i]</c> is the
    /// k-th reference of sentence i (sacreBLEU's layout).
    /// </summary>
    public static TranslationMetrics Score(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references)
    {
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(references);
        if (references.Count == 0)
        {
            throw new ArgumentException("At least one stream of references is needed.", nameof(references));
        }
        for (int k = 0; k < references.Count; k++)
        {
            if (references[k].Count != hypotheses.Count)
            {
                throw new ArgumentException($"Reference stream {k} has {references[k].Count} sentences; there are {hypotheses.Count} hypotheses.", nameof(references));
            }
        }
        return ScorePerSentence(hypotheses, Enumerable.Range(0, hypotheses.Count).Select(i => (IReadOnlyList<string>)references.Select(r => r[i]).ToList()).ToList());
    }

    /// <summary>Scores hypotheses where each sentence has its own list of references (any number, at least one).</summary>
    public static TranslationMetrics ScorePerSentence(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> referencesPerSentence)
    {
        if (referencesPerSentence.Count != hypotheses.Count || referencesPerSentence.Any(r => r.Count == 0))
        {
            throw new ArgumentException("Every hypothesis needs at least one reference.", nameof(referencesPerSentence));
        }
        (double bleu, double[] precisions, double bp, long hypLength, long refLength) = Bleu(hypotheses, referencesPerSentence);
        return new TranslationMetrics
        {
            Bleu = bleu,
            Precisions = precisions,
            BrevityPenalty = bp,
            HypothesisLength = hypLength,
            ReferenceLength = refLength,
            ChrF = ChrF(hypotheses, referencesPerSentence),
            Sentences = hypotheses.Count,
        };
    }

    // ---------------------------------------------------------------- BLEU

    private static (double Bleu, double[] Precisions, double BrevityPenalty, long HypothesisLength, long ReferenceLength) Bleu(
        IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references)
    {
        var correct = new long[MaxOrder];
        var total = new long[MaxOrder];
        long hypLength = 0, refLength = 0;
        for (int i = 0; i < hypotheses.Count; i++)
        {
            string[] hyp = Tokenize13a(hypotheses[i]);
            var refs = references[i].Select(Tokenize13a).ToList();
            hypLength += hyp.Length;
            // The closest reference length; on a tie, the shorter one.
            refLength += refs.Select(r => r.Length).OrderBy(l => Math.Abs(l - hyp.Length)).ThenBy(l => l).First();

            var hypGrams = NGrams(hyp);
            var refGrams = refs.Select(NGrams).ToList();
            for (int n = 0; n < MaxOrder; n++)
            {
                foreach ((string gram, int count) in hypGrams[n])
                {
                    // Clipped by the largest count of the n-gram in any one reference.
                    int clip = refGrams.Max(r => r[n].GetValueOrDefault(gram));
                    correct[n] += Math.Min(count, clip);
                }
            }
            for (int n = 1; n <= MaxOrder; n++)
            {
                total[n - 1] += Math.Max(0, hyp.Length - n + 1);
            }
        }

        // sacreBLEU's 'exp' smoothing: an order without matches gets precision 1 / (2^k * total).
        var precisions = new double[MaxOrder];
        double smooth = 1;
        for (int n = 0; n < MaxOrder; n++)
        {
            if (total[n] == 0)
            {
                break;
            }
            if (correct[n] == 0)
            {
                smooth *= 2;
                precisions[n] = 100.0 / (smooth * total[n]);
            }
            else
            {
                precisions[n] = 100.0 * correct[n] / total[n];
            }
        }
        double bp = hypLength < refLength ? (hypLength > 0 ? Math.Exp(1 - (double)refLength / hypLength) : 0) : 1;
        double logSum = precisions.Sum(p => p > 0 ? Math.Log(p) : -9999999999);
        double bleu = bp * Math.Exp(logSum / MaxOrder);
        return (bleu, precisions, bp, hypLength, refLength);
    }

    /// <summary>Word n-grams of orders 1..4 with their counts, one dictionary per order (tokens joined by a space, which 13a tokens never contain).</summary>
    private static Dictionary<string, int>[] NGrams(string[] tokens)
    {
        var result = new Dictionary<string, int>[MaxOrder];
        for (int n = 1; n <= MaxOrder; n++)
        {
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i + n <= tokens.Length; i++)
            {
                string gram = string.Join(' ', tokens, i, n);
                counts[gram] = counts.GetValueOrDefault(gram) + 1;
            }
            result[n - 1] = counts;
        }
        return result;
    }

    [GeneratedRegex(@"([{-~\[-`\x20-&(-+:-@/])")]
    private static partial Regex Punctuation();

    [GeneratedRegex(@"([^0-9])([\.,])")]
    private static partial Regex PeriodCommaAfterNonDigit();

    [GeneratedRegex(@"([\.,])([^0-9])")]
    private static partial Regex PeriodCommaBeforeNonDigit();

    [GeneratedRegex(@"([0-9])(-)")]
    private static partial Regex DashAfterDigit();

    /// <summary>mteval-v13a tokenization, as sacreBLEU's Tokenizer13a (applied after removing trailing whitespace).</summary>
    public static string[] Tokenize13a(string line)
    {
        line = line.TrimEnd();
        line = line.Replace("<skipped>", "", StringComparison.Ordinal).Replace("-\n", "", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
        line = line.Replace("&quot;", "\"", StringComparison.Ordinal).Replace("&amp;", "&", StringComparison.Ordinal)
            .Replace("&lt;", "<", StringComparison.Ordinal).Replace("&gt;", ">", StringComparison.Ordinal);
        line = " " + line + " ";
        line = Punctuation().Replace(line, " $1 ");
        line = PeriodCommaAfterNonDigit().Replace(line, "$1 $2 ");
        line = PeriodCommaBeforeNonDigit().Replace(line, " $1 $2");
        line = DashAfterDigit().Replace(line, "$1 $2 ");
        return line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
    }

    // ---------------------------------------------------------------- chrF

    private static double ChrF(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references)
    {
        var corpus = new long[3 * CharOrder];
        for (int i = 0; i < hypotheses.Count; i++)
        {
            var hyp = CharNGrams(hypotheses[i]);
            long[]? best = null;
            double bestF = -1;
            foreach (string reference in references[i])
            {
                var refGrams = CharNGrams(reference);
                var stats = new long[3 * CharOrder];
                for (int n = 0; n < CharOrder; n++)
                {
                    long hypCount = 0, match = 0;
                    foreach ((string gram, int count) in hyp[n])
                    {
                        hypCount += count;
                        match += Math.Min(count, refGrams[n].GetValueOrDefault(gram));
                    }
                    // An order the reference does not have does not count the hypothesis' n-grams either.
                    stats[3 * n] = refGrams[n].Count > 0 ? hypCount : 0;
                    stats[3 * n + 1] = refGrams[n].Values.Sum();
                    stats[3 * n + 2] = match;
                }
                double f = FScore(stats);
                if (f > bestF)
                {
                    (bestF, best) = (f, stats);
                }
            }
            for (int s = 0; s < corpus.Length; s++)
            {
                corpus[s] += best![s];
            }
        }
        return FScore(corpus);
    }

    /// <summary>F-beta of the precision and recall averaged over the orders present in both (sacreBLEU's default, no eps smoothing).</summary>
    private static double FScore(long[] stats)
    {
        double precision = 0, recall = 0;
        int effective = 0;
        for (int n = 0; n < CharOrder; n++)
        {
            long hyp = stats[3 * n], reference = stats[3 * n + 1], match = stats[3 * n + 2];
            if (hyp > 0 && reference > 0)
            {
                precision += (double)match / hyp;
                recall += (double)match / reference;
                effective++;
            }
        }
        if (effective == 0)
        {
            return 0;
        }
        precision /= effective;
        recall /= effective;
        double factor = Beta * Beta;
        return precision + recall > 0 ? 100 * (1 + factor) * precision * recall / (factor * precision + recall) : 0;
    }

    /// <summary>Character n-grams (code points, whitespace removed) of orders 1..6 with counts.</summary>
    private static Dictionary<string, int>[] CharNGrams(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (!char.IsWhiteSpace(c))
            {
                builder.Append(c);
            }
        }
        string[] chars = builder.ToString().EnumerateRunes().Select(r => r.ToString()).ToArray();
        var result = new Dictionary<string, int>[CharOrder];
        for (int n = 1; n <= CharOrder; n++)
        {
            var counts = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i + n <= chars.Length; i++)
            {
                string gram = string.Concat(chars.AsSpan(i, n).ToArray());
                counts[gram] = counts.GetValueOrDefault(gram) + 1;
            }
            result[n - 1] = counts;
        }
        return result;
    }
}

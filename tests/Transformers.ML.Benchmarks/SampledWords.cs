using System.Text.RegularExpressions;
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Benchmarks;

/// <summary>
/// How real the words of a model's samples are: the share of sampled words that never occur in the text the model
/// learned from (a small model stitches BPE pieces or characters into words like "surpront" or "cheertainly"; a word
/// the book lacks is a made-up word or, rarely, a real one it never read), and the share of distinct word pairs
/// within a sample (low when a rule makes the text repeat itself). The model's held-out text, in pieces of a sample's
/// length, gives both for real writing: what the book's own next pages bring in new words and in variety. The
/// translation rows count a translator's made-up words the same way (<see cref="NewWords"/>).
/// </summary>
internal static class SampledWords
{
    /// <summary>Samples drawn per sampling rule: 48 of 120 tokens, about 2,700 words.</summary>
    private const int Samples = 48;

    private static readonly Regex Word = new("[a-z]+", RegexOptions.Compiled);

    internal sealed record Measure(double NewWordPercent, double DistinctPairs, int Words);

    /// <summary>The lower-case words of a text (runs of the letters a-z).</summary>
    public static List<string> Words(string text) => Word.Matches(text.ToLowerInvariant()).Select(m => m.Value).ToList();

    /// <summary>The words of the texts a model learned from.</summary>
    public static HashSet<string> Vocabulary(IEnumerable<string> texts) => texts.SelectMany(Words).ToHashSet();

    /// <summary>The words of <paramref name="texts"/> that <paramref name="vocabulary"/> lacks, in order, and how many words the texts hold.</summary>
    public static (List<string> New, int Words) NewWords(IEnumerable<string> texts, HashSet<string> vocabulary)
    {
        List<string> words = texts.SelectMany(Words).ToList();
        return (words.Where(w => !vocabulary.Contains(w)).ToList(), words.Count);
    }

    /// <summary>The held-out text read as samples are: pieces of 55 words (a sample's length), at most 200 of them.</summary>
    public static Measure OfText(string heldOut, HashSet<string> vocabulary)
    {
        List<string> words = Words(heldOut);
        var pieces = Enumerable.Range(0, Math.Min(200, words.Count / 55)).Select(i => words.GetRange(i * 55, 55)).ToList();
        return Of(pieces, vocabulary);
    }

    /// <summary>The samples' settings: <paramref name="rule"/>'s rules with <paramref name="minP"/>, 120 new tokens, seed 7.</summary>
    public static GenerationOptions Rule(GenerationOptions rule, double minP) => new()
    {
        MaxNewTokens = 120, Temperature = rule.Temperature, TopK = rule.TopK, TopP = rule.TopP, MinP = minP,
        RepetitionPenalty = rule.RepetitionPenalty, NoRepeatNgramSize = rule.NoRepeatNgramSize, Seed = 7,
    };

    /// <summary><see cref="Samples"/> samples with <paramref name="options"/> (<see cref="Rule"/>), the prompts taking turns.</summary>
    public static Measure OfSamples(TextGenerationTransformer model, GenerationOptions options, IReadOnlyList<string> prompts, HashSet<string> vocabulary)
    {
        var batch = Enumerable.Range(0, Samples).Select(i => prompts[i % prompts.Count]).ToList();
        return Of(model.Generate(batch, options).Select(Words).Where(w => w.Count > 2).ToList(), vocabulary);
    }

    private static Measure Of(List<List<string>> samples, HashSet<string> vocabulary)
    {
        int words = samples.Sum(s => s.Count);
        int unknown = samples.Sum(s => s.Count(w => !vocabulary.Contains(w)));
        double pairs = samples.Average(s => s.Zip(s.Skip(1)).Distinct().Count() / (double)(s.Count - 1));
        return new Measure(100.0 * unknown / words, pairs, words);
    }
}

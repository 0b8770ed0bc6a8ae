// Spans a translation carries over as they are written: numbers, web and e-mail addresses, symbols and emoji. The model
// reads and writes one placeholder in their place and the spans are put back in the order they came, as NMT systems
// tag numbers; the model learns to copy the placeholder from the training pairs where a span appears on both sides.
using System.Text;
using System.Text.RegularExpressions;

namespace Transformers.ML.Translation;

/// <summary>
/// Masks and restores the spans a translation copies as written (<see cref="TranslationOptions.CopyVerbatimSpans"/>):
/// numbers with their inner separators ("1987", "10:45", "3,50", "555-1234", "15/03/2024"; not digits inside a word,
/// "mp3"), web addresses ("https://...", "www...."), e-mail addresses, and runs of symbols and emoji ("☕", "°", "😀").
/// Spans that touch are one span. A sentence's spans are replaced by <see cref="Placeholder"/> before it is encoded,
/// and the placeholders of its translation are replaced by its spans in order.
/// </summary>
internal static partial class VerbatimSpans
{
    /// <summary>
    /// The placeholder: CIRCLED DIGIT ZERO, a number to the BPE's pre-tokenizer (so " ⓪" is one word, as " 25" is) and
    /// a character that text hardly holds; one typed in a source is a span itself, so it comes back as typed.
    /// </summary>
    public const char Placeholder = '\u24EA';

    // Alternatives in order: a web address (without the punctuation that ends it), an e-mail address, a number not
    // inside a word (atomic, so "10:45h" is left whole to the model rather than cut to "10"), symbols and emoji (UTF-16
    // surrogates: the characters outside the basic plane), the placeholder itself.
    [GeneratedRegex(@"(?:https?://|www\.)[^\s]*[^\s.,;:!?¡¿'""()\[\]{}<>«»“”‘’]"
        + @"|[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+"
        + @"|(?<![\p{L}\p{N}])(?>\p{Nd}+(?:[.,:/-]\p{Nd}+)*)(?![\p{L}\p{N}])"
        + @"|(?:\p{So}|\p{Cs}|\p{Co}|\u200D|\uFE0F|\u20E3)+"
        + @"|\u24EA", RegexOptions.CultureInvariant)]
    private static partial Regex Span();

    /// <summary>The spans of <paramref name="text"/> (index, length), in order, those that touch joined.</summary>
    public static List<(int Index, int Length)> Find(string text)
    {
        var spans = new List<(int Index, int Length)>();
        foreach (Match match in Span().Matches(text))
        {
            if (spans.Count > 0 && spans[^1].Index + spans[^1].Length == match.Index)
            {
                spans[^1] = (spans[^1].Index, spans[^1].Length + match.Length);
            }
            else
            {
                spans.Add((match.Index, match.Length));
            }
        }
        return spans;
    }

    /// <summary>The sentence as the model reads it: each span replaced by the placeholder; <paramref name="spans"/>: the spans in order.</summary>
    public static string Mask(string text, out string[] spans)
    {
        List<(int Index, int Length)> found = Find(text);
        spans = found.Select(s => text.Substring(s.Index, s.Length)).ToArray();
        return Replace(text, found);
    }

    /// <summary>
    /// A training pair as the model learns it: each source span that the target holds too, after the target's span
    /// paired before, is replaced by the placeholder on both sides, so that the placeholders come in the same order on
    /// both sides; spans on one side only (a number written in words on the other) stay as they are.
    /// </summary>
    public static (string Source, string Target) MaskPair(string source, string target)
    {
        (string maskedSource, string maskedTarget, _, _) = MaskPair(source, target, everySourceSpan: false);
        return (maskedSource, maskedTarget);
    }

    /// <summary>
    /// <see cref="MaskPair(string, string)"/>, with <paramref name="everySourceSpan"/> every source span masked (as the
    /// model reads a source when it translates), and the spans masked on each side in order.
    /// </summary>
    public static (string Source, string Target, string[] SourceSpans, string[] TargetSpans) MaskPair(string source, string target, bool everySourceSpan)
    {
        List<(int Index, int Length)> sourceSpans = Find(source), targetSpans = Find(target);
        var maskedSource = new List<(int Index, int Length)>();
        var maskedTarget = new List<(int Index, int Length)>();
        int next = 0; // the first target span still free to pair
        foreach ((int index, int length) in sourceSpans)
        {
            ReadOnlySpan<char> span = source.AsSpan(index, length);
            for (int j = next; j < targetSpans.Count; j++)
            {
                if (target.AsSpan(targetSpans[j].Index, targetSpans[j].Length).SequenceEqual(span))
                {
                    maskedSource.Add((index, length));
                    maskedTarget.Add(targetSpans[j]);
                    next = j + 1;
                    break;
                }
            }
            if (everySourceSpan && (maskedSource.Count == 0 || maskedSource[^1].Index != index))
            {
                maskedSource.Add((index, length));
            }
        }
        return (Replace(source, maskedSource), Replace(target, maskedTarget),
            maskedSource.Select(s => source.Substring(s.Index, s.Length)).ToArray(), maskedTarget.Select(s => target.Substring(s.Index, s.Length)).ToArray());
    }

    /// <summary>
    /// A training pair with a placeholder added at the end of both sides, before their final punctuation ("Gracias." /
    /// "Thanks." -> "Gracias ⓪." / "Thanks ⓪."): where users put an emoji, and where corpora such as Tatoeba have
    /// neither numbers nor symbols to learn from (a model trained without such pairs dropped "☕" from "Me gusta el café ☕.").
    /// </summary>
    public static (string Source, string Target) AppendPlaceholder(string source, string target) => (Append(source), Append(target));

    private static string Append(string text)
    {
        text = text.TrimEnd();
        int end = text.Length;
        while (end > 0 && FinalPunctuation.Contains(text[end - 1]))
        {
            end--;
        }
        return string.Concat(text.AsSpan(0, end).TrimEnd(), " ", Placeholder.ToString(), text.AsSpan(end));
    }

    private const string FinalPunctuation = ".!?…\"'»”’)";

    /// <summary>Token texts with their placeholders replaced by <paramref name="spans"/> in order (the labels of an attention picture).</summary>
    public static string[] Label(IReadOnlyList<string> tokens, IReadOnlyList<string> spans)
    {
        int used = 0;
        return tokens.Select(token => token.IndexOf(Placeholder) < 0 ? token
            : string.Concat(token.Select(c => c == Placeholder && used < spans.Count ? spans[used++] : c.ToString()))).ToArray();
    }

    /// <summary>
    /// The translation with its placeholders replaced by <paramref name="spans"/> in order; a placeholder past the last
    /// span is dropped with the space before it.
    /// </summary>
    public static string Restore(string translation, IReadOnlyList<string> spans)
    {
        if (translation.IndexOf(Placeholder) < 0)
        {
            return translation;
        }
        var text = new StringBuilder(translation.Length + spans.Sum(s => s.Length));
        int used = 0;
        foreach (char c in translation)
        {
            if (c != Placeholder)
            {
                text.Append(c);
            }
            else if (used < spans.Count)
            {
                text.Append(spans[used++]);
            }
            else if (text.Length > 0 && text[^1] == ' ')
            {
                text.Length--;
            }
        }
        return text.ToString().Trim();
    }

    private static string Replace(string text, List<(int Index, int Length)> spans)
    {
        if (spans.Count == 0)
        {
            return text;
        }
        var masked = new StringBuilder(text.Length);
        int at = 0;
        foreach ((int index, int length) in spans)
        {
            masked.Append(text, at, index - at).Append(Placeholder);
            at = index + length;
        }
        return masked.Append(text, at, text.Length - at).ToString();
    }
}

// Spans a translation carries over as they are written: numbers, web and e-mail addresses, symbols and emoji. The model
// reads and writes a placeholder of the span's class in their place and the spans are put back in the order they came,
// as NMT systems tag numbers; the model learns to copy the placeholders from the training pairs where a span appears on
// both sides, and, for symbols and emoji, which corpora such as Tatoeba lack, from pairs given one at their end.
using System.Text;
using System.Text.RegularExpressions;

namespace Transformers.ML.Translation;

/// <summary>
/// Masks and restores the spans a translation copies as written (<see cref="TranslationOptions.CopyVerbatimSpans"/>):
/// numbers with their inner separators ("1987", "10:45", "3,50", "555-1234", "15/03/2024"; not digits inside a word,
/// "mp3"), web addresses ("https://...", "www...."), e-mail addresses, and runs of symbols and emoji ("☕", "°", "😀").
/// Spans that touch are one span. A sentence's spans are replaced by their class's placeholder before it is encoded
/// (<see cref="Placeholder"/> for one that holds a letter or digit, <see cref="SymbolPlaceholder"/> for symbols and
/// emoji alone), and the placeholders of its translation are replaced by its spans of their class in order.
/// </summary>
internal static partial class VerbatimSpans
{
    /// <summary>
    /// The placeholder of numbers and addresses: CIRCLED DIGIT ZERO, a number to the BPE's pre-tokenizer (so " ⓪" is one
    /// word, as " 25" is) and a character that text hardly holds; one typed in a source is a span itself (of symbols),
    /// so it comes back as typed.
    /// </summary>
    public const char Placeholder = '\u24EA';

    /// <summary>
    /// The placeholder of symbols and emoji: NEGATIVE CIRCLED DIGIT ZERO, a number to the pre-tokenizer too. A class of
    /// its own, because its training pairs put it at their end (<see cref="AppendPlaceholder"/>): with one placeholder
    /// for both, a model learned to put numbers last ("El año 2024 fue bueno." -> "The year was good 2024.").
    /// </summary>
    public const char SymbolPlaceholder = '\u24FF';

    /// <summary>The placeholders of the classes, in order: numbers and addresses, symbols and emoji.</summary>
    public static readonly IReadOnlyList<char> Placeholders = new[] { Placeholder, SymbolPlaceholder };

    /// <summary>Whether <paramref name="text"/> holds a placeholder of either class.</summary>
    public static bool HasPlaceholder(string text) => text.AsSpan().IndexOfAny(Placeholder, SymbolPlaceholder) >= 0;

    /// <summary>The placeholder of a span's class.</summary>
    private static char ClassOf(ReadOnlySpan<char> span)
    {
        foreach (char c in span)
        {
            if (char.IsLetterOrDigit(c))
            {
                return Placeholder;
            }
        }
        return SymbolPlaceholder;
    }

    // Alternatives in order: a web address (without the punctuation that ends it), an e-mail address, a number not
    // inside a word (atomic, so "10:45h" is left whole to the model rather than cut to "10"), symbols and emoji (UTF-16
    // surrogates: the characters outside the basic plane), the placeholders themselves.
    [GeneratedRegex(@"(?:https?://|www\.)[^\s]*[^\s.,;:!?¡¿'""()\[\]{}<>«»“”‘’]"
        + @"|[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+"
        + @"|(?<![\p{L}\p{N}])(?>\p{Nd}+(?:[.,:/-]\p{Nd}+)*)(?![\p{L}\p{N}])"
        + @"|(?:\p{So}|\p{Cs}|\p{Co}|\u200D|\uFE0F|\u20E3)+"
        + @"|[\u24EA\u24FF]", RegexOptions.CultureInvariant)]
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

    /// <summary>The sentence as the model reads it: each span replaced by its class's placeholder; <paramref name="spans"/>: the spans in order.</summary>
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
        return string.Concat(text.AsSpan(0, end).TrimEnd(), " ", SymbolPlaceholder.ToString(), text.AsSpan(end));
    }

    private const string FinalPunctuation = ".!?…\"'»”’)";

    /// <summary>Token texts with their placeholders replaced by <paramref name="spans"/> of their class in order (the labels of an attention picture).</summary>
    public static string[] Label(IReadOnlyList<string> tokens, IReadOnlyList<string> spans)
    {
        var queues = new SpanQueues(spans);
        return tokens.Select(token => !HasPlaceholder(token) ? token
            : string.Concat(token.Select(c => c is Placeholder or SymbolPlaceholder && queues.Next(c) is string span ? span : c.ToString()))).ToArray();
    }

    /// <summary>
    /// The translation with its placeholders replaced by <paramref name="spans"/> of their class in order; a placeholder
    /// past the last span of its class is dropped with the space before it.
    /// </summary>
    public static string Restore(string translation, IReadOnlyList<string> spans)
    {
        if (!HasPlaceholder(translation))
        {
            return translation;
        }
        var queues = new SpanQueues(spans);
        var text = new StringBuilder(translation.Length + spans.Sum(s => s.Length));
        foreach (char c in translation)
        {
            if (c is not (Placeholder or SymbolPlaceholder))
            {
                text.Append(c);
            }
            else if (queues.Next(c) is string span)
            {
                text.Append(span);
            }
            else if (text.Length > 0 && text[^1] == ' ')
            {
                text.Length--;
            }
        }
        return text.ToString().Trim();
    }

    /// <summary>A sentence's spans of each class, taken in order.</summary>
    private sealed class SpanQueues(IReadOnlyList<string> spans)
    {
        private readonly Queue<string> _numbers = new(spans.Where(s => ClassOf(s) == Placeholder));
        private readonly Queue<string> _symbols = new(spans.Where(s => ClassOf(s) == SymbolPlaceholder));

        /// <summary>The next span of <paramref name="placeholder"/>'s class; null when there is none left.</summary>
        public string? Next(char placeholder) => (placeholder == Placeholder ? _numbers : _symbols).TryDequeue(out string? span) ? span : null;
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
            masked.Append(text, at, index - at).Append(ClassOf(text.AsSpan(index, length)));
            at = index + length;
        }
        return masked.Append(text, at, text.Length - at).ToString();
    }
}

// A text to translate, cut into the sentences a sentence-level model was trained on. The translation models here learn
// from sentence pairs (Tatoeba's spa-eng: 99 % single sentences), so a paragraph given whole is a sequence unlike any they
// saw: on 150 paragraphs of 2-4 held-out sentences the example's model dropped half the text (BLEU 8.1, output 0.48 of
// the reference length) and scored 39.0 sentence by sentence (BENCHMARKS.md, "translation"). Translation services and
// Moses-style pipelines split the same way (Koehn et al. 2007, split-sentences.perl): after ". ! ? ...", before a
// capital, not after an abbreviation. A paragraph that begins in lower case is typed without capitals at sentence starts
// (a chat, a search box), so there a sentence may begin with any letter; without that, "hola. ¿cómo estás? me llamo
// juan." stayed one sequence.
using System.Text;
using System.Text.RegularExpressions;

namespace Transformers.ML.Translation;

/// <summary>One sentence of a text and the white space that followed it there ("" after the last).</summary>
internal readonly record struct TextSentence(string Text, string Separator);

internal static partial class SentenceSplitter
{
    // Words that end in "." without ending a sentence: titles and common Spanish, English and Latin abbreviations
    // that come before what they qualify ("Sr. García", "EE. UU."), compared without case; a single letter (an
    // initial, "J. K. Rowling") never ends one either. Abbreviations that close a name or a list end sentences as
    // often as not, and are not here: "etc.", "UU." ("Vive en EE. UU. Es médico."), "Inc.", "Ltd.", "Corp."; for
    // them what follows decides (NameOrListEnds: "en EE. UU. desde 2010" stays one sentence). Nor is "No." ("No. Gracias.").
    private static readonly HashSet<string> Abbreviations = new(StringComparer.OrdinalIgnoreCase)
    {
        "sr", "sra", "srta", "sres", "srs", "dr", "dra", "drs", "dres", "mr", "mrs", "ms", "mx", "prof", "profa", "st",
        "sto", "sta", "jr", "ud", "uds", "vd", "vds", "lic", "ing", "arq", "gral", "av", "avda", "pág", "págs", "núm",
        "tel", "ee", "vs", "cf", "ej", "approx", "dept", "fig", "co", "mt",
    };

    // Words that end a sentence before a capital but not before a word in lower case, also in a paragraph typed without
    // capitals: they close a name or a list that the sentence may go on after ("vive en ee. uu. desde 2010", "pan,
    // leche, etc. y nada más").
    private static readonly HashSet<string> NameOrListEnds = new(StringComparer.OrdinalIgnoreCase) { "etc", "uu", "inc", "ltd", "corp" };

    // A candidate boundary: white space after one or more of . ! ? ... (and any closing quotes or brackets), before a
    // sentence's first letter or digit (after any opening ¿ ¡ quotes or brackets). Group "end" is the punctuation, group
    // "first" the letter or digit.
    [GeneratedRegex(@"(?<end>[.!?…]+)[""'»”’)\]]*(?<space>\s+)(?=[¿¡""'«“‘(\[]*(?<first>[\p{L}\p{Nd}]))", RegexOptions.CultureInvariant)]
    private static partial Regex Boundary();

    // A paragraph's first letter.
    [GeneratedRegex(@"\p{L}", RegexOptions.CultureInvariant)]
    private static partial Regex FirstLetter();

    // A paragraph break (one or more lines with nothing but white space on them) always ends a sentence; it takes the
    // white space around it, so no paragraph between two breaks is white space alone.
    [GeneratedRegex(@"[^\S\n]*\n(?:[^\S\n]*\n)+[^\S\n]*", RegexOptions.CultureInvariant)]
    private static partial Regex ParagraphBreak();

    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex WhiteSpace();

    /// <summary>
    /// The sentences of <paramref name="text"/>, each with its white space collapsed to single spaces (a sentence wrapped
    /// over lines is one line), and the white space that followed it, kept so that the translations can be joined the
    /// way the sentences were (paragraphs stay paragraphs, a sentence per line stays so). No sentence is empty; a text
    /// of white space has none.
    /// </summary>
    public static List<TextSentence> Split(string text)
    {
        var sentences = new List<TextSentence>();
        var paragraphs = new List<(string Text, string Separator)>();
        int start = 0;
        foreach (Match paragraphBreak in ParagraphBreak().Matches(text))
        {
            paragraphs.Add((text[start..paragraphBreak.Index], paragraphBreak.Value));
            start = paragraphBreak.Index + paragraphBreak.Length;
        }
        paragraphs.Add((text[start..], ""));
        foreach ((string paragraph, string paragraphSeparator) in paragraphs)
        {
            int from = 0;
            bool typedInLowerCase = FirstLetter().Match(paragraph) is { Success: true } first && char.IsLower(paragraph, first.Index);
            foreach (Match boundary in Boundary().Matches(paragraph))
            {
                if (!EndsSentence(paragraph, boundary.Groups["end"], boundary.Groups["first"].Index, typedInLowerCase))
                {
                    continue;
                }
                Group space = boundary.Groups["space"];
                Add(sentences, paragraph[from..space.Index], space.Value);
                from = space.Index + space.Length;
            }
            Add(sentences, paragraph[from..], paragraphSeparator);
        }
        if (sentences.Count > 0)
        {
            sentences[^1] = sentences[^1] with { Separator = "" };
        }
        return sentences;
    }

    /// <summary>
    /// Joins translations of the first of <see cref="Split(string)"/>'s sentences (as many as there are translations)
    /// with the white space that followed each sentence. An empty translation is left out; of the separators around it,
    /// the one with the most line breaks stays (a paragraph break after it is kept).
    /// </summary>
    public static string Join(IReadOnlyList<TextSentence> sentences, IReadOnlyList<string> translations)
    {
        var text = new StringBuilder();
        string? separator = null;
        for (int i = 0; i < translations.Count; i++)
        {
            if (translations[i].Length > 0)
            {
                text.Append(text.Length > 0 ? separator : "").Append(translations[i]);
                separator = sentences[i].Separator;
            }
            else if (separator is not null && LineBreaks(sentences[i].Separator) > LineBreaks(separator))
            {
                separator = sentences[i].Separator;
            }
        }
        return text.ToString();
    }

    private static int LineBreaks(string separator) => separator.Count(c => c == '\n');

    /// <summary>Adds a sentence with its white space collapsed; nothing for the empty text before a leading or after a trailing break.</summary>
    private static void Add(List<TextSentence> sentences, string text, string separator)
    {
        string sentence = WhiteSpace().Replace(text, " ").Trim();
        if (sentence.Length > 0)
        {
            sentences.Add(new TextSentence(sentence, separator));
        }
    }

    /// <summary>
    /// Whether the punctuation <paramref name="end"/>, followed by white space and the letter or digit at
    /// <paramref name="first"/>, ends a sentence. Before a capital or a digit it does, unless a single "." ends a title,
    /// an abbreviation or an initial. Before a letter in lower case it does only in a paragraph typed in lower case (the
    /// writer gives no capitals to go by), and then not after "..." (a pause: "bueno... tal vez mañana"), not after an
    /// abbreviation or a single letter ("j. k. rowling"), and not after a word in <see cref="NameOrListEnds"/>.
    /// </summary>
    private static bool EndsSentence(string text, Group end, int first, bool typedInLowerCase)
    {
        bool lowerCaseFollows = char.IsLower(text, first);
        if (lowerCaseFollows && (!typedInLowerCase || end.Value.Contains('…') || end.Value.Contains("..", StringComparison.Ordinal)))
        {
            return false;
        }
        if (end.Value != ".")
        {
            return true;
        }
        int wordEnd = end.Index;
        int wordStart = wordEnd;
        while (wordStart > 0 && char.IsLetter(text[wordStart - 1]))
        {
            wordStart--;
        }
        int length = wordEnd - wordStart;
        string word = text[wordStart..wordEnd];
        bool initial = length == 1 && (char.IsUpper(word[0]) || typedInLowerCase);
        return !initial && !(length > 1 && Abbreviations.Contains(word)) && !(lowerCaseFollows && NameOrListEnds.Contains(word));
    }
}

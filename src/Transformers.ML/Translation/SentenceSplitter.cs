// A text to translate, cut into the sentences a sentence-level model was trained on. The translation models here learn
// from sentence pairs (Tatoeba's spa-eng: 99 % single sentences), so a paragraph given whole is a sequence unlike any they
// saw: on 150 paragraphs of 2-4 held-out sentences the example's model dropped half the text (BLEU 8.1, output 0.48 of
// the reference length) and scored 39.0 sentence by sentence (BENCHMARKS.md, "translation"). Translation services and
// Moses-style pipelines split the same way (Koehn et al. 2007, split-sentences.perl): after ". ! ? ...", before a
// capital, not after an abbreviation.
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
    // them, as for any word, what follows decides (a boundary needs a capital or a digit after it, so "en EE. UU.
    // desde 2010" stays one sentence). Nor is "No." ("No. Gracias.").
    private static readonly HashSet<string> Abbreviations = new(StringComparer.OrdinalIgnoreCase)
    {
        "sr", "sra", "srta", "sres", "srs", "dr", "dra", "drs", "dres", "mr", "mrs", "ms", "mx", "prof", "profa", "st",
        "sto", "sta", "jr", "ud", "uds", "vd", "vds", "lic", "ing", "arq", "gral", "av", "avda", "pág", "págs", "núm",
        "tel", "ee", "vs", "cf", "ej", "approx", "dept", "fig", "co", "mt",
    };

    // A candidate boundary: white space after one or more of . ! ? ... (and any closing quotes or brackets), before a
    // sentence's first letter or digit (after any opening ¿ ¡ quotes or brackets). Group "end" is the punctuation.
    [GeneratedRegex(@"(?<end>[.!?…]+)[""'»”’)\]]*(?<space>\s+)(?=[¿¡""'«“‘(\[]*[\p{Lu}\p{Nd}])", RegexOptions.CultureInvariant)]
    private static partial Regex Boundary();

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
            foreach (Match boundary in Boundary().Matches(paragraph))
            {
                if (IsAbbreviation(paragraph, boundary.Groups["end"]))
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

    /// <summary>Whether a single "." ends an abbreviation or an initial rather than the sentence.</summary>
    private static bool IsAbbreviation(string text, Group end)
    {
        if (end.Value != ".")
        {
            return false;
        }
        int wordEnd = end.Index;
        int wordStart = wordEnd;
        while (wordStart > 0 && char.IsLetter(text[wordStart - 1]))
        {
            wordStart--;
        }
        int length = wordEnd - wordStart;
        return length == 1 && char.IsUpper(text[wordStart]) || length > 1 && Abbreviations.Contains(text[wordStart..wordEnd]);
    }
}

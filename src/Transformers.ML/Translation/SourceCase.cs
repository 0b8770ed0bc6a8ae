// A sentence typed as people type, put in the case of the sentences the model learned from. Corpora such as Tatoeba
// begin every source with a capital and write none in capitals alone, so a model trained for minutes on them has
// seen neither "hola, ¿cómo estás?" nor "HOLA, ¿CÓMO ESTÁS?" (a byte-level BPE spells both with other tokens), and
// translates them far worse: on 600 held-out pairs the example's model scored BLEU 40.0 on the sources as written, 29.5
// with their first letter in lower case, 27.1 all in lower case and 0.6 all in capitals (docs/translation.md). So a
// sentence whose first word is in lower case gets a capital, and one in capitals alone is translated in sentence case and
// its translation given in capitals, as typed.
namespace Transformers.ML.Translation;

internal static class SourceCase
{
    /// <summary>
    /// Least share of the training sources that begin with a capital (of those that begin with a letter) for
    /// <see cref="TranslationOptions.NormalizeSourceCase"/>'s default to turn the normalisation on: Tatoeba's Spanish
    /// begins so in all of its 115,123 pairs; a corpus written in lower case does not, and its model is given sentences as typed.
    /// </summary>
    public const double CapitalisedShare = 0.9;

    /// <summary>
    /// The sentence in the case the model learned: in sentence case (lower case, the first letter a capital) when it has
    /// no lower-case letter and at least two capitals (<paramref name="allCapitals"/>: give its translation in capitals);
    /// else with a capital at its first word when that word is in lower case ("hola" -> "Hola"; "iPhone", "eBay" and a
    /// sentence that begins with a digit stay as written); else as it is.
    /// </summary>
    public static string Normalize(string sentence, out bool allCapitals)
    {
        int upper = 0, lower = 0;
        foreach (char c in sentence)
        {
            upper += char.IsUpper(c) ? 1 : 0;
            lower += char.IsLower(c) ? 1 : 0;
        }
        allCapitals = lower == 0 && upper >= 2;
        return CapitaliseFirstWord(allCapitals ? sentence.ToLowerInvariant() : sentence);
    }

    /// <summary>Whether enough of <paramref name="sources"/> begin with a capital (<see cref="CapitalisedShare"/>); <paramref name="share"/>: the share.</summary>
    public static bool IsCapitalised(IEnumerable<string> sources, out double share)
    {
        int capitalised = 0, counted = 0;
        foreach (string source in sources)
        {
            int first = FirstWord(source);
            if (first >= 0 && (char.IsUpper(source[first]) || char.IsLower(source[first])))
            {
                counted++;
                capitalised += char.IsUpper(source[first]) ? 1 : 0;
            }
        }
        share = counted == 0 ? 0 : capitalised / (double)counted;
        return counted > 0 && share >= CapitalisedShare;
    }

    private static string CapitaliseFirstWord(string sentence)
    {
        int start = FirstWord(sentence);
        if (start < 0 || !char.IsLower(sentence[start]))
        {
            return sentence;
        }
        for (int i = start + 1; i < sentence.Length && char.IsLetter(sentence[i]); i++)
        {
            if (char.IsUpper(sentence[i]))
            {
                return sentence; // "iPhone": a name written so
            }
        }
        return string.Concat(sentence.AsSpan(0, start), char.ToUpperInvariant(sentence[start]).ToString(), sentence.AsSpan(start + 1));
    }

    /// <summary>Index of the sentence's first letter or digit (after any ¿ ¡ quotes, brackets or spaces), -1 if none.</summary>
    private static int FirstWord(string sentence)
    {
        for (int i = 0; i < sentence.Length; i++)
        {
            if (char.IsLetterOrDigit(sentence[i]))
            {
                return i;
            }
        }
        return -1;
    }
}

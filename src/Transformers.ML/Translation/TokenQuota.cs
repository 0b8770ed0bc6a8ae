// How many tokens of each class a translation must hold: the placeholders of a sentence's verbatim spans
// (VerbatimSpans), as many of each class in the translation as in the source, so that the search neither drops a span
// (a number the model left out was lost: "El año 2024 fue bueno." -> "The year was good.") nor adds one. A count
// constraint in the manner of lexically constrained decoding (Hokamp & Liu 2017; Post & Vilar 2018): while a class is
// short the end token is not allowed, and once it is full its tokens are not. Applied by Seq2SeqSearch, so the
// TorchSharp model and the ONNX Runtime translator decode under the same rule.
using Transformers.ML.Core.Tokenization;

namespace Transformers.ML.Translation;

internal sealed class TokenQuota
{
    private readonly IReadOnlyList<IReadOnlyDictionary<int, int>> _classes;
    private readonly int[][] _required;

    /// <param name="classes">Per class, the tokens that hold it and how many times each does.</param>
    /// <param name="required">Per sentence (the search's B rows), how many of each class its output must hold.</param>
    public TokenQuota(IReadOnlyList<IReadOnlyDictionary<int, int>> classes, int[][] required)
    {
        if (required.Any(r => r.Length != classes.Count))
        {
            throw new ArgumentException($"Each sentence needs a count for each of the {classes.Count} classes.", nameof(required));
        }
        _classes = classes;
        _required = required;
    }

    /// <summary>
    /// Per character of <paramref name="characters"/>, the tokens of <paramref name="tokenizer"/> whose text holds it, with
    /// how many times. A character the vocabulary only spells in pieces (byte tokens) has none: it cannot be counted, and
    /// <see cref="Restrict"/> leaves it free.
    /// </summary>
    public static IReadOnlyList<IReadOnlyDictionary<int, int>> TokensHolding(TextTokenizer tokenizer, IReadOnlyList<char> characters)
    {
        var classes = characters.Select(_ => new Dictionary<int, int>()).ToArray();
        for (int token = 0; token < tokenizer.VocabularySize; token++)
        {
            if (token == tokenizer.EndOfTextId)
            {
                continue;
            }
            string text = tokenizer.Decode(new[] { token });
            for (int c = 0; c < characters.Count; c++)
            {
                int count = text.Count(ch => ch == characters[c]);
                if (count > 0)
                {
                    classes[c][token] = count;
                }
            }
        }
        return classes;
    }

    /// <summary>How many of each of <paramref name="classes"/> (per class, token -> count) <paramref name="tokens"/> hold.</summary>
    public static int[] Count(IReadOnlyList<IReadOnlyDictionary<int, int>> classes, IReadOnlyList<int> tokens)
    {
        var counts = new int[classes.Count];
        for (int c = 0; c < classes.Count; c++)
        {
            foreach (int token in tokens)
            {
                counts[c] += classes[c].TryGetValue(token, out int n) ? n : 0;
            }
        }
        return counts;
    }

    /// <summary>
    /// Sets to -infinity, in the next-token log-probabilities <paramref name="logProbs"/> of a hypothesis of sentence
    /// <paramref name="sentence"/> that has written <paramref name="tokens"/>, the tokens that would put a class over its
    /// count, and the end token while a class is short of it. A class no token holds is not constrained.
    /// </summary>
    public void Restrict(int sentence, IReadOnlyList<int> tokens, float[] logProbs, int endOfSentence)
    {
        int[] held = Count(_classes, tokens);
        bool anyShort = false;
        for (int c = 0; c < _classes.Count; c++)
        {
            if (_classes[c].Count == 0)
            {
                continue;
            }
            int left = _required[sentence][c] - held[c];
            anyShort |= left > 0;
            foreach ((int token, int n) in _classes[c])
            {
                if (n > left)
                {
                    logProbs[token] = float.NegativeInfinity;
                }
            }
        }
        if (anyShort)
        {
            logProbs[endOfSentence] = float.NegativeInfinity;
        }
    }
}

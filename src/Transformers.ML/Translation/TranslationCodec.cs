// Sentences to token ids and back for the encoder-decoder: one byte-level BPE vocabulary shared by source
// and target (the paper's "shared source-target vocabulary"), its end-of-text token marking both the start
// of decoding and the end of a sentence, and one extra id for padding.
using Transformers.ML.Core.Tokenization;

namespace Transformers.ML.Translation;

internal sealed class TranslationCodec
{
    public TranslationCodec(TextTokenizer tokenizer, int maxSentenceTokens)
    {
        Tokenizer = tokenizer;
        MaxSentenceTokens = maxSentenceTokens;
    }

    public TextTokenizer Tokenizer { get; }

    public int MaxSentenceTokens { get; }

    /// <summary>End of a sentence, and the first input of the decoder.</summary>
    public int EndOfSentence => Tokenizer.EndOfTextId;

    /// <summary>Padding: one id past the tokenizer's vocabulary, never a target.</summary>
    public int Padding => Tokenizer.VocabularySize;

    /// <summary>The model's vocabulary: the tokenizer's and padding.</summary>
    public int VocabularySize => Tokenizer.VocabularySize + 1;

    /// <summary>The sentence's tokens and the end token, truncated to <see cref="MaxSentenceTokens"/>; whether it was truncated.</summary>
    public (int[] Ids, bool Truncated) Encode(string sentence)
    {
        IReadOnlyList<int> ids = Tokenizer.Encode(sentence.Trim());
        bool truncated = ids.Count + 1 > MaxSentenceTokens;
        int keep = Math.Min(ids.Count, MaxSentenceTokens - 1);
        var result = new int[keep + 1];
        for (int i = 0; i < keep; i++)
        {
            result[i] = ids[i];
        }
        result[keep] = EndOfSentence;
        return (result, truncated);
    }

    /// <summary>Text of generated ids (stopping at the end token, ignoring padding).</summary>
    public string Decode(IEnumerable<int> ids) => Tokenizer.Decode(ids.TakeWhile(id => id != EndOfSentence).Where(id => id != Padding)).Trim();
}

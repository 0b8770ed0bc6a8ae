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

    /// <summary>
    /// Translates sentences with <paramref name="decode"/> (encoded sources to each one's hypotheses, best first), in batches
    /// of <paramref name="batchSize"/> sorted by length, returned in order: each sentence's translations, best first, at most
    /// <paramref name="count"/> of them and no text twice (two token sequences can spell one text); an empty or
    /// whitespace-only sentence, or one the search found nothing for, gets one empty translation. <paramref name="truncated"/>:
    /// how many sources were cut to <see cref="MaxSentenceTokens"/>. The search itself is shared by the TorchSharp model and
    /// the ONNX Runtime translator (<see cref="Seq2SeqSearch"/>); so is this.
    /// </summary>
    public TranslationCandidate[][] Translate(IReadOnlyList<string> sentences, int count, int batchSize,
        Func<IReadOnlyList<int[]>, List<Seq2SeqHypothesis>[]> decode, out int truncated)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        var results = new TranslationCandidate[sentences.Count][];
        var work = new List<(int Row, int[] Ids)>();
        truncated = 0;
        for (int i = 0; i < sentences.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(sentences[i]))
            {
                results[i] = new[] { new TranslationCandidate("", 0) };
                continue;
            }
            (int[] ids, bool cut) = Encode(sentences[i]);
            truncated += cut ? 1 : 0;
            work.Add((i, ids));
        }
        foreach (var chunk in work.OrderBy(w => w.Ids.Length).Chunk(batchSize))
        {
            List<Seq2SeqHypothesis>[] outputs = decode(chunk.Select(c => c.Ids).ToList());
            for (int j = 0; j < chunk.Length; j++)
            {
                TranslationCandidate[] texts = outputs[j].Select(h => new TranslationCandidate(Decode(h.Tokens), h.Score))
                    .DistinctBy(c => c.Text, StringComparer.Ordinal).Take(count).ToArray();
                results[chunk[j].Row] = texts.Length > 0 ? texts : new[] { new TranslationCandidate("", double.NegativeInfinity) };
            }
        }
        return results;
    }

    /// <summary>Checks the arguments of a translation call, naming the one that is wrong.</summary>
    public static void CheckArguments(int beamSize, double lengthPenalty, int count = 1, int batchSize = 1)
    {
        if (beamSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(beamSize), beamSize, "The beam size must be at least 1 (1: greedy decoding).");
        }
        if (!(lengthPenalty >= 0) || double.IsInfinity(lengthPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(lengthPenalty), lengthPenalty, "The length penalty must be a finite number >= 0 (0: none; the paper's 0.6).");
        }
        if (count < 1 || count > beamSize)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"The number of translations per sentence must be between 1 and the beam size ({beamSize}): beam search keeps that many hypotheses.");
        }
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
        }
    }
}

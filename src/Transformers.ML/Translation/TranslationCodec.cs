// Sentences to token ids and back for the encoder-decoder: one byte-level BPE vocabulary shared by source
// and target (the paper's "shared source-target vocabulary"), its end-of-text token marking both the start
// of decoding and the end of a sentence, and one extra id for padding; and, for a model trained so, the spans copied as
// written (VerbatimSpans).
using Transformers.ML.Core.Tokenization;

namespace Transformers.ML.Translation;

internal sealed class TranslationCodec
{
    public TranslationCodec(TextTokenizer tokenizer, int maxSentenceTokens, bool copyVerbatimSpans)
    {
        Tokenizer = tokenizer;
        MaxSentenceTokens = maxSentenceTokens;
        CopyVerbatimSpans = copyVerbatimSpans;
        _placeholderTokens = new(() => TokenQuota.TokensHolding(tokenizer, VerbatimSpans.Placeholders));
    }

    /// <summary>
    /// Metadata key of <see cref="CopyVerbatimSpans"/> in model files and exports, "true" or "false" (absent from files
    /// written before the night of 2026-12-07: false, the model was trained without placeholders).
    /// </summary>
    public const string CopyVerbatimSpansKey = "copy_verbatim_spans";

    public TextTokenizer Tokenizer { get; }

    public int MaxSentenceTokens { get; }

    /// <summary>
    /// Whether the model was trained with <see cref="VerbatimSpans"/>' placeholders: then a source's numbers, addresses,
    /// symbols and emoji are masked before it is encoded and put back into its translation.
    /// </summary>
    public bool CopyVerbatimSpans { get; }

    /// <summary><see cref="CopyVerbatimSpans"/> as model files and exports record it.</summary>
    public KeyValuePair<string, string> CopyVerbatimSpansEntry => new(CopyVerbatimSpansKey, CopyVerbatimSpans ? "true" : "false");

    /// <summary>
    /// <see cref="CopyVerbatimSpans"/> in a model file's or an export's metadata (absent: false); an unreadable value
    /// fails with an <see cref="InvalidDataException"/> that names <paramref name="source"/>.
    /// </summary>
    public static bool ReadCopyVerbatimSpans(IReadOnlyDictionary<string, string> metadata, string source) =>
        TranslatorSettings.Flag(metadata, CopyVerbatimSpansKey, source, absent: false);

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
    /// Translates texts with <paramref name="decode"/> (encoded sources to each one's hypotheses, best first), in batches
    /// of <paramref name="batchSize"/> sorted by length, returned in order: each text's translations, best first, at most
    /// <paramref name="count"/> of them and no text twice (two token sequences can spell one text); an empty or
    /// whitespace-only text, or one the search found nothing for, gets one empty translation. With
    /// <paramref name="splitSentences"/> a text of several sentences (<see cref="SentenceSplitter"/>) is translated
    /// sentence by sentence and joined as it was spaced; its candidates are the <paramref name="count"/> best combinations
    /// of its sentences' candidates, scored by the sum of their scores. With <see cref="CopyVerbatimSpans"/> each sentence's
    /// numbers, addresses, symbols and emoji are masked first and put back into its translations (<see cref="VerbatimSpans"/>),
    /// and a sentence without a letter ("123", "😀") is its own translation.
    /// With <paramref name="normalizeCase"/> each sentence
    /// is put in the training sources' case first (<see cref="SourceCase"/>), and the translations of one typed in capitals
    /// are given in capitals. <paramref name="truncated"/>: how many sources
    /// (sentences, when split) were cut to <see cref="MaxSentenceTokens"/>. The search itself is shared by the TorchSharp
    /// model and the ONNX Runtime translator (<see cref="Seq2SeqSearch"/>); so is this.
    /// </summary>
    public TranslationCandidate[][] Translate(IReadOnlyList<string> texts, int count, int batchSize, bool splitSentences, bool normalizeCase,
        Func<IReadOnlyList<int[]>, TokenQuota?, List<Seq2SeqHypothesis>[]> decode, out int truncated)
    {
        ArgumentNullException.ThrowIfNull(texts);
        // Every sentence of every text is one source: (text, its sentence, the ids, whether it was typed in capitals, its
        // verbatim spans).
        var sentences = new List<TextSentence>[texts.Count];
        var translated = new TranslationCandidate[texts.Count][][]; // [text][sentence]: its candidates
        var work = new List<(int Row, int Sentence, int[] Ids, bool Capitals, string[] Spans)>();
        truncated = 0;
        for (int i = 0; i < texts.Count; i++)
        {
            string text = texts[i] ?? "";
            sentences[i] = splitSentences
                ? SentenceSplitter.Split(text)
                : string.IsNullOrWhiteSpace(text) ? new List<TextSentence>() : new List<TextSentence> { new(text, "") };
            translated[i] = new TranslationCandidate[sentences[i].Count][];
            for (int j = 0; j < sentences[i].Count; j++)
            {
                if (CopyVerbatimSpans && !sentences[i][j].Text.Any(char.IsLetter))
                {
                    // Nothing to translate ("123", "10:45", "😀", "?!"): carried over as written, its one candidate.
                    translated[i][j] = new[] { new TranslationCandidate(sentences[i][j].Text.Trim(), 0) };
                    continue;
                }
                bool capitals = false;
                string[] spans = Array.Empty<string>();
                string sentence = CopyVerbatimSpans ? VerbatimSpans.Mask(sentences[i][j].Text, out spans) : sentences[i][j].Text;
                sentence = normalizeCase ? SourceCase.Normalize(sentence, out capitals) : sentence;
                (int[] ids, bool cut) = Encode(sentence);
                truncated += cut ? 1 : 0;
                work.Add((i, j, ids, capitals, spans));
            }
        }
        foreach (var chunk in work.OrderBy(w => w.Ids.Length).Chunk(batchSize))
        {
            List<int[]> sources = chunk.Select(c => c.Ids).ToList();
            List<Seq2SeqHypothesis>[] outputs = decode(sources, Quota(sources));
            for (int j = 0; j < chunk.Length; j++)
            {
                (bool capitals, string[] spans) = (chunk[j].Capitals, chunk[j].Spans);
                TranslationCandidate[] candidates = outputs[j]
                    .Select(h => new TranslationCandidate(Output(Decode(h.Tokens), capitals, spans), h.Score))
                    .DistinctBy(c => c.Text, StringComparer.Ordinal).Take(count).ToArray();
                translated[chunk[j].Row][chunk[j].Sentence] = candidates.Length > 0 ? candidates : new[] { new TranslationCandidate("", double.NegativeInfinity) };
            }
        }
        var results = new TranslationCandidate[texts.Count][];
        for (int i = 0; i < texts.Count; i++)
        {
            results[i] = sentences[i].Count == 0 ? new[] { new TranslationCandidate("", 0) } : Combine(sentences[i], translated[i], count);
        }
        return results;
    }

    /// <summary>
    /// With <see cref="CopyVerbatimSpans"/>, the rule that each translation holds as many placeholders of each class as
    /// its source's tokens do (<see cref="TokenQuota"/>: no span dropped, none added); otherwise none.
    /// </summary>
    internal TokenQuota? Quota(IReadOnlyList<int[]> sources)
    {
        if (!CopyVerbatimSpans)
        {
            return null;
        }
        IReadOnlyList<IReadOnlyDictionary<int, int>> classes = _placeholderTokens.Value;
        return new TokenQuota(classes, sources.Select(s => TokenQuota.Count(classes, s)).ToArray());
    }

    /// <summary>The tokens that hold each placeholder (<see cref="VerbatimSpans.Placeholders"/>), found once.</summary>
    private readonly Lazy<IReadOnlyList<IReadOnlyDictionary<int, int>>> _placeholderTokens;

    /// <summary>A sentence's translation as given: in capitals when the source was typed so, its spans put back.</summary>
    private string Output(string decoded, bool capitals, string[] spans)
    {
        string text = capitals ? decoded.ToUpperInvariant() : decoded;
        return CopyVerbatimSpans ? VerbatimSpans.Restore(text, spans) : text;
    }

    /// <summary>
    /// The <paramref name="count"/> best distinct joins of one candidate per sentence, by the sum of their scores (a k-best
    /// merge, sentence after sentence: the best join is every sentence's best).
    /// </summary>
    private static TranslationCandidate[] Combine(List<TextSentence> sentences, TranslationCandidate[][] candidates, int count)
    {
        if (sentences.Count == 1)
        {
            return candidates[0];
        }
        // Partial joins: each sentence's chosen text so far, their join as spaced, the summed score.
        var joins = new List<(string[] Texts, string Text, double Score)> { (Array.Empty<string>(), "", 0) };
        foreach (TranslationCandidate[] next in candidates)
        {
            joins = joins.SelectMany(j => next.Select(c =>
                {
                    string[] texts = j.Texts.Append(c.Text).ToArray();
                    return (Texts: texts, Text: SentenceSplitter.Join(sentences, texts), Score: j.Score + c.Score);
                }))
                .OrderByDescending(j => j.Score)
                .DistinctBy(j => j.Text, StringComparer.Ordinal)
                .Take(count)
                .ToList();
        }
        return joins.Select(j => new TranslationCandidate(j.Text, j.Score)).ToArray();
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

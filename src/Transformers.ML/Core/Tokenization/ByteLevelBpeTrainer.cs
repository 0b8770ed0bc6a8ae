// Byte-level BPE (Radford et al. 2019, GPT-2; Sennrich et al. 2016): text is split by GPT-2's pattern
// into words, each word becomes its UTF-8 bytes, and the most frequent adjacent pair of symbols is
// merged into a new symbol until the vocabulary reaches the requested size. Microsoft.ML.Tokenizers can
// encode and decode with such a vocabulary and merge list (BpeTokenizer, ByteLevel = true) but cannot
// learn one: this is the learning part.
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Transformers.ML.Core.Tokenization;

internal static partial class ByteLevelBpe
{
    /// <summary>GPT-2's pre-tokenization pattern: contractions, letters, digits, other symbols, whitespace runs.</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    public static partial Regex Gpt2Pattern();

    /// <summary>Smallest vocabulary: the 256 byte symbols and the end-of-text token.</summary>
    public const int MinimumVocabularySize = 257;

    public const string EndOfText = "<|endoftext|>";

    private static readonly string[] ByteToSymbol = BuildByteToSymbol();

    /// <summary>
    /// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand for themselves,
    /// the others (controls, space) are shifted to 256 and up (space becomes 'Ġ').
    /// </summary>
    private static string[] BuildByteToSymbol()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        var map = new string[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            map[b] = ((char)(printable.Contains(b) ? b : next++)).ToString();
        }
        return map;
    }

    public static string Symbol(byte b) => ByteToSymbol[b];

    /// <summary>
    /// Learns merges from <paramref name="text"/> until the vocabulary (256 bytes + merges + end-of-text) has
    /// <paramref name="vocabularySize"/> tokens, or no pair occurs twice. Deterministic: ties go to the
    /// ordinally smallest pair.
    /// </summary>
    public static (Dictionary<string, int> Vocabulary, List<string> Merges) Train(string text, int vocabularySize) =>
        Train(new[] { text }, vocabularySize);

    /// <summary>
    /// Learns merges from <paramref name="documents"/> read once, in order, as if joined by "\n" (the same vocabulary as
    /// <c>Train(string.Join("\n", documents), ...)</c>): the words are counted in a streaming pass on
    /// <paramref name="threads"/> threads (<see cref="BpeWordCounter"/>; memory grows with the distinct words, not with the
    /// text), then merged on the word-count table.
    /// </summary>
    public static (Dictionary<string, int> Vocabulary, List<string> Merges) Train(IEnumerable<string> documents, int vocabularySize, int threads = 0)
    {
        if (vocabularySize < MinimumVocabularySize)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize,
                $"Option VocabularySize must be at least {MinimumVocabularySize} for byte-level BPE (256 byte tokens and the end-of-text token); found {vocabularySize}.");
        }
        return TrainFromCounts(BpeWordCounter.Count(documents, threads), vocabularySize);
    }

    /// <summary>The merge loop over a table of pre-tokenized words and their counts. Deterministic: ties go to the ordinally smallest pair.</summary>
    public static (Dictionary<string, int> Vocabulary, List<string> Merges) TrainFromCounts(Dictionary<string, int> wordCounts, int vocabularySize)
    {
        var symbols = new List<string>(ByteToSymbol);
        // In ordinal order of the words, so that the result does not depend on the order the counts were gathered in.
        var words = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Ids: Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b).ToList(), Count: kv.Value)).ToList();

        var pairCounts = new Dictionary<(int, int), long>();
        var wordsWithPair = new Dictionary<(int, int), HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            AddPairs(w, +1);
        }

        var merges = new List<string>();
        while (symbols.Count + 1 < vocabularySize)
        {
            (int, int) best = default;
            long bestCount = 1;
            string? bestKey = null;
            foreach (((int a, int b) pair, long count) in pairCounts)
            {
                if (count < bestCount)
                {
                    continue;
                }
                string key = symbols[pair.a] + " " + symbols[pair.b];
                if (count > bestCount || bestKey is null || string.CompareOrdinal(key, bestKey) < 0)
                {
                    (best, bestCount, bestKey) = (pair, count, key);
                }
            }
            if (bestKey is null || bestCount < 2)
            {
                break; // nothing left worth merging
            }

            int merged = symbols.Count;
            symbols.Add(symbols[best.Item1] + symbols[best.Item2]);
            merges.Add(bestKey);
            foreach (int w in wordsWithPair[best].ToList())
            {
                AddPairs(w, -1);
                List<int> ids = words[w].Ids;
                var next = new List<int>(ids.Count);
                for (int i = 0; i < ids.Count; i++)
                {
                    if (i + 1 < ids.Count && ids[i] == best.Item1 && ids[i + 1] == best.Item2)
                    {
                        next.Add(merged);
                        i++;
                    }
                    else
                    {
                        next.Add(ids[i]);
                    }
                }
                words[w] = (next, words[w].Count);
                AddPairs(w, +1);
            }
        }

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < symbols.Count; i++)
        {
            vocabulary[symbols[i]] = i;
        }
        return (vocabulary, merges);

        void AddPairs(int w, int sign)
        {
            List<int> ids = words[w].Ids;
            for (int i = 0; i + 1 < ids.Count; i++)
            {
                var pair = (ids[i], ids[i + 1]);
                long count = pairCounts.GetValueOrDefault(pair) + sign * (long)words[w].Count;
                if (count <= 0)
                {
                    pairCounts.Remove(pair);
                    if (wordsWithPair.TryGetValue(pair, out HashSet<int>? set))
                    {
                        set.Remove(w);
                    }
                }
                else
                {
                    pairCounts[pair] = count;
                    if (sign > 0)
                    {
                        if (!wordsWithPair.TryGetValue(pair, out HashSet<int>? set))
                        {
                            wordsWithPair[pair] = set = new HashSet<int>();
                        }
                        set.Add(w);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The vocabulary (GPT-2's printable symbols) and the merges, in order, of a byte-level BPE given as tiktoken's ranks
    /// (a token's bytes -> its id, which is its merge rank): the merge that made a token is the last step of BPE over its
    /// bytes with only the ranks below its own, which leaves two parts. So GPT-2's vocab.json and merges.txt are written
    /// from Microsoft.ML.Tokenizers' tiktoken tables.
    /// </summary>
    public static (Dictionary<string, int> Vocabulary, List<string> Merges) FromRanks(IReadOnlyList<(byte[] Bytes, int Rank)> ranks)
    {
        var vocabulary = new Dictionary<string, int>(ranks.Count, StringComparer.Ordinal);
        foreach ((byte[] bytes, int rank) in ranks)
        {
            vocabulary[string.Concat(bytes.Select(Symbol))] = rank;
        }
        var merges = new List<(int Rank, string Merge)>();
        foreach ((string token, int rank) in vocabulary)
        {
            if (token.Length == 1)
            {
                continue;
            }
            List<string> parts = token.Select(c => c.ToString()).ToList(); // one symbol per byte
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (vocabulary.TryGetValue(parts[i] + parts[i + 1], out int r) && r < rank && r < bestRank)
                    {
                        (best, bestRank) = (i, r);
                    }
                }
                if (best < 0)
                {
                    throw new InvalidDataException($"Token {rank} cannot be built from the tokens ranked below it: the ranks are not a byte-level BPE's.");
                }
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            if (parts.Count != 2 || !vocabulary.ContainsKey(parts[0]) || !vocabulary.ContainsKey(parts[1]))
            {
                throw new InvalidDataException($"Token {rank} is not the merge of two tokens: the ranks are not a byte-level BPE's.");
            }
            merges.Add((rank, parts[0] + " " + parts[1]));
        }
        return (vocabulary, merges.OrderBy(m => m.Rank).Select(m => m.Merge).ToList());
    }

    /// <summary>The library's byte-level BPE tokenizer over a learned vocabulary and merge list.</summary>
    public static BpeTokenizer Create(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<string> merges)
    {
        var options = new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(Gpt2Pattern(), null),
        };
        return BpeTokenizer.Create(options);
    }
}

using Transformers.ML.Core.Tokenization;

namespace Transformers.ML.Tests.Core;

[TestClass]
public sealed class TokenizationTests
{
    private const string Corpus = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" +
        "First Citizen:\nYou are all resolved rather to die than to famish?\n";

    private static readonly string[] Hard =
    {
        "",
        "héllo wörld, ça va? Ελληνικά; 日本語",
        "emoji 😀👍🏽 and a ZWJ family 👨‍👩‍👧",
        "Windows line\r\nendings\r\n and\ttabs  and   spaces ",
        "First Citizen:\nSpeak, speak.",
        "\u0000 control \u0007 and \uFFFD replacement",
    };

    [TestMethod]
    [DataRow(TokenizerKind.Character)]
    [DataRow(TokenizerKind.BytePairEncoding)]
    [DataRow(TokenizerKind.Gpt2)]
    public void DecodeOfEncodeIsTheTextForAnyUnicode(TokenizerKind kind)
    {
        TextTokenizer tokenizer = TextTokenizer.Train(kind, Corpus, 300);
        foreach (string text in Hard)
        {
            IReadOnlyList<int> ids = tokenizer.Encode(text);
            Assert.IsTrue(ids.All(id => id >= 0 && id < tokenizer.VocabularySize), $"{kind}: id out of range for '{text}'");
            Assert.AreEqual(text, tokenizer.Decode(ids), $"{kind}");
        }
        // The stored definition rebuilds the same tokenizer.
        TextTokenizer again = TextTokenizer.FromDefinition(TokenizerDefinition.FromJson(tokenizer.Definition.ToJson(), "test"));
        Assert.AreEqual(tokenizer.VocabularySize, again.VocabularySize);
        CollectionAssert.AreEqual(tokenizer.Encode(Hard[1]).ToList(), again.Encode(Hard[1]).ToList());
    }

    [TestMethod]
    public void CharacterTokenizerUsesOneTokenPerKnownCharacter()
    {
        TextTokenizer tokenizer = TextTokenizer.Train(TokenizerKind.Character, Corpus, 0);
        int characters = CharacterTokenizer.CharactersOf(Corpus).Count;
        Assert.AreEqual(256 + characters + 1, tokenizer.VocabularySize);
        Assert.AreEqual(tokenizer.VocabularySize - 1, tokenizer.EndOfTextId);
        Assert.AreEqual(12, tokenizer.Encode("Speak, speak").Count);
        Assert.IsTrue(tokenizer.Encode("Speak").All(id => id >= 256));
        // An unseen character falls back to its UTF-8 bytes: 'é' is two bytes.
        CollectionAssert.AreEqual(new[] { 0xC3, 0xA9 }, tokenizer.Encode("é").ToList());
    }

    [TestMethod]
    public void StreamingWordCountsEqualThePatternOverTheJoinedTextAndGiveTheSameVocabulary()
    {
        // Documents with every kind of boundary: white space at either end, empty ones, line breaks, other scripts.
        string text = TestData.ShakespeareHead;
        var documents = text.Split("\n\n").Concat(Hard).Concat(new[] { " leading", "trailing ", "", "\n", "a'", "ll be", "x\r\n" }).ToList();
        string joined = string.Join("\n", documents);
        var expected = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (System.Text.RegularExpressions.Match m in ByteLevelBpe.Gpt2Pattern().Matches(joined))
        {
            expected[m.Value] = expected.GetValueOrDefault(m.Value) + 1;
        }
        foreach ((int threads, int unit) in new[] { (1, 1 << 20), (2, 64), (3, 7) })
        {
            var units = new List<string>();
            BpeWordCounter.Split(documents, unit, units.Add);
            Assert.AreEqual(joined, string.Concat(units), "the units tile the joined text");
            if (unit < 100)
            {
                Assert.IsGreaterThan(100, units.Count, "small units cut the text often");
            }
            Dictionary<string, int> counted = BpeWordCounter.Count(documents, threads, unit);
            CollectionAssert.AreEquivalent(expected.ToList(), counted.ToList(), $"{threads} threads, units of {unit} characters");
        }
        // The same vocabulary and merges as from the joined string, and one long document cut into units gives the same.
        var fromJoined = ByteLevelBpe.Train(joined, 700);
        var streamed = ByteLevelBpe.Train(documents, 700, threads: 2);
        CollectionAssert.AreEqual(fromJoined.Merges, streamed.Merges);
        CollectionAssert.AreEquivalent(fromJoined.Vocabulary.ToList(), streamed.Vocabulary.ToList());
        CollectionAssert.AreEqual(fromJoined.Merges, ByteLevelBpe.TrainFromCounts(BpeWordCounter.Count(new[] { joined }, 2, 97), 700).Merges);
        // Characters: the joined text's, the separator included.
        CollectionAssert.AreEqual(CharacterTokenizer.CharactersOf(string.Join("\n", "ab", "c")), CharacterTokenizer.CharactersOf(new[] { "ab", "c" }));
        CollectionAssert.Contains(CharacterTokenizer.CharactersOf(new[] { "ab", "c" }), "\n");
    }

    [TestMethod]
    public void TheCharacterTokenizerGivesOneIdPerKnownCharacterAndItsUtf8BytesOtherwise()
    {
        TextTokenizer tokenizer = TextTokenizer.Train(TokenizerKind.Character, Corpus + "\uFFFD", 0);
        var inner = (CharacterTokenizer)tokenizer.Inner;
        var idOf = inner.Characters.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => CharacterTokenizer.ByteTokens + p.i, StringComparer.Ordinal);
        foreach (string text in Hard.Append("lone \uD800 high, lone \uDC00 low, 😀 pair \uFFFD").Append(TestData.ShakespeareHead[..3000]))
        {
            // Written here from the definition: rune by rune, a known character's id, else its UTF-8 bytes; a lone
            // surrogate (not a character) becomes the bytes of U+FFFD even though U+FFFD itself is in the vocabulary.
            var expected = new List<(int Id, string Value, Range Range)>();
            for (int position = 0; position < text.Length;)
            {
                bool lone = char.IsSurrogate(text[position]) && !(char.IsHighSurrogate(text[position]) && position + 1 < text.Length && char.IsLowSurrogate(text[position + 1]));
                int length = lone ? 1 : char.IsSurrogate(text[position]) ? 2 : 1;
                string character = text.Substring(position, length);
                var range = new Range(position, position + length);
                if (!lone && idOf.TryGetValue(character, out int id))
                {
                    expected.Add((id, character, range));
                }
                else
                {
                    expected.AddRange(System.Text.Encoding.UTF8.GetBytes(lone ? "\uFFFD" : character).Select(b => ((int)b, $"<0x{b:X2}>", range)));
                }
                position += length;
            }
            string shown = text.Length > 60 ? text[..60] : text;
            CollectionAssert.AreEqual(expected.Select(e => e.Id).ToArray(), tokenizer.Encode(text).ToArray(), shown);
            var tokens = inner.EncodeToTokens(text, out _);
            CollectionAssert.AreEqual(expected.Select(e => e.Id).ToArray(), tokens.Select(t => t.Id).ToArray(), shown);
            CollectionAssert.AreEqual(expected.Select(e => e.Value).ToArray(), tokens.Select(t => t.Value).ToArray(), shown);
            CollectionAssert.AreEqual(expected.Select(e => e.Range).ToArray(), tokens.Select(t => t.Offset).ToArray(), shown);
        }
        // A token limit never splits a character's bytes: "é" outside the vocabulary is two bytes, so a limit of 2 keeps "a" only.
        var ascii = (CharacterTokenizer)TextTokenizer.Train(TokenizerKind.Character, "abc", 0).Inner;
        IReadOnlyList<int> limited = ascii.EncodeToIds("aé", 2, out _, out int consumed);
        CollectionAssert.AreEqual(new[] { CharacterTokenizer.ByteTokens }, limited.ToArray());
        Assert.AreEqual(1, consumed);
    }

    [TestMethod]
    public void BpeTrainerReachesTheRequestedVocabularyAndCompresses()
    {
        string text = TestData.ShakespeareHead;
        TextTokenizer bpe = TextTokenizer.Train(TokenizerKind.BytePairEncoding, text, 600);
        Assert.AreEqual(600, bpe.VocabularySize);
        Assert.AreEqual(599, bpe.EndOfTextId);
        Assert.AreEqual(600 - 257, bpe.Definition.Merges!.Count);
        int characters = text.Length;
        int tokens = bpe.Encode(text).Count;
        Assert.IsLessThan(characters * 0.6, (double)tokens, $"{tokens} tokens for {characters} characters");
        Assert.AreEqual(text[..5000], bpe.Decode(bpe.Encode(text[..5000])));
    }

    [TestMethod]
    public void Gpt2TokenizerIsGpt2s()
    {
        TextTokenizer gpt2 = TextTokenizer.Train(TokenizerKind.Gpt2, "", 0);
        Assert.AreEqual(50257, gpt2.VocabularySize);
        Assert.AreEqual(50256, gpt2.EndOfTextId);
        CollectionAssert.AreEqual(new[] { 15496, 995 }, gpt2.Encode("Hello world").ToList()); // GPT-2's published ids
    }

    [TestMethod]
    public void TooSmallAVocabularyNamesTheOption()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TextTokenizer.Train(TokenizerKind.BytePairEncoding, Corpus, 100));
        StringAssert.Contains(e.Message, "VocabularySize must be at least 257");
        StringAssert.Contains(e.Message, "found 100");
    }
}

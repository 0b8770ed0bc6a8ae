// A character-level tokenizer (as nanoGPT's Shakespeare model): one token per Unicode character seen in
// the training text, with a byte fallback (one token per UTF-8 byte, as SentencePiece's byte_fallback) so
// that characters never seen still round-trip exactly.
using System.Buffers;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Transformers.ML.Core.Tokenization;

/// <summary>
/// Ids 0..255 are the UTF-8 bytes (used only for characters outside the vocabulary), 256.. the characters
/// in the order given, then the end-of-text token.
/// </summary>
internal sealed class CharacterTokenizer : Tokenizer
{
    public const int ByteTokens = 256;
    private readonly Dictionary<int, int> _idOfRune = new(); // id by code point: encoding without a string per character
    private readonly string[] _characters;

    public CharacterTokenizer(IReadOnlyList<string> characters)
    {
        _characters = characters.ToArray();
        for (int i = 0; i < _characters.Length; i++)
        {
            if (_characters[i].Length == 0 || Rune.DecodeFromUtf16(_characters[i], out _, out int used) != OperationStatus.Done || used != _characters[i].Length)
            {
                throw new ArgumentException($"Character vocabulary entry {i} ('{_characters[i]}') is not exactly one Unicode character.");
            }
            if (!_idOfRune.TryAdd(Rune.GetRuneAt(_characters[i], 0).Value, ByteTokens + i))
            {
                throw new ArgumentException($"Character '{_characters[i]}' appears twice in the vocabulary.");
            }
        }
    }

    /// <summary>The characters of the vocabulary, in id order (from id 256).</summary>
    public IReadOnlyList<string> Characters => _characters;

    /// <summary>Bytes, characters and the end-of-text token.</summary>
    public int VocabularySize => ByteTokens + _characters.Length + 1;

    public int EndOfTextId => ByteTokens + _characters.Length;

    /// <summary>The distinct characters of <paramref name="text"/>, in ordinal order (deterministic).</summary>
    public static List<string> CharactersOf(string text) => CharactersOf(new[] { text });

    /// <summary>The distinct characters of <paramref name="documents"/> joined by "\n" (read once, in a streaming pass), in ordinal order.</summary>
    public static List<string> CharactersOf(IEnumerable<string> documents)
    {
        var seen = new HashSet<int>();
        bool first = true;
        foreach (string text in documents)
        {
            if (!first)
            {
                seen.Add('\n');
            }
            first = false;
            foreach (Rune rune in text.EnumerateRunes())
            {
                seen.Add(rune.Value);
            }
        }
        return seen.Select(v => new Rune(v).ToString()).OrderBy(c => c, StringComparer.Ordinal).ToList();
    }

    /// <summary>The ids alone (what training and generation use), by code point: no token objects or strings per character.</summary>
    protected override EncodeResults<int> EncodeToIds(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        ReadOnlySpan<char> span = text is null ? textSpan : text.AsSpan();
        var ids = new List<int>(span.Length);
        int consumed = Encode(span, settings, ids, ranges: null);
        return new EncodeResults<int> { Tokens = ids, CharsConsumed = consumed, NormalizedText = null };
    }

    /// <summary>The same ids as <see cref="EncodeToIds"/>, each with its text (the character, or "&lt;0xNN&gt;" for a fallback byte) and its range.</summary>
    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        ReadOnlySpan<char> span = text is null ? textSpan : text.AsSpan();
        var ids = new List<int>(span.Length);
        var ranges = new List<Range>(span.Length);
        int consumed = Encode(span, settings, ids, ranges);
        var tokens = new List<EncodedToken>(ids.Count);
        for (int i = 0; i < ids.Count; i++)
        {
            int id = ids[i];
            string value = id >= ByteTokens ? _characters[id - ByteTokens] : $"<0x{id:X2}>";
            tokens.Add(new EncodedToken(id, value, ranges[i]));
        }
        return new EncodeResults<EncodedToken> { Tokens = tokens, CharsConsumed = consumed, NormalizedText = null };
    }

    /// <summary>
    /// One id per character of the vocabulary, else one per UTF-8 byte (a lone surrogate: the bytes of U+FFFD), up to the
    /// settings' token limit without splitting a character's bytes; <paramref name="ranges"/> (when given) gets each id's
    /// characters. Returns the characters consumed.
    /// </summary>
    private int Encode(ReadOnlySpan<char> span, EncodeSettings settings, List<int> ids, List<Range>? ranges)
    {
        int max = settings.MaxTokenCount > 0 ? settings.MaxTokenCount : int.MaxValue;
        int position = 0;
        Span<byte> utf8 = stackalloc byte[4];
        while (position < span.Length)
        {
            char c = span[position];
            int used = 1;
            Rune rune;
            bool valid = true;
            if (!char.IsSurrogate(c))
            {
                rune = new Rune(c);
            }
            else if (Rune.DecodeFromUtf16(span[position..], out rune, out used) != OperationStatus.Done)
            {
                rune = Rune.ReplacementChar; // a lone surrogate cannot be represented in UTF-8 either: the bytes of U+FFFD
                valid = false;
            }
            var range = new Range(position, position + used);
            if (valid && _idOfRune.TryGetValue(rune.Value, out int id))
            {
                if (ids.Count + 1 > max)
                {
                    break;
                }
                ids.Add(id);
                ranges?.Add(range);
            }
            else
            {
                int bytes = rune.EncodeToUtf8(utf8);
                if (ids.Count + bytes > max)
                {
                    break;
                }
                for (int b = 0; b < bytes; b++)
                {
                    ids.Add(utf8[b]);
                    ranges?.Add(range);
                }
            }
            position += used;
        }
        return position;
    }

    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten)
    {
        string text = DecodeToString(ids, out idsConsumed);
        if (text.Length > destination.Length)
        {
            charsWritten = 0;
            idsConsumed = 0;
            return OperationStatus.DestinationTooSmall;
        }
        text.AsSpan().CopyTo(destination);
        charsWritten = text.Length;
        return OperationStatus.Done;
    }

    private string DecodeToString(IEnumerable<int> ids, out int consumed)
    {
        var text = new StringBuilder();
        var pending = new List<byte>();
        consumed = 0;
        foreach (int id in ids)
        {
            consumed++;
            if (id >= 0 && id < ByteTokens)
            {
                pending.Add((byte)id);
                continue;
            }
            Flush();
            if (id >= ByteTokens && id < ByteTokens + _characters.Length)
            {
                text.Append(_characters[id - ByteTokens]);
            }
            // The end-of-text token and ids outside the vocabulary decode to nothing.
        }
        Flush();
        return text.ToString();

        void Flush()
        {
            if (pending.Count > 0)
            {
                text.Append(Encoding.UTF8.GetString(pending.ToArray()));
                pending.Clear();
            }
        }
    }
}

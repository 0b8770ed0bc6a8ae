// llm.c's token shard (dev/data/data_common.py, write_datafile): a header of 256 little-endian int32 (magic, version 1,
// token count, the rest zero), then the tokens, little-endian: uint16 under magic 20240520, uint32 under 20240801 (for
// vocabularies past 65,536). PyTorch training scripts in llm.c's and nanoGPT's style read these files with numpy.
using System.Buffers.Binary;

namespace Transformers.ML;

/// <summary>
/// Token shards in llm.c's <c>.bin</c> layout, so that tokens written here train elsewhere (llm.c, a nanoGPT-style
/// PyTorch script under <c>torchrun</c>) and back: a 1,024-byte header (256 little-endian int32: magic, version 1, token
/// count), then the tokens as little-endian uint16 (magic 20240520) or uint32 (magic 20240801). Written atomically.
/// </summary>
public static class TokenShard
{
    /// <summary>The header's magic number for uint16 tokens (llm.c's).</summary>
    public const int Uint16Magic = 20240520;

    /// <summary>The header's magic number for uint32 tokens.</summary>
    public const int Uint32Magic = 20240801;

    /// <summary>The format version in the header.</summary>
    public const int Version = 1;

    /// <summary>Bytes of the header: 256 int32.</summary>
    public const int HeaderBytes = 256 * sizeof(int);

    /// <summary>
    /// Writes <paramref name="tokens"/> to <paramref name="path"/> (through a temporary file, then renamed): uint16 when
    /// every id of a <paramref name="vocabularySize"/>-token vocabulary fits (at most 65,536), else uint32.
    /// </summary>
    public static void Write(string path, ReadOnlySpan<int> tokens, int vocabularySize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 1);
        bool narrow = vocabularySize <= 65_536;
        int width = narrow ? sizeof(ushort) : sizeof(uint);
        var bytes = new byte[HeaderBytes + (long)tokens.Length * width];
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(0), narrow ? Uint16Magic : Uint32Magic);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), Version);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), checked((int)tokens.Length));
        for (int i = 0; i < tokens.Length; i++)
        {
            int id = tokens[i];
            if ((uint)id >= (uint)vocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"Token {i} is {id}, outside the vocabulary of {vocabularySize} tokens.");
            }
            Span<byte> at = bytes.AsSpan(HeaderBytes + i * width);
            if (narrow)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(at, (ushort)id);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(at, (uint)id);
            }
        }
        Core.IO.AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>The tokens of a shard, after checking its header against the file (magic, version, length).</summary>
    public static int[] Read(string path)
    {
        (int magic, int count) = ReadHeader(path);
        int width = magic == Uint16Magic ? sizeof(ushort) : sizeof(uint);
        byte[] bytes = File.ReadAllBytes(path);
        var tokens = new int[count];
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> at = bytes.AsSpan(HeaderBytes + i * width);
            tokens[i] = width == sizeof(ushort) ? BinaryPrimitives.ReadUInt16LittleEndian(at) : checked((int)BinaryPrimitives.ReadUInt32LittleEndian(at));
        }
        return tokens;
    }

    /// <summary>The magic number and token count of a shard; a file that is not a whole shard is refused, saying why.</summary>
    public static (int Magic, int TokenCount) ReadHeader(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Token shard '{path}' does not exist.", path);
        }
        long length = new FileInfo(path).Length;
        if (length < HeaderBytes)
        {
            throw new InvalidDataException($"Token shard '{path}' has {length} bytes, fewer than its {HeaderBytes}-byte header: the file is truncated or not a shard.");
        }
        Span<byte> header = stackalloc byte[12];
        using (FileStream stream = File.OpenRead(path))
        {
            stream.ReadExactly(header);
        }
        int magic = BinaryPrimitives.ReadInt32LittleEndian(header);
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        int count = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (magic is not (Uint16Magic or Uint32Magic))
        {
            throw new InvalidDataException($"Token shard '{path}' starts with magic {magic}; expected {Uint16Magic} (uint16 tokens) or {Uint32Magic} (uint32 tokens): not an llm.c token shard.");
        }
        if (version != Version)
        {
            throw new InvalidDataException($"Token shard '{path}' has version {version}; expected {Version}.");
        }
        long expected = HeaderBytes + (long)count * (magic == Uint16Magic ? sizeof(ushort) : sizeof(uint));
        if (count < 0 || length != expected)
        {
            throw new InvalidDataException($"Token shard '{path}' holds {length} bytes; its header announces {count} tokens, {expected} bytes: the file is truncated or was changed.");
        }
        return (magic, count);
    }
}

// The tokens of llm.c shards as one stream, memory-mapped: training reads the windows it needs straight from the files,
// so a corpus costs two (uint16) or four (uint32) bytes per token of disk, not of memory.
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace Transformers.ML.Core.IO;

internal sealed class TokenStream : IDisposable
{
    private readonly List<(MemoryMappedFile File, MemoryMappedViewAccessor View, long First, int Count, int Width)> _shards = new();

    private TokenStream()
    {
    }

    /// <summary>Tokens in all shards.</summary>
    public long Length { get; private set; }

    /// <summary>Opens <paramref name="shards"/> in order; each header is checked against its file (truncated or foreign files are refused, named).</summary>
    public static TokenStream Open(IReadOnlyList<string> shards)
    {
        var stream = new TokenStream();
        try
        {
            foreach (string path in shards)
            {
                (int magic, int count) = TokenShard.ReadHeader(path);
                int width = magic == TokenShard.Uint16Magic ? sizeof(ushort) : sizeof(uint);
                if (count == 0)
                {
                    continue;
                }
                MemoryMappedFile file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
                MemoryMappedViewAccessor view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                stream._shards.Add((file, view, stream.Length, count, width));
                stream.Length += count;
            }
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Reads tokens [start, start + into.Length) into <paramref name="into"/> (across shards when needed).</summary>
    public void Read(long start, Span<long> into)
    {
        if (start < 0 || start + into.Length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, $"Tokens [{start}, {start + into.Length}) are outside the stream of {Length} tokens.");
        }
        int filled = 0;
        int shard = FindShard(start);
        var bytes = new byte[Math.Min(into.Length, 1 << 14) * sizeof(uint)];
        while (filled < into.Length)
        {
            (_, MemoryMappedViewAccessor view, long first, int count, int width) = _shards[shard];
            long offset = start + filled - first;
            int take = (int)Math.Min(into.Length - filled, Math.Min(count - offset, bytes.Length / width));
            view.ReadArray(TokenShard.HeaderBytes + offset * width, bytes, 0, take * width);
            for (int i = 0; i < take; i++)
            {
                into[filled + i] = width == sizeof(ushort) ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(i * 2)) : BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i * 4));
            }
            filled += take;
            if (offset + take == count)
            {
                shard++;
            }
        }
    }

    private int FindShard(long position)
    {
        int low = 0, high = _shards.Count - 1;
        while (low < high)
        {
            int middle = (low + high + 1) / 2;
            if (_shards[middle].First <= position)
            {
                low = middle;
            }
            else
            {
                high = middle - 1;
            }
        }
        return low;
    }

    public void Dispose()
    {
        foreach (var shard in _shards)
        {
            shard.View.Dispose();
            shard.File.Dispose();
        }
        _shards.Clear();
    }
}

/// <summary>A contiguous part of a token stream (the training part, or the held-out tail).</summary>
internal readonly record struct TokenRange(TokenStream Stream, long Start, long Length)
{
    public void Read(long offset, Span<long> into) => Stream.Read(Start + offset, into);

    /// <summary>All tokens of the range (for small ranges and tests).</summary>
    public long[] ToArray()
    {
        var all = new long[checked((int)Length)];
        Read(0, all);
        return all;
    }
}

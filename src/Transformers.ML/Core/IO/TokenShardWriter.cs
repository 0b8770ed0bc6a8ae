// Writes one llm.c token shard (see TokenShard) as the tokens come, without holding them: the header is written with a
// zero count first and completed at the end, in a temporary file that is renamed over the shard only when complete.
using System.Buffers.Binary;

namespace Transformers.ML.Core.IO;

internal sealed class TokenShardWriter : IDisposable
{
    private readonly string _path;
    private readonly string _temp;
    private readonly int _vocabularySize;
    private readonly bool _narrow;
    private readonly byte[] _buffer = new byte[1 << 16];
    private FileStream? _stream;
    private int _buffered;

    public TokenShardWriter(string path, int vocabularySize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 1);
        _path = Path.GetFullPath(path);
        _vocabularySize = vocabularySize;
        _narrow = vocabularySize <= 65_536;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        _temp = $"{_path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        _stream = new FileStream(_temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        _stream.Write(new byte[TokenShard.HeaderBytes]);
    }

    /// <summary>Tokens written so far.</summary>
    public long Count { get; private set; }

    /// <summary>Appends tokens; an id outside the vocabulary is refused, naming it.</summary>
    public void Append(ReadOnlySpan<int> ids)
    {
        FileStream stream = _stream ?? throw new ObjectDisposedException(nameof(TokenShardWriter));
        int width = _narrow ? sizeof(ushort) : sizeof(uint);
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_vocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token {Count} is {id}, outside the vocabulary of {_vocabularySize} tokens.");
            }
            if (_buffered + width > _buffer.Length)
            {
                stream.Write(_buffer, 0, _buffered);
                _buffered = 0;
            }
            if (_narrow)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(_buffered), (ushort)id);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_buffered), (uint)id);
            }
            _buffered += width;
            Count++;
        }
        if (Count > int.MaxValue)
        {
            throw new InvalidOperationException($"Token shard '{_path}' would hold more than {int.MaxValue} tokens, the most its int32 header can count.");
        }
    }

    /// <summary>Writes the header, flushes to disk and renames the temporary file over the shard.</summary>
    public void Complete()
    {
        FileStream stream = _stream ?? throw new ObjectDisposedException(nameof(TokenShardWriter));
        stream.Write(_buffer, 0, _buffered);
        _buffered = 0;
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(header, _narrow ? TokenShard.Uint16Magic : TokenShard.Uint32Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], TokenShard.Version);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], checked((int)Count));
        stream.Position = 0;
        stream.Write(header);
        stream.Flush(flushToDisk: true);
        stream.Dispose();
        _stream = null;
        File.Move(_temp, _path, overwrite: true);
    }

    /// <summary>Without <see cref="Complete"/>, the temporary file is removed and no shard appears.</summary>
    public void Dispose()
    {
        if (_stream is not null)
        {
            _stream.Dispose();
            _stream = null;
            try
            {
                File.Delete(_temp);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>
/// Tokens streamed into numbered shards (<c>{prefix}_000000.bin</c>, ...) of at most a given size, each written by a
/// <see cref="TokenShardWriter"/>: one writer for Fit's token cache and for <c>WriteTokenShards</c>.
/// </summary>
internal sealed class TokenShardSet : IDisposable
{
    private readonly string _folder;
    private readonly string _prefix;
    private readonly int _vocabularySize;
    private readonly long _tokensPerShard;
    private readonly List<(string Path, long Tokens)> _shards = new();
    private TokenShardWriter? _writer;

    public TokenShardSet(string folder, string prefix, int vocabularySize, long tokensPerShard)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokensPerShard, 1);
        _folder = folder;
        _prefix = prefix;
        _vocabularySize = vocabularySize;
        _tokensPerShard = tokensPerShard;
    }

    /// <summary>Tokens appended so far.</summary>
    public long Total { get; private set; }

    public void Append(ReadOnlySpan<int> ids)
    {
        while (ids.Length > 0)
        {
            if (_writer is null || _writer.Count >= _tokensPerShard)
            {
                Close();
                _writer = new TokenShardWriter(Path.Combine(_folder, $"{_prefix}_{_shards.Count:D6}.bin"), _vocabularySize);
            }
            int take = (int)Math.Min(ids.Length, _tokensPerShard - _writer.Count);
            _writer.Append(ids[..take]);
            ids = ids[take..];
            Total += take;
        }
    }

    /// <summary>Completes the last shard (an empty one when nothing was appended and <paramref name="atLeastOne"/>); the shards in order.</summary>
    public IReadOnlyList<(string Path, long Tokens)> Complete(bool atLeastOne = false)
    {
        if (_writer is null && atLeastOne && _shards.Count == 0)
        {
            _writer = new TokenShardWriter(Path.Combine(_folder, $"{_prefix}_{_shards.Count:D6}.bin"), _vocabularySize);
        }
        Close();
        return _shards;
    }

    private void Close()
    {
        if (_writer is not null)
        {
            _writer.Complete();
            _shards.Add((Path.Combine(_folder, $"{_prefix}_{_shards.Count:D6}.bin"), _writer.Count));
            _writer.Dispose();
            _writer = null;
        }
    }

    /// <summary>An unfinished shard is removed (its writer's temporary file); finished ones stay.</summary>
    public void Dispose() => _writer?.Dispose();
}

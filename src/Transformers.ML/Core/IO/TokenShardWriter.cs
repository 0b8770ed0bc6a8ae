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

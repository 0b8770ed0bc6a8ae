// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
//   { "__metadata__": { "key": "value", ... }, "name": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ... }
// then the raw little-endian tensor bytes; offsets are relative to the start of that data section.
// Readers must not trust the header: every offset, length and shape is checked before any byte is read.
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.Core.IO;

/// <summary>The header entry of one tensor.</summary>
internal sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteCount => End - Begin;
}

/// <summary>Reads and writes safetensors files.</summary>
internal static class SafeTensors
{
    /// <summary>Largest header accepted (as the reference implementation: 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8),
        ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8),
        ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2),
        ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>Writes <paramref name="tensors"/> (any device; copied to CPU) and string metadata to <paramref name="path"/>, atomically.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        EnsureLittleEndian();
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 })
        {
            header["__metadata__"] = metadata;
        }
        long offset = 0;
        foreach ((string name, Tensor tensor) in list)
        {
            if (name == "__metadata__" || !names.Add(name))
            {
                throw new ArgumentException($"Tensor name '{name}' is reserved or used twice; safetensors names must be unique.");
            }
            string dtype = DTypeName(tensor.dtype, name);
            long bytes = tensor.numel() * DTypes[dtype].Size;
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = dtype,
                ["shape"] = tensor.shape,
                ["data_offsets"] = new[] { offset, offset + bytes },
            };
            offset += bytes;
        }

        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        // Pad the header with spaces so that the data section starts 8-byte aligned.
        int padded = (json.Length + 7) / 8 * 8;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BitConverter.TryWriteBytes(length, (ulong)padded);
            stream.Write(length);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++)
            {
                stream.WriteByte((byte)' ');
            }
            foreach ((_, Tensor tensor) in list)
            {
                using Tensor cpu = tensor.detach().cpu().contiguous();
                stream.Write(cpu.bytes);
            }
        });
    }

    /// <summary>Opens <paramref name="path"/>, validates its header against the file length, and returns a reader.</summary>
    public static SafeTensorsReader Open(string path) => new(path);

    internal static (ScalarType Type, int Size) ParseDType(string dtype, string tensorName, string path) =>
        DTypes.TryGetValue(dtype, out var info)
            ? info
            : throw new InvalidDataException($"'{path}': tensor '{tensorName}' has dtype '{dtype}', which is not one of {string.Join(", ", DTypes.Keys)}.");

    private static string DTypeName(ScalarType type, string tensorName)
    {
        foreach ((string name, (ScalarType t, _)) in DTypes)
        {
            if (t == type)
            {
                return name;
            }
        }
        throw new ArgumentException($"Tensor '{tensorName}' has dtype {type}, which safetensors cannot hold.");
    }

    internal static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors files are little-endian; this machine is big-endian.");
        }
    }
}

/// <summary>A validated safetensors file: its metadata and tensor entries; tensors are read on demand.</summary>
internal sealed class SafeTensorsReader
{
    private readonly long _dataStart;

    internal SafeTensorsReader(string path)
    {
        SafeTensors.EnsureLittleEndian();
        Path = path;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        }
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        if (fileLength < 8)
        {
            throw Invalid($"the file is {fileLength} bytes long; a safetensors file starts with an 8-byte header length (truncated or not a safetensors file).");
        }
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength > SafeTensors.MaxHeaderBytes)
        {
            throw Invalid($"the header length field says {headerLength} bytes, more than the {SafeTensors.MaxHeaderBytes} allowed (corrupted or not a safetensors file).");
        }
        if (8 + (long)headerLength > fileLength)
        {
            throw Invalid($"the header length field says {headerLength} bytes but only {fileLength - 8} bytes follow it (truncated file).");
        }
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        _dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - _dataStart;

        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
        {
            // JSON names and strings are only decoded when read: check the encoding of the whole header first.
            throw Invalid("the header is not valid UTF-8 text (corrupted file).");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw Invalid($"the header is not valid JSON ({e.Message}).");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Invalid("the header is not a JSON object.");
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<SafeTensorInfo>();
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw Invalid("'__metadata__' is not an object of strings.");
                    }
                    foreach (JsonProperty item in property.Value.EnumerateObject())
                    {
                        metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String
                            ? item.Value.GetString()!
                            : throw Invalid($"metadata value '{item.Name}' is not a string.");
                    }
                    continue;
                }
                entries.Add(ParseEntry(property, dataLength));
            }
            CheckLayout(entries, dataLength);
            Metadata = metadata;
            Tensors = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        }
    }

    public string Path { get; }

    /// <summary>The string metadata of the header (empty when there is none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensor entries by name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    /// <summary>Reads every tensor onto <paramref name="device"/> (CPU when null), in file order.</summary>
    public Dictionary<string, Tensor> ReadAll(Device? device = null)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var stream = File.OpenRead(Path);
        foreach (SafeTensorInfo info in Tensors.Values.OrderBy(t => t.Begin))
        {
            result[info.Name] = Read(stream, info, device);
        }
        return result;
    }

    /// <summary>Reads one tensor onto <paramref name="device"/> (CPU when null).</summary>
    public Tensor Read(string name, Device? device = null)
    {
        if (!Tensors.TryGetValue(name, out SafeTensorInfo? info))
        {
            throw new KeyNotFoundException($"'{Path}' has no tensor named '{name}'.");
        }
        using var stream = File.OpenRead(Path);
        return Read(stream, info, device);
    }

    private Tensor Read(FileStream stream, SafeTensorInfo info, Device? device)
    {
        (ScalarType type, _) = SafeTensors.ParseDType(info.DType, info.Name, Path);
        Tensor cpu = empty(info.Shape, type);
        stream.Seek(_dataStart + info.Begin, SeekOrigin.Begin);
        try
        {
            stream.ReadExactly(cpu.bytes);
        }
        catch (EndOfStreamException)
        {
            cpu.Dispose();
            throw Invalid($"tensor '{info.Name}' ends past the end of the file (truncated file).");
        }
        if (device is null || device.type == DeviceType.CPU)
        {
            return cpu;
        }
        using (cpu)
        {
            return cpu.to(device);
        }
    }

    private SafeTensorInfo ParseEntry(JsonProperty property, long dataLength)
    {
        string name = property.Name;
        JsonElement value = property.Value;
        if (value.ValueKind != JsonValueKind.Object
            || !value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !value.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !value.TryGetProperty("data_offsets", out JsonElement offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array)
        {
            throw Invalid($"tensor '{name}' needs 'dtype' (string), 'shape' (array) and 'data_offsets' (array).");
        }
        string dtype = dtypeElement.GetString()!;
        (_, int size) = SafeTensors.ParseDType(dtype, name, Path);

        var shape = new long[shapeElement.GetArrayLength()];
        long elements = 1;
        int d = 0;
        foreach (JsonElement dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long extent) || extent < 0)
            {
                throw Invalid($"tensor '{name}' has a shape entry '{dim}' that is not a non-negative integer.");
            }
            shape[d++] = extent;
            elements = extent == 0 ? 0 : checked(elements * extent);
        }

        if (offsetsElement.GetArrayLength() != 2)
        {
            throw Invalid($"tensor '{name}' has {offsetsElement.GetArrayLength()} data offsets; expected [begin, end].");
        }
        long begin = ReadOffset(offsetsElement[0], name);
        long end = ReadOffset(offsetsElement[1], name);
        if (end < begin)
        {
            throw Invalid($"tensor '{name}' has data offsets [{begin}, {end}] with end before begin.");
        }
        long expected = checked(elements * size);
        if (end - begin != expected)
        {
            throw Invalid($"tensor '{name}' ({dtype}, shape [{string.Join(", ", shape)}]) needs {expected} bytes but its data offsets [{begin}, {end}] span {end - begin}.");
        }
        if (end > dataLength)
        {
            throw Invalid($"tensor '{name}' needs bytes [{begin}, {end}) of the data section, which has only {dataLength} bytes (truncated file).");
        }
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private long ReadOffset(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out long value) && value >= 0
            ? value
            : throw Invalid($"tensor '{name}' has a data offset '{element}' that is not a non-negative integer.");

    /// <summary>Entries must tile the data section exactly: no overlaps, no holes, no trailing bytes.</summary>
    private void CheckLayout(List<SafeTensorInfo> entries, long dataLength)
    {
        long position = 0;
        SafeTensorInfo? previous = null;
        foreach (SafeTensorInfo entry in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (entry.Begin < position)
            {
                throw Invalid($"tensors '{previous!.Name}' [{previous.Begin}, {previous.End}) and '{entry.Name}' [{entry.Begin}, {entry.End}) overlap.");
            }
            if (entry.Begin > position)
            {
                throw Invalid($"bytes [{position}, {entry.Begin}) of the data section belong to no tensor (corrupted header).");
            }
            position = entry.End;
            previous = entry;
        }
        if (position != dataLength)
        {
            throw Invalid($"the tensors cover {position} bytes but the data section has {dataLength} (corrupted header or trailing data).");
        }
    }

    private InvalidDataException Invalid(string problem) => new($"'{Path}' is not a valid safetensors file: {problem}");
}

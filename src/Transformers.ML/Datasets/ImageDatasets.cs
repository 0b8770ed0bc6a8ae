// Readers for the image data sets the classifier is measured on: the idx format of MNIST and Fashion-MNIST
// (LeCun et al.; big-endian header, optionally gzip-compressed) and numpy .npz archives such as MedMNIST's
// octmnist.npz (a zip of .npy arrays: magic, version, a Python-dict header, raw little-endian data).
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Transformers.ML.Datasets;

/// <summary>An array read from a data file: its shape and bytes (one byte per element for images and labels).</summary>
public sealed record ImageArray(int[] Shape, byte[] Data)
{
    /// <summary>Elements in all dimensions but the first (pixels per image).</summary>
    public int ItemSize => Shape.Skip(1).Aggregate(1, (a, b) => a * b);

    /// <summary>Number of items (images or labels).</summary>
    public int Count => Shape[0];
}

/// <summary>Reads idx files (MNIST, Fashion-MNIST) and .npz archives (MedMNIST) of unsigned 8-bit arrays.</summary>
public static partial class ImageDatasets
{
    /// <summary>Reads an idx file of unsigned bytes (.gz or plain); the message names the file and what is wrong.</summary>
    public static ImageArray ReadIdx(string path)
    {
        byte[] bytes = ReadMaybeGzip(path);
        if (bytes.Length < 4 || bytes[0] != 0 || bytes[1] != 0)
        {
            throw new InvalidDataException($"'{path}' is not an idx file: it does not start with two zero bytes.");
        }
        if (bytes[2] != 0x08)
        {
            throw new InvalidDataException($"'{path}' holds idx type 0x{bytes[2]:X2}; only unsigned bytes (0x08) are read.");
        }
        int dims = bytes[3];
        if (dims < 1 || bytes.Length < 4 + 4 * dims)
        {
            throw new InvalidDataException($"'{path}' has {dims} dimensions and a header longer than the file (truncated).");
        }
        var shape = new int[dims];
        long elements = 1;
        for (int d = 0; d < dims; d++)
        {
            shape[d] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d));
            elements *= shape[d];
        }
        int start = 4 + 4 * dims;
        if (bytes.Length - start != elements)
        {
            throw new InvalidDataException($"'{path}' should hold {elements} bytes of data for shape [{string.Join(", ", shape)}] but holds {bytes.Length - start} (truncated or corrupted).");
        }
        return new ImageArray(shape, bytes[start..]);
    }

    /// <summary>Reads every unsigned-byte or integer array of an .npz archive (integers are narrowed to bytes; labels fit).</summary>
    public static Dictionary<string, ImageArray> ReadNpz(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{path}' does not exist.", path);
        }
        var arrays = new Dictionary<string, ImageArray>(StringComparer.Ordinal);
        ZipArchive archive;
        try
        {
            archive = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not an .npz (zip) archive: {e.Message}", e);
        }
        using (archive)
        {
            foreach (ZipArchiveEntry entry in archive.Entries.Where(e => e.Name.EndsWith(".npy", StringComparison.Ordinal)))
            {
                using var stream = entry.Open();
                using var memory = new MemoryStream();
                stream.CopyTo(memory);
                arrays[entry.Name[..^4]] = ReadNpy(memory.ToArray(), $"{path}:{entry.Name}");
            }
        }
        return arrays;
    }

    /// <summary>Class folders of the Kermany OCT2017 layout, in the order of OCTMNIST's labels (0 CNV, 1 DME, 2 DRUSEN, 3 NORMAL).</summary>
    public static readonly IReadOnlyList<string> Oct2017Classes = new[] { "CNV", "DME", "DRUSEN", "NORMAL" };

    /// <summary>
    /// The images of a Kermany OCT2017 folder (<c>CLASS/CLASS-patient-n.jpeg</c>, either directly under
    /// <paramref name="folder"/> or under its <paramref name="split"/> subfolder, "train" or "test"), as (path, label) pairs
    /// sorted by path. Missing class folders are an error that names them; files of other types are ignored.
    /// </summary>
    public static List<(string Path, string Label)> ReadOct2017Folder(string folder, string? split = null)
    {
        string root = split is null ? folder : Path.Combine(folder, split);
        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"OCT2017 folder '{root}' does not exist.");
        }
        var missing = Oct2017Classes.Where(c => !Directory.Exists(Path.Combine(root, c))).ToList();
        if (missing.Count > 0)
        {
            throw new DirectoryNotFoundException(
                $"'{root}' is not in the OCT2017 layout: class folder(s) {string.Join(", ", missing)} missing (expected {string.Join(", ", Oct2017Classes)}).");
        }
        return Oct2017Classes
            .SelectMany(c => Directory.EnumerateFiles(Path.Combine(root, c))
                .Where(f => f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                .Select(f => (Path: f, Label: c)))
            .OrderBy(p => p.Path, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// The patient of a Kermany OCT2017 file name, <c>CLASS-PATIENT-IMAGE.jpeg</c> (e.g. "CNV-1016042-3.jpeg" -> "1016042"); one
    /// patient's scans are near copies, so splits for training and evaluation go by patient. The message names the file when
    /// it does not follow the pattern.
    /// </summary>
    public static string Oct2017Patient(string path)
    {
        string[] parts = Path.GetFileNameWithoutExtension(path).Split('-');
        return parts.Length == 3 && parts[1].Length > 0 && parts[1].All(char.IsAsciiDigit)
            ? parts[1]
            : throw new FormatException($"'{Path.GetFileName(path)}' is not named CLASS-PATIENT-IMAGE (e.g. CNV-1016042-3.jpeg): no patient id.");
    }

    /// <summary>
    /// Assigns every item to one of <paramref name="folds"/> folds so that all items of a group (a patient) share a fold and
    /// every fold gets about as many items of each label: groups in a seeded random order, each to the fold that has the
    /// fewest items of the group's labels so far. Returns the fold of each item, in order.
    /// </summary>
    public static int[] GroupedFolds(IReadOnlyList<string> groups, IReadOnlyList<string> labels, int folds, int seed)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(labels);
        if (groups.Count != labels.Count)
        {
            throw new ArgumentException($"{groups.Count} groups but {labels.Count} labels: one of each per item.", nameof(labels));
        }
        if (folds < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(folds), folds, "Cross-validation needs at least 2 folds.");
        }
        string[] names = labels.Distinct().Order(StringComparer.Ordinal).ToArray();
        var counts = new int[folds, names.Length];
        var sizes = new int[folds];
        var result = new int[groups.Count];
        var byGroup = Enumerable.Range(0, groups.Count).GroupBy(i => groups[i]).OrderBy(g => g.Key, StringComparer.Ordinal).ToArray();
        new Random(seed).Shuffle(byGroup);
        foreach (var group in byGroup.OrderByDescending(g => g.Count())) // large groups first, so that they do not unbalance the end
        {
            int[] members = group.ToArray();
            int[] labelIndex = members.Select(i => Array.IndexOf(names, labels[i])).ToArray();
            int best = Enumerable.Range(0, folds)
                .OrderBy(f => labelIndex.Sum(l => counts[f, l]))
                .ThenBy(f => sizes[f])
                .ThenBy(f => f)
                .First();
            foreach ((int item, int label) in members.Zip(labelIndex))
            {
                result[item] = best;
                counts[best, label]++;
                sizes[best]++;
            }
        }
        return result;
    }

    [GeneratedRegex(@"'descr':\s*'(?<descr>[^']+)'.*'fortran_order':\s*(?<fortran>True|False).*'shape':\s*\((?<shape>[^)]*)\)", RegexOptions.Singleline)]
    private static partial Regex NpyHeader();

    internal static ImageArray ReadNpy(byte[] bytes, string source)
    {
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
        {
            throw new InvalidDataException($"'{source}' is not a .npy array (no \\x93NUMPY magic).");
        }
        int major = bytes[6];
        int headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)) : BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        int start = (major == 1 ? 10 : 12) + headerLength;
        if (start > bytes.Length)
        {
            throw new InvalidDataException($"'{source}': the .npy header runs past the end of the array (truncated).");
        }
        string header = Encoding.ASCII.GetString(bytes, major == 1 ? 10 : 12, headerLength);
        Match match = NpyHeader().Match(header);
        if (!match.Success)
        {
            throw new InvalidDataException($"'{source}': cannot read the .npy header '{header.Trim()}'.");
        }
        if (match.Groups["fortran"].Value == "True")
        {
            throw new InvalidDataException($"'{source}' is stored in Fortran order; only C order is read.");
        }
        int[] shape = match.Groups["shape"].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        if (shape.Length == 0)
        {
            shape = new[] { 1 };
        }
        long elements = shape.Aggregate(1L, (a, b) => a * b);
        string descr = match.Groups["descr"].Value;
        int width = descr switch
        {
            "|u1" or "<u1" or "|i1" => 1,
            "<i2" or "<u2" => 2,
            "<i4" or "<u4" => 4,
            "<i8" or "<u8" => 8,
            _ => throw new InvalidDataException($"'{source}' has dtype '{descr}'; unsigned bytes and little-endian integers are read."),
        };
        if (bytes.Length - start != elements * width)
        {
            throw new InvalidDataException($"'{source}' should hold {elements * width} bytes for shape ({string.Join(", ", shape)}) of {descr} but holds {bytes.Length - start}.");
        }
        var data = new byte[elements];
        for (long i = 0; i < elements; i++)
        {
            long value = width switch
            {
                1 => bytes[start + i],
                2 => BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan((int)(start + 2 * i))),
                4 => BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan((int)(start + 4 * i))),
                _ => BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan((int)(start + 8 * i))),
            };
            if (value is < 0 or > 255)
            {
                throw new InvalidDataException($"'{source}' element {i} is {value}, outside 0..255 (not an image or label array).");
            }
            data[i] = (byte)value;
        }
        return new ImageArray(shape, data);
    }

    private static byte[] ReadMaybeGzip(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{path}' does not exist.", path);
        }
        byte[] raw = File.ReadAllBytes(path);
        if (raw.Length >= 2 && raw[0] == 0x1F && raw[1] == 0x8B)
        {
            using var gzip = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var output = new MemoryStream();
            try
            {
                gzip.CopyTo(output);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"'{path}' is a damaged gzip file: {e.Message}", e);
            }
            return output.ToArray();
        }
        return raw;
    }
}

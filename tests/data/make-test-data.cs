// Makes the test data in this folder from the project's shared data sets, reproducibly: excerpts of two books, the first
// Tatoeba pairs, the first Fashion-MNIST test images, eight original OCT scans and 160 OCT scans reduced to a quarter of
// their size, and the SHA256SUMS file. README.md says what each file is, where it comes from and under which licence.
//
//   dotnet run tests/data/make-test-data.cs -- ../shared/data        (from the repository root)
//
// The OCT selection is fixed by rule, not by looking at the images: per class, the patients in increasing id order, the
// first scan (lowest image number) of each; the originals are the first scans of the first two patients per class of
// oct-samples (the Kermany training split), the reduced ones the first 40 patients per class of oct-real (test split).
#:package SkiaSharp
#:package SkiaSharp.NativeAssets.Linux.NoDependencies
using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using SkiaSharp;

string shared = args.Length > 0 ? args[0] : Path.Combine("..", "shared", "data");
string output = args.Length > 1 ? args[1] : Path.Combine("tests", "data");
if (!Directory.Exists(Path.Combine(shared, "text")))
{
    Console.Error.WriteLine($"'{shared}' is not the shared data folder (it has no text/ folder).");
    return 2;
}
string[] classes = { "CNV", "DME", "DRUSEN", "NORMAL" };

// Books: the first 200,000 characters of Tiny Shakespeare; characters 20,000 to 40,000 of Dracula (past the Gutenberg header).
WriteText("text/tinyshakespeare-head.txt", Read("text/tinyshakespeare.txt")[..200_000]);
WriteText("text/dracula-excerpt.txt", Read("text/pg345-dracula.txt")[20_000..40_000]);

// Tatoeba: the first 4,000 lines of spa-eng.txt, unchanged.
WriteText("translation/spa-eng-head.txt", string.Join("\n", File.ReadLines(Path.Combine(shared, "translation", "spa-eng.txt")).Take(4000)) + "\n");

// Fashion-MNIST: the first 1,000 test images and labels, in the idx format with the counts in the header set to 1,000.
WriteIdx("fashion-mnist/t10k-images-1000-idx3-ubyte.gz", "fashion-mnist/t10k-images-idx3-ubyte.gz", 1000);
WriteIdx("fashion-mnist/t10k-labels-1000-idx1-ubyte.gz", "fashion-mnist/t10k-labels-idx1-ubyte.gz", 1000);

// OCT: originals, byte for byte, and reduced copies (area averaging to a quarter of width and height, grayscale JPEG quality 90).
foreach (string c in classes)
{
    foreach (string file in FirstScanPerPatient(Path.Combine(shared, "oct-samples", c)).Take(2))
    {
        Copy(file, $"oct/originals/{c}/{Path.GetFileName(file)}");
    }
    foreach (string file in FirstScanPerPatient(Path.Combine(shared, "oct-real", c)).Take(40))
    {
        Reduce(file, $"oct/reduced/{c}/{Path.GetFileName(file)}", 4);
    }
}

// Checksums of everything above, as sha256sum writes them.
var sums = new StringBuilder();
foreach (string file in Directory.GetFiles(output, "*", SearchOption.AllDirectories)
    .Select(f => Path.GetRelativePath(output, f).Replace('\\', '/'))
    .Where(f => f != "SHA256SUMS" && f != "README.md" && !f.EndsWith(".cs", StringComparison.Ordinal))
    .Order(StringComparer.Ordinal))
{
    sums.Append(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(output, file))))).Append("  ").Append(file).Append('\n');
}
File.WriteAllText(Path.Combine(output, "SHA256SUMS"), sums.ToString());
Console.WriteLine($"Wrote the test data to {output}.");
return 0;

string Read(string relative) => File.ReadAllText(Path.Combine(shared, relative));

string Target(string relative)
{
    string path = Path.Combine(output, relative);
    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
    return path;
}

void WriteText(string relative, string text) => File.WriteAllText(Target(relative), text, new UTF8Encoding(false));

void Copy(string source, string relative) => File.Copy(source, Target(relative), overwrite: true);

// The first image of each patient, patients in increasing numeric id: <CLASS>-<patient>-<image>.jpeg.
IEnumerable<string> FirstScanPerPatient(string folder) => Directory.GetFiles(folder, "*.jpeg")
    .Select(f => (File: f, Match: Regex.Match(Path.GetFileName(f), @"^[A-Z]+-(\d+)-(\d+)\.jpeg$")))
    .Where(x => x.Match.Success)
    .GroupBy(x => long.Parse(x.Match.Groups[1].Value))
    .OrderBy(g => g.Key)
    .Select(g => g.OrderBy(x => long.Parse(x.Match.Groups[2].Value)).First().File);

void WriteIdx(string relative, string source, int count)
{
    using var input = new GZipStream(File.OpenRead(Path.Combine(shared, source)), CompressionMode.Decompress);
    var header = new byte[4];
    input.ReadExactly(header);
    int dimensions = header[3];
    var shape = new int[dimensions];
    var bytes = new byte[4];
    for (int i = 0; i < dimensions; i++)
    {
        input.ReadExactly(bytes);
        shape[i] = BinaryPrimitives.ReadInt32BigEndian(bytes);
    }
    int itemSize = shape.Skip(1).Aggregate(1, (a, b) => a * b);
    var data = new byte[count * itemSize];
    input.ReadExactly(data);
    using var file = File.Create(Target(relative));
    using var gzip = new GZipStream(file, CompressionLevel.SmallestSize);
    gzip.Write(header);
    shape[0] = count;
    foreach (int d in shape)
    {
        BinaryPrimitives.WriteInt32BigEndian(bytes, d);
        gzip.Write(bytes);
    }
    gzip.Write(data);
}

void Reduce(string source, string relative, int factor)
{
    using SKBitmap original = SKBitmap.Decode(source) ?? throw new InvalidDataException($"'{source}' could not be decoded.");
    var info = new SKImageInfo(original.Width / factor, original.Height / factor, SKColorType.Gray8, SKAlphaType.Opaque);
    using var gray = new SKBitmap(new SKImageInfo(original.Width, original.Height, SKColorType.Gray8, SKAlphaType.Opaque));
    original.CopyTo(gray, SKColorType.Gray8);
    // Area averaging: the mean of each factor x factor block (the scans are grayscale, so one channel).
    using var reduced = new SKBitmap(info);
    for (int y = 0; y < info.Height; y++)
    {
        for (int x = 0; x < info.Width; x++)
        {
            int sum = 0;
            for (int dy = 0; dy < factor; dy++)
            {
                for (int dx = 0; dx < factor; dx++)
                {
                    sum += gray.GetPixel(x * factor + dx, y * factor + dy).Red;
                }
            }
            byte v = (byte)((sum + factor * factor / 2) / (factor * factor));
            reduced.SetPixel(x, y, new SKColor(v, v, v));
        }
    }
    using SKData jpeg = reduced.Encode(SKEncodedImageFormat.Jpeg, 90);
    File.WriteAllBytes(Target(relative), jpeg.ToArray());
}

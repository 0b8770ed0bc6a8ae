using System.IO.Compression;
using System.Text;
using Transformers.ML.ImageClassification;
using Transformers.ML.Datasets;

namespace Transformers.ML.Tests.ImageClassification;

[TestClass]
public sealed class ImageDatasetsTests
{
    [TestMethod]
    public void ReadsFashionMnistTestImages()
    {
        ImageArray images = ImageDatasets.ReadIdx(TestData.File("fashion-mnist/t10k-images-1000-idx3-ubyte.gz"));
        ImageArray labels = ImageDatasets.ReadIdx(TestData.File("fashion-mnist/t10k-labels-1000-idx1-ubyte.gz"));
        CollectionAssert.AreEqual(new[] { 1000, 28, 28 }, images.Shape);
        Assert.AreEqual(784, images.ItemSize);
        CollectionAssert.AreEqual(new[] { 1000 }, labels.Shape);
        // The first 1,000 test labels, counted per class 0..9 (the whole test set has 1,000 of each).
        int[] counts = Enumerable.Range(0, 10).Select(c => labels.Data.Count(l => l == c)).ToArray();
        CollectionAssert.AreEqual(new[] { 107, 105, 111, 93, 115, 87, 97, 95, 95, 95 }, counts);
        // Real images: mostly dark background with bright garments, not noise.
        double mean = images.Data.Average(b => (double)b);
        Assert.IsTrue(mean is > 40 and < 100, $"mean pixel {mean}");
    }

    [TestMethod]
    public void ReadsTheOct2017FolderLayout()
    {
        var images = ImageDatasets.ReadOct2017Folder(TestData.OctOriginals);
        Assert.AreEqual(8, images.Count);
        Assert.IsTrue(ImageDatasets.Oct2017Classes.All(c => images.Count(i => i.Label == c) == 2));
        Assert.IsTrue(images.All(i => Path.GetFileName(i.Path).StartsWith(i.Label + "-", StringComparison.Ordinal)), "labels come from the folders");
        Assert.AreEqual(160, ImageDatasets.ReadOct2017Folder(TestData.OctReduced).Count);
        var e = Assert.ThrowsExactly<DirectoryNotFoundException>(() => ImageDatasets.ReadOct2017Folder(TestData.OctOriginals, "train"));
        StringAssert.Contains(e.Message, "does not exist");
        e = Assert.ThrowsExactly<DirectoryNotFoundException>(() => ImageDatasets.ReadOct2017Folder(Path.Combine(TestData.Folder, "text")));
        StringAssert.Contains(e.Message, "CNV, DME, DRUSEN, NORMAL missing");
    }

    [TestMethod]
    public void TheTestDataMatchesItsChecksums()
    {
        var mismatches = TestData.ChecksumMismatches().ToList();
        Assert.AreEqual(0, mismatches.Count, string.Join("; ", mismatches));
        // The list covers every file of the data folder except its README, checksums and maker script.
        int listed = File.ReadLines(TestData.File("SHA256SUMS")).Count();
        Assert.AreEqual(173, listed);
    }

    [TestMethod]
    public void ReadsAnNpzWrittenHereAndRejectsDamagedFiles()
    {
        string path = TestUtil.TempPath(".npz");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] images = Enumerable.Range(0, 2 * 3 * 3).Select(i => (byte)(i * 10)).ToArray();
        long[] labels = { 3, 1 };
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            Write(zip, "train_images.npy", "|u1", "(2, 3, 3)", images);
            Write(zip, "train_labels.npy", "<i8", "(2, 1)", labels.SelectMany(BitConverter.GetBytes).ToArray());
        }
        var arrays = ImageDatasets.ReadNpz(path);
        CollectionAssert.AreEqual(new[] { 2, 3, 3 }, arrays["train_images"].Shape);
        CollectionAssert.AreEqual(images, arrays["train_images"].Data);
        CollectionAssert.AreEqual(new byte[] { 3, 1 }, arrays["train_labels"].Data);

        string idx = TestUtil.TempPath(".idx");
        File.WriteAllBytes(idx, new byte[] { 0, 0, 8, 1, 0, 0, 0, 5, 1, 2 });
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageDatasets.ReadIdx(idx));
        StringAssert.Contains(e.Message, "should hold 5 bytes");
        File.WriteAllBytes(idx, new byte[] { 1, 2, 3, 4 });
        e = Assert.ThrowsExactly<InvalidDataException>(() => ImageDatasets.ReadIdx(idx));
        StringAssert.Contains(e.Message, "not an idx file");
        File.WriteAllBytes(path, new byte[] { 1, 2, 3 });
        e = Assert.ThrowsExactly<InvalidDataException>(() => ImageDatasets.ReadNpz(path));
        StringAssert.Contains(e.Message, "not an .npz (zip) archive");
    }

    /// <summary>A version 1.0 .npy entry written to the format description: magic, version, padded header, data.</summary>
    private static void Write(ZipArchive zip, string name, string descr, string shape, byte[] data)
    {
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var stream = zip.CreateEntry(name).Open();
        stream.Write(new byte[] { 0x93 });
        stream.Write(Encoding.ASCII.GetBytes("NUMPY"));
        stream.Write(new byte[] { 1, 0 });
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(data);
    }
}

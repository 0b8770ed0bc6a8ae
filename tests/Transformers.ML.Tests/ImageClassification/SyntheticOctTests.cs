using Transformers.ML.ImageClassification;
using Transformers.ML.Datasets;

namespace Transformers.ML.Tests.ImageClassification;

/// <summary>The synthetic OCT generator (synthetic images, not medical data).</summary>
[TestClass]
public sealed class SyntheticOctTests
{
    [TestMethod]
    public void ImagesAreReproducibleAndInRange()
    {
        float[] a = SyntheticOct.Generate(OctClass.Dme, 64, seed: 5);
        CollectionAssert.AreEqual(a, SyntheticOct.Generate(OctClass.Dme, 64, seed: 5));
        CollectionAssert.AreNotEqual(a, SyntheticOct.Generate(OctClass.Dme, 64, seed: 6));
        Assert.AreEqual(64 * 64, a.Length);
        Assert.IsTrue(a.All(v => v is >= 0 and <= 1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticOct.Generate(OctClass.Normal, 8, 1));
    }

    [TestMethod]
    public void EdemaThickensTheRetina()
    {
        // The RPE is the brightest band across the scan: the row with the brightest mean. DME pushes it down (thickening).
        const int size = 64;
        double RpeRow(OctClass c, int seed)
        {
            float[] image = SyntheticOct.Generate(c, size, seed);
            return Enumerable.Range(0, size).MaxBy(r => Enumerable.Range(0, size).Average(col => image[r * size + col]));
        }
        double normal = Enumerable.Range(0, 30).Average(s => RpeRow(OctClass.Normal, s));
        double edema = Enumerable.Range(0, 30).Average(s => RpeRow(OctClass.Dme, s));
        Assert.IsGreaterThan(normal + 2, edema, $"RPE row: normal {normal:F1}, DME {edema:F1}");
    }

    [TestMethod]
    public void AFolderInTheOct2017LayoutIsWrittenAndReadBackPixelForPixel()
    {
        string folder = TestUtil.TempPath("");
        SyntheticOct.WriteOct2017Folder(folder, trainPerClass: 3, testPerClass: 2, size: 32, seed: 9);
        var train = ImageDatasets.ReadOct2017Folder(folder, "train");
        var test = ImageDatasets.ReadOct2017Folder(folder, "test");
        Assert.AreEqual(12, train.Count);
        Assert.AreEqual(8, test.Count);
        Assert.IsTrue(train.All(f => Path.GetFileName(f.Path).StartsWith("SYNTHETIC-" + f.Label, StringComparison.Ordinal)));

        // The PNG holds the generated values to within rounding to 8 bits.
        float[] expected = SyntheticOct.Generate(OctClass.Cnv, 32, unchecked(9 * 7_919 + 0 * 4 + (int)OctClass.Cnv));
        using Microsoft.ML.Data.MLImage image = Microsoft.ML.Data.MLImage.CreateFromFile(Path.Combine(folder, "train", "CNV", "SYNTHETIC-CNV-0.png"));
        (float[] pixels, _, int height, int width) = ImageInput.Pixels(image);
        Assert.AreEqual((32, 32), (height, width));
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.AreEqual(expected[i], pixels[i], 0.5 / 255 + 1e-6, $"pixel {i}");
        }
    }
}

using Transformers.ML.ImageClassification;

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
}

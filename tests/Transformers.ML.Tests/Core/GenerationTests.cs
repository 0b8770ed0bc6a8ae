using Transformers.ML.Core.Generation;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>Each decoding rule on toy logits, against values worked out by hand.</summary>
[TestClass]
public sealed class GenerationTests
{
    private static Tensor Logits(params float[] values) => tensor(values).unsqueeze(0);

    private static readonly Tensor NoIds = zeros(new long[] { 1, 0 }, ScalarType.Int64);

    [TestMethod]
    public void TemperatureDividesTheLogits()
    {
        using Tensor result = new TemperatureProcessor(0.5).Process(Logits(1, -2, 3), NoIds);
        CollectionAssert.AreEqual(new[] { 2f, -4f, 6f }, result.data<float>().ToArray());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TemperatureProcessor(0));
    }

    [TestMethod]
    public void TopKKeepsTheKLargest()
    {
        using Tensor result = new TopKProcessor(2).Process(Logits(1, 5, 3, 4), NoIds);
        CollectionAssert.AreEqual(new[] { float.NegativeInfinity, 5f, float.NegativeInfinity, 4f }, result.data<float>().ToArray());
        using Tensor all = new TopKProcessor(10).Process(Logits(1, 2), NoIds); // k larger than the vocabulary keeps all
        CollectionAssert.AreEqual(new[] { 1f, 2f }, all.data<float>().ToArray());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TopKProcessor(0));
    }

    [TestMethod]
    public void TopPKeepsTheSmallestNucleusReachingP()
    {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (logits ln of them).
        Tensor logits = Logits(MathF.Log(0.125f), MathF.Log(0.5f), MathF.Log(0.125f), MathF.Log(0.25f));
        // p = 0.7: 0.5 alone is not enough, 0.5 + 0.25 = 0.75 is: keep those two.
        float[] kept = new TopPProcessor(0.7).Process(logits, NoIds).data<float>().ToArray();
        CollectionAssert.AreEqual(new[] { false, true, false, true }, kept.Select(float.IsFinite).ToArray());
        // p = 0.5: exactly reached by the first token.
        kept = new TopPProcessor(0.5).Process(logits, NoIds).data<float>().ToArray();
        CollectionAssert.AreEqual(new[] { false, true, false, false }, kept.Select(float.IsFinite).ToArray());
        // A tiny p still keeps the most likely token.
        kept = new TopPProcessor(1e-6).Process(logits, NoIds).data<float>().ToArray();
        Assert.AreEqual(1, kept.Count(float.IsFinite));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TopPProcessor(1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TopPProcessor(0));
    }

    [TestMethod]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokens()
    {
        using Tensor ids = tensor(new long[] { 0, 2, 2 }).unsqueeze(0);
        using Tensor result = new RepetitionPenaltyProcessor(2.0).Process(Logits(4, 1, -3, 2), ids);
        CollectionAssert.AreEqual(new[] { 2f, 1f, -6f, 2f }, result.data<float>().ToArray());
    }
}

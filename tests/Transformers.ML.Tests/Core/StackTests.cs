using TorchSharp;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>Masking and caching invariants of the encoder and decoder stacks.</summary>
[TestClass]
public sealed class StackTests
{
    [TestMethod]
    [DataRow(NormPosition.Post)]
    [DataRow(NormPosition.Pre)]
    public void CausalMaskHidesTheFuture(NormPosition norm)
    {
        manual_seed(3);
        TransformerConfig config = TestUtil.Tiny(norm);
        using var embedding = new TokenEmbedding("emb", 50, config);
        using var decoder = new TransformerDecoder("dec", config, crossAttention: false);
        embedding.eval();
        decoder.eval();
        using Tensor tokens = randint(0, 50, new long[] { 2, 9 });
        using Tensor changed = tokens.clone();
        const int t = 4;
        changed.narrow(1, t + 1, 9 - t - 1).copy_(randint(0, 50, new long[] { 2, 9 - t - 1 }));

        using Tensor a = decoder.Forward(embedding.Forward(tokens)).Hidden;
        using Tensor b = decoder.Forward(embedding.Forward(changed)).Hidden;

        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(a.narrow(1, 0, t + 1), b.narrow(1, 0, t + 1)), 1e-6, "positions <= t changed");
        Assert.IsGreaterThan(1e-3, TestUtil.MaxAbsDiff(a.narrow(1, t + 1, 9 - t - 1), b.narrow(1, t + 1, 9 - t - 1)), "later positions should see the change");
    }

    [TestMethod]
    [DataRow(NormPosition.Post)]
    [DataRow(NormPosition.Pre)]
    public void PaddingDoesNotChangeTheOtherPositions(NormPosition norm)
    {
        manual_seed(4);
        TransformerConfig config = TestUtil.Tiny(norm);
        using var embedding = new TokenEmbedding("emb", 50, config);
        using var encoder = new TransformerEncoder("enc", config);
        embedding.eval();
        encoder.eval();
        // Row 0 has 6 real tokens and 3 padding positions; the padding content must not matter.
        using Tensor tokens = randint(1, 50, new long[] { 2, 9 });
        using Tensor mask = zeros(new long[] { 2, 9 }, ScalarType.Bool);
        mask[0].narrow(0, 6, 3).fill_(true);
        using Tensor other = tokens.clone();
        other[0].narrow(0, 6, 3).copy_(randint(1, 50, new long[] { 3 }));

        using Tensor a = encoder.Forward(embedding.Forward(tokens), mask).Hidden;
        using Tensor b = encoder.Forward(embedding.Forward(other), mask).Hidden;
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(a.narrow(1, 0, 6), b.narrow(1, 0, 6)), 1e-6);
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(a[1], b[1]), 1e-6);

        // And the real tokens alone, without padding, give the same outputs.
        using Tensor alone = encoder.Forward(embedding.Forward(tokens[0].narrow(0, 0, 6).unsqueeze(0))).Hidden;
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(alone[0], a[0].narrow(0, 0, 6)), 1e-5);
        Assert.IsFalse(a.isnan().any().item<bool>(), "padded positions must stay finite");
    }

    [TestMethod]
    [DataRow(NormPosition.Post, PositionalEncodingKind.Sinusoidal)]
    [DataRow(NormPosition.Pre, PositionalEncodingKind.Learned)]
    public void DecoderOnlyCacheMatchesFullRecomputation(NormPosition norm, PositionalEncodingKind positions)
    {
        manual_seed(5);
        TransformerConfig config = TestUtil.Tiny(norm, positions);
        using var embedding = new TokenEmbedding("emb", 40, config);
        using var decoder = new TransformerDecoder("dec", config, crossAttention: false);
        embedding.eval();
        decoder.eval();
        using Tensor tokens = randint(0, 40, new long[] { 3, 10 });
        using Tensor full = decoder.Forward(embedding.Forward(tokens)).Hidden;

        // A 4-token prompt in one call, then one token per step; the buffers start at 32 positions, or at what was
        // reserved (7 here): they are then written in place until full and only then grow, to twice their size.
        foreach (int reserved in new[] { 0, 7 })
        {
            using KeyValueCache cache = decoder.CreateCache();
            cache.Reserve(reserved);
            var pieces = new List<Tensor> { decoder.Forward(embedding.Forward(tokens.narrow(1, 0, 4)), cache: cache).Hidden };
            var capacities = new List<long> { cache.Capacity };
            for (int t = 4; t < 10; t++)
            {
                Assert.AreEqual(t, cache.Length);
                pieces.Add(decoder.Forward(embedding.Forward(tokens.narrow(1, t, 1), positionOffset: t), cache: cache).Hidden);
                capacities.Add(cache.Capacity);
            }
            CollectionAssert.AreEqual(reserved == 0 ? Enumerable.Repeat(32L, 7).ToList() : new List<long> { 7, 7, 7, 7, 14, 14, 14 }, capacities, string.Join(", ", capacities));
            using Tensor incremental = cat(pieces, 1);
            Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(full, incremental), $"reserved {reserved}");
        }
    }

    [TestMethod]
    public void EncoderDecoderCacheMatchesFullRecomputationAndReorders()
    {
        manual_seed(6);
        TransformerConfig config = TestUtil.Tiny();
        using var model = new EncoderDecoderTransformer("t", config, vocabularySize: 30);
        model.eval();
        using Tensor source = randint(1, 30, new long[] { 2, 7 });
        using Tensor sourceMask = zeros(new long[] { 2, 7 }, ScalarType.Bool);
        sourceMask[1].narrow(0, 5, 2).fill_(true);
        using Tensor target = randint(1, 30, new long[] { 2, 6 });

        using Tensor full = model.Forward(source, target, sourceMask);
        using Tensor memory = model.Encode(source, sourceMask);
        using KeyValueCache cache = model.Decoder.CreateCache();
        var steps = new List<Tensor>();
        for (int t = 0; t < 6; t++)
        {
            steps.Add(model.Decode(target.narrow(1, t, 1), t == 0 ? memory : null, sourceMask, cache: cache));
        }
        using Tensor incremental = cat(steps, 1);
        Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(full, incremental));

        // Beam search reorders the cache rows: swapping the two sequences swaps their next-step outputs.
        using KeyValueCache swapped = model.Decoder.CreateCache();
        for (int t = 0; t < 5; t++)
        {
            model.Decode(target.narrow(1, t, 1), t == 0 ? memory : null, sourceMask, cache: swapped).Dispose();
        }
        swapped.Reorder(tensor(new long[] { 1, 0 }));
        using Tensor swappedTarget = target.narrow(1, 5, 1).index_select(0, tensor(new long[] { 1, 0 }));
        using Tensor swappedMask = sourceMask.index_select(0, tensor(new long[] { 1, 0 }));
        using Tensor last = model.Decode(swappedTarget, null, swappedMask, cache: swapped);
        Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(last[0], full[1].narrow(0, 5, 1)));
        Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(last[1], full[0].narrow(0, 5, 1)));
    }

    [TestMethod]
    public void AttentionWeightsAreReturnedPerLayerAndRowsSumToOne()
    {
        manual_seed(7);
        TransformerConfig config = TestUtil.Tiny();
        using var encoder = new TransformerEncoder("enc", config);
        encoder.eval();
        using Tensor x = randn(2, 5, 32);
        using Tensor mask = zeros(new long[] { 2, 5 }, ScalarType.Bool);
        mask[0][4] = true;
        StackOutput output = encoder.Forward(x, mask, needWeights: true);
        Assert.AreEqual(2, output.SelfAttentionWeights!.Count);
        foreach (Tensor w in output.SelfAttentionWeights)
        {
            CollectionAssert.AreEqual(new long[] { 2, 4, 5, 5 }, w.shape);
            Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(w.sum(-1), ones(2, 4, 5)));
            Assert.AreEqual(0.0, w[0, TensorIndex.Colon, TensorIndex.Colon, 4].abs().max().item<float>(), 1e-12, "padding gets no attention");
        }
    }

    [TestMethod]
    public void PositionsBeyondTheMaximumFailWithAClearMessage()
    {
        TransformerConfig config = TestUtil.Tiny();
        config.MaxSequenceLength = 8;
        using var embedding = new TokenEmbedding("emb", 10, config);
        using Tensor tokens = zeros(new long[] { 1, 9 }, ScalarType.Int64);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => embedding.Forward(tokens));
        StringAssert.Contains(e.Message, "MaxSequenceLength");
    }
}

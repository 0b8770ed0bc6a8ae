using Transformers.ML.ImageClassification;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.ImageClassification;

[TestClass]
public sealed class VitModelTests
{
    [TestMethod]
    public void PresetsCountThePublishedParameters()
    {
        // With a 1000-class head, as the published (timm) counts: ViT-Ti/16 5,717,416; ViT-S/16 22,050,664; ViT-B/16 86,567,656.
        foreach ((VitConfig config, long expected) in new[] { (VitConfig.Tiny16(), 5_717_416L), (VitConfig.Small16(), 22_050_664L), (VitConfig.Base16(), 86_567_656L) })
        {
            using var model = new VitModel(config, 1000);
            Assert.AreEqual(expected, model.parameters().Sum(p => p.numel()), $"width {config.Width}");
        }
    }

    [TestMethod]
    public void ForwardGivesLogitsFeaturesAndAttentionOfTheClsToken()
    {
        manual_seed(1);
        var config = new VitConfig { ImageSize = 28, PatchSize = 7, Channels = 1, Width = 32, Depth = 2, Heads = 4, Dropout = 0 };
        using var model = new VitModel(config, 10);
        model.eval();
        using Tensor images = randn(3, 1, 28, 28);
        VitOutput output = model.Forward(images, needAttention: true);
        CollectionAssert.AreEqual(new long[] { 3, 10 }, output.Logits.shape);
        CollectionAssert.AreEqual(new long[] { 3, 32 }, output.Features.shape);
        Assert.AreEqual(2, output.Attention!.Count);
        CollectionAssert.AreEqual(new long[] { 3, 4, 17, 17 }, output.Attention[0].shape); // 16 patches + [CLS]
        // The zero-initialised head gives uniform predictions before training.
        Assert.AreEqual(0.0, output.Logits.abs().max().item<float>(), 0.0);

        // Each image's output depends on that image only.
        VitOutput single = model.Forward(images.narrow(0, 1, 1));
        Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(single.Features, output.Features.narrow(0, 1, 1)));

        var e = Assert.ThrowsExactly<ArgumentException>(() => model.Forward(randn(2, 3, 28, 28)));
        StringAssert.Contains(e.Message, "(batch, 1, 28, 28)");
    }

    [TestMethod]
    public void PositionEmbeddingsAreInterpolatedForANewImageSize()
    {
        manual_seed(2);
        var config = new VitConfig { ImageSize = 16, PatchSize = 4, Width = 16, Depth = 1, Heads = 2, Dropout = 0 };
        using var model = new VitModel(config, 3);
        var positions = model.named_parameters().Single(p => p.name == "pos_embed").parameter;
        using Tensor before = positions.detach().clone();
        model.ResizeImages(32); // 4 x 4 grid -> 8 x 8
        Assert.AreEqual(32, model.Config.ImageSize);
        CollectionAssert.AreEqual(new long[] { 1, 65, 16 }, positions.shape);
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(positions.narrow(1, 0, 1), before.narrow(1, 0, 1)), "the [CLS] position is kept");
        // Bicubic interpolation keeps the range of the grid (up to overshoot) and its mean closely.
        Assert.AreEqual(before.narrow(1, 1, 16).mean().item<float>(), positions.narrow(1, 1, 64).mean().item<float>(), 2e-3);
        using Tensor logits = model.Forward(randn(2, 1, 32, 32)).Logits;
        CollectionAssert.AreEqual(new long[] { 2, 3 }, logits.shape);

        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VitModel(new VitConfig { ImageSize = 30, PatchSize = 4 }, 2));
        StringAssert.Contains(bad.Message, "a multiple of PatchSize (4)");
        bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VitModel(new VitConfig { ImageSize = 3, PatchSize = 4 }, 2));
        StringAssert.Contains(bad.Message, "smaller than one patch");
    }

    [TestMethod]
    public void AConvolutionalStemFeedsThePatchEmbeddingAndAddsItsParameters()
    {
        var plain = new VitConfig { ImageSize = 28, PatchSize = 4, Channels = 1, Width = 64, Depth = 1, Heads = 4, Dropout = 0 };
        var hybrid = new VitConfig { ImageSize = 28, PatchSize = 4, Channels = 1, Width = 64, Depth = 1, Heads = 4, Dropout = 0, StemChannels = 16 };
        using var a = new VitModel(plain, 10);
        using var b = new VitModel(hybrid, 10);
        // The stem: 3x3 conv 1 -> 16 (144 + 16); the patch embedding reads 16 channels instead of 1: (16 - 1) x 4 x 4 x 64 more.
        long extra = (9 * 16 + 16) + (16 - 1) * 4 * 4 * 64;
        Assert.AreEqual(a.parameters().Sum(p => p.numel()) + extra, b.parameters().Sum(p => p.numel()));
        b.eval();
        using Tensor images = randn(2, 1, 28, 28);
        CollectionAssert.AreEqual(new long[] { 2, 10 }, b.Forward(images).Logits.shape);
        Assert.IsTrue(b.named_parameters().Any(p => p.name == "stem.weight"));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VitConfig { StemChannels = -1 }.Validate());
        StringAssert.Contains(e.Message, "StemChannels");
    }

    [TestMethod]
    public void AnOverlappingPatchEmbeddingSeesTheNeighbouringPixelsAndKeepsTheTokenCount()
    {
        var disjoint = new VitConfig { ImageSize = 28, PatchSize = 4, Channels = 1, Width = 32, Depth = 1, Heads = 4, Dropout = 0 };
        var overlapping = new VitConfig { ImageSize = 28, PatchSize = 4, Channels = 1, Width = 32, Depth = 1, Heads = 4, Dropout = 0, PatchWindow = 8 };
        using var a = new VitModel(disjoint, 10);
        using var b = new VitModel(overlapping, 10);
        // An 8x8 window instead of 4x4: (64 - 16) x 32 more weights; the same 7 x 7 + 1 positions.
        Assert.AreEqual(a.parameters().Sum(p => p.numel()) + (64 - 16) * 32, b.parameters().Sum(p => p.numel()));
        CollectionAssert.AreEqual(new long[] { 1, 50, 32 }, b.named_parameters().Single(p => p.name == "pos_embed").parameter.shape);

        // Patch (0, 0) covers pixels 0..3; with the window of 8 (padding 2) its token also reads pixels 4 and 5, not 6.
        static Tensor FirstToken(VitModel model, Tensor images)
        {
            using var scope = NewDisposeScope();
            var conv = model.named_modules().Single(m => m.name == "patch_embed").module as TorchSharp.Modules.Conv2d;
            return conv!.forward(images)[.., .., 0, 0].MoveToOuterDisposeScope();
        }
        using Tensor image = randn(1, 1, 28, 28);
        foreach ((int column, bool seenByOverlap) in new[] { (5, true), (6, false) })
        {
            using Tensor changed = image.clone();
            changed[0, 0, 1, column] = changed[0, 0, 1, column] + 1;
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(FirstToken(a, image), FirstToken(a, changed)), 1e-7, $"disjoint patch, column {column}");
            double moved = TestUtil.MaxAbsDiff(FirstToken(b, image), FirstToken(b, changed));
            Assert.AreEqual(seenByOverlap, moved > 1e-6, $"overlapping window, column {column}: token moved by {moved:G3}");
        }

        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new VitConfig { PatchSize = 4, PatchWindow = 7 }.Validate());
        StringAssert.Contains(e.Message, "PatchWindow must be 0, or PatchSize (4) plus an even number");
    }
}

using TorchSharp;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

[TestClass]
public sealed class ConfigAndEncodingTests
{
    [TestMethod]
    public void SinusoidalEncodingEqualsThePapersFormula()
    {
        const int d = 16;
        using var encoding = new SinusoidalPositionalEncoding(maxLength: 100, modelDim: d);
        using Tensor table = encoding.Forward(0, 100, CPU);
        float[] values = table.data<float>().ToArray();
        foreach (int pos in new[] { 0, 1, 7, 50, 99 })
        {
            for (int i = 0; i < d / 2; i++)
            {
                double angle = pos / Math.Pow(10000, 2.0 * i / d);
                Assert.AreEqual(Math.Sin(angle), values[pos * d + 2 * i], 1e-6, $"PE({pos}, {2 * i})");
                Assert.AreEqual(Math.Cos(angle), values[pos * d + 2 * i + 1], 1e-6, $"PE({pos}, {2 * i + 1})");
            }
        }
        // A few values written out by hand: PE(1, 0) = sin(1), PE(1, 1) = cos(1), PE(2, 2) = sin(2 / 10000^(2/16)).
        Assert.AreEqual(0.8414709848, values[1 * d + 0], 1e-6);
        Assert.AreEqual(0.5403023059, values[1 * d + 1], 1e-6);
        Assert.AreEqual(Math.Sin(2 / 3.1622776601683795), values[2 * d + 2], 1e-6);
        // With an offset (the key/value cache), positions continue.
        using Tensor later = encoding.Forward(40, 3, CPU);
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(later, table.narrow(0, 40, 3)));
    }

    [TestMethod]
    public void BaseAndBigCountThePapersParameters()
    {
        // Table 3 with a shared 37,000-token source/target vocabulary: base 65M, big 213M.
        long @base = TransformerConfig.Base().CountEncoderDecoderParameters(37000);
        long big = TransformerConfig.Big().CountEncoderDecoderParameters(37000);
        Assert.AreEqual(65e6, @base, 0.035 * 65e6, $"base counted {@base:N0}");
        Assert.AreEqual(213e6, big, 0.01 * 213e6, $"big counted {big:N0}");

        // The formula agrees with the modules, built on the meta device (no memory used).
        foreach (TransformerConfig config in new[] { TransformerConfig.Base(), TransformerConfig.Big() })
        {
            using var model = new EncoderDecoderTransformer("t", config, 37000).to(META);
            long counted = model.parameters().Sum(p => p.numel());
            Assert.AreEqual(config.CountEncoderDecoderParameters(37000), counted);
        }
    }

    [TestMethod]
    public void FormulaMatchesModulesForEveryVariant()
    {
        foreach (var (norm, positions, tie, dk, dv) in new[]
        {
            (NormPosition.Pre, PositionalEncodingKind.Learned, false, (int?)null, (int?)null),
            (NormPosition.Post, PositionalEncodingKind.Sinusoidal, true, 5, 7),
        })
        {
            TransformerConfig config = TestUtil.Tiny(norm, positions);
            config.TieEmbeddings = tie;
            config.KeyDimension = dk;
            config.ValueDimension = dv;
            using var model = new EncoderDecoderTransformer("t", config, 100);
            Assert.AreEqual(config.CountEncoderDecoderParameters(100), model.parameters().Sum(p => p.numel()), $"{norm} {positions} tie={tie}");
        }
    }

    [TestMethod]
    public void InvalidConfigurationsNameTheOption()
    {
        var config = TransformerConfig.Base();
        config.NumHeads = 7;
        var e = Assert.ThrowsExactly<ArgumentException>(() => config.Validate());
        StringAssert.Contains(e.Message, "ModelDimension (512) must be divisible by NumHeads (7)");

        config = TransformerConfig.Base();
        config.Dropout = 1.5;
        var range = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => config.Validate());
        StringAssert.Contains(range.Message, "Dropout must be in [0, 1); found 1.5");

        // d_k and d_v set: heads need not divide d_model.
        config = TransformerConfig.Base();
        config.NumHeads = 7;
        config.KeyDimension = 64;
        config.ValueDimension = 64;
        config.Validate();
    }

    [TestMethod]
    public void ConfigurationRoundTripsThroughJson()
    {
        TransformerConfig config = TransformerConfig.Big();
        config.PositionalEncoding = PositionalEncodingKind.Learned;
        config.KeyDimension = 32;
        string json = config.ToJson();
        StringAssert.Contains(json, "\"PositionalEncoding\":\"Learned\"");
        TransformerConfig back = TransformerConfig.FromJson(json);
        Assert.AreEqual(json, back.ToJson());
        var e = Assert.ThrowsExactly<FormatException>(() => TransformerConfig.FromJson("{not json"));
        StringAssert.Contains(e.Message, "not valid JSON");
    }
}

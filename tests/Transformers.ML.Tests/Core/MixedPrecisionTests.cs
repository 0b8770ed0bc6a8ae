using TorchSharp;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>bfloat16 autocast: the blocks' products run in bfloat16, results and gradients stay float32 and close to float32's.</summary>
[TestClass]
public sealed class MixedPrecisionTests
{
    [TestMethod]
    public void AttentionAndFeedForwardUnderAutocastStayCloseToFloat32WithFloat32Gradients()
    {
        manual_seed(21);
        TransformerConfig config = TestUtil.Tiny(NormPosition.Pre);
        using var layer = new EncoderLayer("layer", config);
        layer.eval();
        using Tensor x = randn(3, 7, config.ModelDimension);
        using Tensor padding = tensor(new[]
        {
            false, false, false, false, false, false, false,
            false, false, false, false, true, true, true,
            false, false, false, false, false, false, true,
        }, new long[] { 3, 7 });

        (Tensor exact, Dictionary<string, Tensor> exactGrads) = ForwardBackward(layer, x, padding, null);
        (Tensor mixed, Dictionary<string, Tensor> mixedGrads) = ForwardBackward(layer, x, padding, ScalarType.BFloat16);

        Assert.AreEqual(ScalarType.Float32, mixed.dtype);
        double scale = exact.abs().max().item<float>();
        double diff = TestUtil.MaxAbsDiff(exact, mixed);
        // bfloat16 has 8 significant bits (relative rounding 2^-9): the products differ a little, not a lot.
        Assert.IsGreaterThan(1e-6 * scale, diff, "autocast had no effect: the products did not run in bfloat16");
        Assert.IsLessThan(0.03 * scale, diff, $"max |float32 - bfloat16| = {diff:G3} of {scale:G3}");
        // Every parameter's gradient points the same way as float32's (rounding moves ReLU's kinks and cancellations a
        // little); the key bias, whose exact gradient is zero (softmax ignores a shift of every score), only gets
        // rounding noise, small against the whole gradient.
        double total = Math.Sqrt(exactGrads.Values.Sum(g => Math.Pow(g.norm().item<float>(), 2)));
        foreach ((string name, Tensor g) in exactGrads)
        {
            Tensor m = mixedGrads[name];
            Assert.AreEqual(ScalarType.Float32, m.dtype, name);
            double norm = g.norm().item<float>();
            if (norm < 1e-3 * total)
            {
                Assert.IsLessThan(1e-3 * total, m.norm().item<float>(), $"{name}: float32 gradient ~0, bfloat16 gradient large");
                continue;
            }
            double cosine = g.flatten().dot(m.flatten()).item<float>() / (norm * m.norm().item<float>());
            Assert.IsGreaterThan(0.98, cosine, $"{name}: cosine of the float32 and bfloat16 gradients {cosine:F4}");
        }
    }

    [TestMethod]
    public void PrecisionAutoMeasuresOnceAndExplainsItsChoice()
    {
        (ScalarType? type, string? reason) = PrecisionSelector.Resolve(TrainingPrecision.Auto, CPU);
        Assert.IsTrue(type is null or ScalarType.BFloat16, $"Auto chose {type}");
        Assert.IsNotNull(reason);
        StringAssert.Contains(reason, type is null ? "training in float32" : "training in bfloat16 mixed precision");
        Assert.AreEqual((type, reason), PrecisionSelector.Resolve(TrainingPrecision.Auto, CPU), "measured once per device: the same answer");
        Assert.AreEqual(((ScalarType?)null, (string?)null), PrecisionSelector.Resolve(TrainingPrecision.Float32, CPU));
        Assert.AreEqual(((ScalarType?)ScalarType.BFloat16, (string?)null), PrecisionSelector.Resolve(TrainingPrecision.BFloat16, CPU));
    }

    [TestMethod]
    public void AutocastScopesNestAndEndWithTheirScope()
    {
        Assert.IsNull(Autocast.Current);
        using (Autocast.Enable(ScalarType.BFloat16))
        {
            Assert.AreEqual(ScalarType.BFloat16, Autocast.Current);
            using (Autocast.Enable(null))
            {
                Assert.IsNull(Autocast.Current);
            }
            Assert.AreEqual(ScalarType.BFloat16, Autocast.Current);
        }
        Assert.IsNull(Autocast.Current);
    }

    private static (Tensor Output, Dictionary<string, Tensor> Grads) ForwardBackward(EncoderLayer layer, Tensor x, Tensor padding, ScalarType? autocast)
    {
        layer.zero_grad();
        Tensor output;
        using (Autocast.Enable(autocast))
        {
            output = layer.Forward(x, padding).Output;
        }
        // A loss that weights every output element differently, so that every weight gets a gradient.
        using Tensor weights = linspace(-1, 1, output.numel()).reshape(output.shape);
        output.mul(weights).sum().backward();
        return (output.detach(), layer.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
    }
}

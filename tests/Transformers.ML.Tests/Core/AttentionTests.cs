using TorchSharp;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>Multi-head attention against a naive double-precision implementation written here with explicit loops.</summary>
[TestClass]
public sealed class AttentionTests
{
    [TestMethod]
    [DataRow(false, false, false, DisplayName = "self, no mask, fused kernel")]
    [DataRow(true, false, false, DisplayName = "self, causal, fused kernel")]
    [DataRow(true, true, false, DisplayName = "self, causal + padding, fused kernel")]
    [DataRow(true, true, true, DisplayName = "self, causal + padding, explicit with weights")]
    [DataRow(false, true, true, DisplayName = "self, padding, explicit with weights")]
    public void SelfAttentionMatchesNaiveReference(bool causal, bool padding, bool needWeights)
    {
        manual_seed(11);
        using var attention = new MultiHeadAttention("mha", modelDim: 24, heads: 3, dk: 8, dv: 8, attentionDropout: 0, bias: true);
        attention.eval();
        using Tensor x = randn(2, 5, 24);
        using Tensor? mask = padding ? tensor(new[] { false, false, false, true, true, false, false, false, false, false }, new long[] { 2, 5 }) : null;

        AttentionOutput output = attention.Forward(x, x, mask, causal, needWeights: needWeights);

        (double[,,] expected, double[,,,] probabilities) = NaiveAttention(attention, x, x, mask, causal, heads: 3, dk: 8, dv: 8);
        AssertClose(expected, output.Output, 1e-5);
        if (needWeights)
        {
            Assert.IsNotNull(output.Weights);
            CollectionAssert.AreEqual(new long[] { 2, 3, 5, 5 }, output.Weights.shape);
            double[] w = TestUtil.ToDoubles(output.Weights);
            int n = 0;
            for (int b = 0; b < 2; b++)
            {
                for (int h = 0; h < 3; h++)
                {
                    for (int i = 0; i < 5; i++)
                    {
                        for (int j = 0; j < 5; j++)
                        {
                            Assert.AreEqual(probabilities[b, h, i, j], w[n++], 1e-5, $"weight b={b} h={h} i={i} j={j}");
                        }
                    }
                }
            }
        }
        else
        {
            Assert.IsNull(output.Weights);
        }
    }

    [TestMethod]
    public void CrossAttentionWithDistinctKeyAndValueWidthsMatchesNaiveReference()
    {
        manual_seed(12);
        // d_k = 6 and d_v = 10 differ from d_model / h = 4: both are settable.
        using var attention = new MultiHeadAttention("cross", modelDim: 16, heads: 4, dk: 6, dv: 10, attentionDropout: 0, bias: true);
        attention.eval();
        using Tensor query = randn(2, 3, 16);
        using Tensor memory = randn(2, 7, 16);
        using Tensor mask = tensor(new[] { false, false, false, false, false, true, true, false, false, false, false, false, false, false }, new long[] { 2, 7 });

        foreach (bool needWeights in new[] { false, true })
        {
            AttentionOutput output = attention.Forward(query, memory, mask, causal: false, needWeights: needWeights);
            (double[,,] expected, _) = NaiveAttention(attention, query, memory, mask, causal: false, heads: 4, dk: 6, dv: 10);
            AssertClose(expected, output.Output, 1e-5);
        }
    }

    [TestMethod]
    public void WrongShapesFailWithAClearMessage()
    {
        using var attention = new MultiHeadAttention("mha", 16, 4, 4, 4, 0, true);
        using Tensor x = randn(2, 3, 12);
        var e = Assert.ThrowsExactly<ArgumentException>(() => attention.Forward(x, x));
        StringAssert.Contains(e.Message, "(batch, length, 16)");
        StringAssert.Contains(e.Message, "(2, 3, 12)");

        using Tensor ok = randn(2, 3, 16);
        using Tensor badMask = zeros(new long[] { 2, 4 }, ScalarType.Bool);
        e = Assert.ThrowsExactly<ArgumentException>(() => attention.Forward(ok, ok, badMask));
        StringAssert.Contains(e.Message, "key padding mask of shape (2, 3)");
    }

    /// <summary>
    /// softmax(Q K^T / sqrt(d_k)) V per head with explicit loops in double precision, masked keys excluded.
    /// Weights are read from the module's parameters by their state-dict names.
    /// </summary>
    internal static (double[,,] Output, double[,,,] Probabilities) NaiveAttention(nn.Module attention, Tensor query, Tensor keyValue,
        Tensor? paddingMask, bool causal, int heads, int dk, int dv)
    {
        var p = attention.named_parameters().ToDictionary(kv => kv.name, kv => TestUtil.ToDoubles(kv.parameter));
        int batch = (int)query.shape[0], tq = (int)query.shape[1], s = (int)keyValue.shape[1], d = (int)query.shape[2];
        double[] xq = TestUtil.ToDoubles(query), xkv = TestUtil.ToDoubles(keyValue);
        bool[]? pad = paddingMask is null ? null : paddingMask.data<bool>().ToArray();

        double[] Project(double[] x, int b, int t, int length, string name, int outDim)
        {
            double[] w = p[name + ".weight"], bias = p[name + ".bias"], y = new double[outDim];
            for (int o = 0; o < outDim; o++)
            {
                double sum = bias[o];
                for (int i = 0; i < d; i++)
                {
                    sum += w[o * d + i] * x[(b * length + t) * d + i];
                }
                y[o] = sum;
            }
            return y;
        }

        var output = new double[batch, tq, d];
        var probabilities = new double[batch, heads, tq, s];
        for (int b = 0; b < batch; b++)
        {
            var q = Enumerable.Range(0, tq).Select(t => Project(xq, b, t, tq, "q_proj", heads * dk)).ToArray();
            var k = Enumerable.Range(0, s).Select(t => Project(xkv, b, t, s, "k_proj", heads * dk)).ToArray();
            var v = Enumerable.Range(0, s).Select(t => Project(xkv, b, t, s, "v_proj", heads * dv)).ToArray();
            for (int i = 0; i < tq; i++)
            {
                var concat = new double[heads * dv];
                for (int h = 0; h < heads; h++)
                {
                    var scores = new double[s];
                    var allowed = new bool[s];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < s; j++)
                    {
                        allowed[j] = !(causal && j > i) && !(pad is not null && pad[b * s + j]);
                        double dot = 0;
                        for (int c = 0; c < dk; c++)
                        {
                            dot += q[i][h * dk + c] * k[j][h * dk + c];
                        }
                        scores[j] = dot / Math.Sqrt(dk);
                        if (allowed[j])
                        {
                            max = Math.Max(max, scores[j]);
                        }
                    }
                    double z = 0;
                    for (int j = 0; j < s; j++)
                    {
                        z += allowed[j] ? Math.Exp(scores[j] - max) : 0;
                    }
                    for (int j = 0; j < s; j++)
                    {
                        double prob = allowed[j] ? Math.Exp(scores[j] - max) / z : 0;
                        probabilities[b, h, i, j] = prob;
                        for (int c = 0; c < dv; c++)
                        {
                            concat[h * dv + c] += prob * v[j][h * dv + c];
                        }
                    }
                }
                double[] wo = p["out_proj.weight"], bo = p["out_proj.bias"];
                for (int o = 0; o < d; o++)
                {
                    double sum = bo[o];
                    for (int c = 0; c < heads * dv; c++)
                    {
                        sum += wo[o * heads * dv + c] * concat[c];
                    }
                    output[b, i, o] = sum;
                }
            }
        }
        return (output, probabilities);
    }

    private static void AssertClose(double[,,] expected, Tensor actual, double tolerance)
    {
        double[] a = TestUtil.ToDoubles(actual);
        double max = 0;
        int n = 0;
        foreach (double e in expected)
        {
            max = Math.Max(max, Math.Abs(e - a[n++]));
        }
        Assert.AreEqual(expected.Length, a.Length);
        Assert.IsLessThan(tolerance, max, $"max abs error {max:E3}");
    }
}

using TorchSharp;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>
/// The library's layers against PyTorch's own (nn.MultiheadAttention, nn.TransformerEncoderLayer,
/// nn.TransformerDecoderLayer) for the same weights. The fixture was written by PyTorch 2.11 with
/// Fixtures/make_pytorch_reference.py (float64, stored as float32), and is read with our safetensors reader.
/// </summary>
[TestClass]
public sealed class PyTorchReferenceTests
{
    private const double Tolerance = 1e-5;
    private static Dictionary<string, Tensor> _fixture = null!;

    [ClassInitialize]
    public static void Load(TestContext _) =>
        _fixture = SafeTensors.Open(Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch_reference.safetensors")).ReadAll();

    [TestMethod]
    public void MultiheadAttentionMatchesPyTorch()
    {
        using var attention = new MultiHeadAttention("mha", 32, 4, 8, 8, 0, true);
        ModelFile.LoadInto(attention, AttentionWeights("mha."), "fixture");
        attention.eval();

        AttentionOutput self = attention.Forward(_fixture["x"], _fixture["x"], _fixture["x_padding"], causal: true, needWeights: true);
        Assert.IsLessThan(Tolerance, TestUtil.MaxAbsDiff(self.Output, _fixture["mha.self_out"]));
        Assert.IsLessThan(Tolerance, TestUtil.MaxAbsDiff(self.Weights!, _fixture["mha.self_weights"]));
        AttentionOutput fused = attention.Forward(_fixture["x"], _fixture["x"], _fixture["x_padding"], causal: true);
        Assert.IsLessThan(Tolerance, TestUtil.MaxAbsDiff(fused.Output, _fixture["mha.self_out"]));

        AttentionOutput cross = attention.Forward(_fixture["x"], _fixture["memory"], _fixture["memory_padding"]);
        Assert.IsLessThan(Tolerance, TestUtil.MaxAbsDiff(cross.Output, _fixture["mha.cross_out"]));
    }

    [TestMethod]
    [DataRow("enc_post_relu", NormPosition.Post, FeedForwardActivation.Relu)]
    [DataRow("enc_pre_gelu", NormPosition.Pre, FeedForwardActivation.Gelu)]
    public void EncoderLayerMatchesPyTorch(string name, NormPosition norm, FeedForwardActivation activation)
    {
        TransformerConfig config = TestUtil.Tiny(norm);
        config.Activation = activation;
        using var layer = new EncoderLayer("layer", config);
        var weights = AttentionWeights($"{name}.self_attn.", "self_attn.");
        AddLinearAndNorms(weights, name, ("norm1", "self_attn_residual.norm"), ("norm2", "ffn_residual.norm"));
        ModelFile.LoadInto(layer, weights, "fixture");
        layer.eval();

        Tensor output = layer.Forward(_fixture["x"], _fixture["x_padding"]).Output;
        Tensor expected = _fixture[$"{name}.out"];
        // PyTorch's output at padded query positions is not defined by the model (it may zero them): compare real positions.
        using Tensor real = _fixture["x_padding"].logical_not().unsqueeze(-1);
        Assert.IsLessThan(Tolerance, TestUtil.MaxAbsDiff(output.mul(real), expected.mul(real)));
    }

    [TestMethod]
    public void DecoderLayerMatchesPyTorch()
    {
        using var layer = new DecoderLayer("layer", TestUtil.Tiny(), crossAttention: true);
        var weights = AttentionWeights("dec_post_relu.self_attn.", "self_attn.")
            .Concat(AttentionWeights("dec_post_relu.multihead_attn.", "cross_attn.")).ToDictionary();
        AddLinearAndNorms(weights, "dec_post_relu",
            ("norm1", "self_attn_residual.norm"), ("norm2", "cross_attn_residual.norm"), ("norm3", "ffn_residual.norm"));
        ModelFile.LoadInto(layer, weights, "fixture");
        layer.eval();

        Tensor output = layer.Forward(_fixture["x"], null, _fixture["memory"], _fixture["memory_padding"]).Output;
        Assert.IsLessThan(Tolerance, TestUtil.MaxAbsDiff(output, _fixture["dec_post_relu.out"]));
    }

    /// <summary>PyTorch packs W^Q, W^K, W^V into one in_proj matrix (3 d_model, d_model); ours are three Linear layers.</summary>
    private static Dictionary<string, Tensor> AttentionWeights(string from, string to = "")
    {
        Tensor[] w = _fixture[from + "in_proj_weight"].chunk(3, 0);
        Tensor[] b = _fixture[from + "in_proj_bias"].chunk(3, 0);
        return new Dictionary<string, Tensor>
        {
            [to + "q_proj.weight"] = w[0], [to + "k_proj.weight"] = w[1], [to + "v_proj.weight"] = w[2],
            [to + "q_proj.bias"] = b[0], [to + "k_proj.bias"] = b[1], [to + "v_proj.bias"] = b[2],
            [to + "out_proj.weight"] = _fixture[from + "out_proj.weight"],
            [to + "out_proj.bias"] = _fixture[from + "out_proj.bias"],
        };
    }

    private static void AddLinearAndNorms(Dictionary<string, Tensor> weights, string prefix, params (string Torch, string Ours)[] norms)
    {
        foreach ((string torchName, string ours) in new[] { ("linear1", "ffn.fc1"), ("linear2", "ffn.fc2") }.Concat(norms))
        {
            weights[ours + ".weight"] = _fixture[$"{prefix}.{torchName}.weight"];
            weights[ours + ".bias"] = _fixture[$"{prefix}.{torchName}.bias"];
        }
    }
}

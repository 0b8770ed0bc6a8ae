using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.Tests;

internal static class TestUtil
{
    /// <summary>The tiny configuration of the tests: d_model 32, 2 layers, 4 heads, no dropout.</summary>
    public static TransformerConfig Tiny(NormPosition norm = NormPosition.Post, PositionalEncodingKind positions = PositionalEncodingKind.Sinusoidal) => new()
    {
        NumLayers = 2,
        ModelDimension = 32,
        FeedForwardDimension = 64,
        NumHeads = 4,
        Dropout = 0.0,
        MaxSequenceLength = 64,
        NormPosition = norm,
        PositionalEncoding = positions,
    };

    public static double[] ToDoubles(Tensor t) => t.detach().cpu().to(ScalarType.Float64).contiguous().data<double>().ToArray();

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.detach().to(ScalarType.Float64).sub(b.detach().to(ScalarType.Float64)).abs().max().item<double>();
    }

    public static string TempPath(string extension = ".safetensors") =>
        Path.Combine(Path.GetTempPath(), "transformers-ml-tests", Guid.NewGuid().ToString("N") + extension);
}

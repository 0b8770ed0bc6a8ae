using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.Tests;

[TestClass]
public sealed class Smoke
{
    [TestMethod]
    public void TensorWorks()
    {
        using var a = torch.ones(2, 3);
        Assert.AreEqual(6.0f, a.sum().item<float>());
    }
}

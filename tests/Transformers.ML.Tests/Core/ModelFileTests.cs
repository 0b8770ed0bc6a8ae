using Microsoft.ML;
using Transformers.ML.Core.IO;
using Transformers.ML.TextGeneration;
using Transformers.ML.Tests.TextGeneration;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>Damaged model files: refused at load with a message, never a crash inside libtorch.</summary>
[TestClass]
public sealed class ModelFileTests
{
    private static string _file = "";

    [ClassInitialize]
    public static void SaveATinyModel(TestContext _)
    {
        var ml = new MLContext(seed: 1);
        var options = TextGenerationTests.Tiny();
        options.Epochs = 1;
        options.BatchesPerEpoch = 3;
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, TestData.ShakespeareHead[..5_000]));
        _file = TestUtil.TempPath();
        model.Save(_file);
    }

    [TestMethod]
    public void WeightsThatAreNotFiniteAreRefusedNamingTheTensor()
    {
        var reader = SafeTensors.Open(_file);
        Dictionary<string, Tensor> weights = reader.ReadAll();
        string victim = weights.Keys.Where(k => k.EndsWith(".weight", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Skip(2).First();
        using (no_grad())
        {
            weights[victim].view(-1)[3] = float.NaN;
            weights[victim].view(-1)[5] = float.PositiveInfinity;
        }
        string damaged = TestUtil.TempPath();
        SafeTensors.Write(damaged, weights, reader.Metadata);
        var ml = new MLContext();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadTextGeneration(damaged));
        StringAssert.Contains(e.Message, $"tensor '{victim}' holds 1 NaN and 1 infinite values (of {weights[victim].numel()})");
        StringAssert.Contains(e.Message, damaged);
    }

    [TestMethod]
    public void WeightsThatOverflowAreRefusedByTheLoadersForwardPass() =>
        TestUtil.AssertOverflowingWeightsAreRefused(_file, f => new MLContext().Transformers().LoadTextGeneration(f));

    [TestMethod]
    public void EveryMutatedFileLoadsAndGeneratesOrIsRefusedWithAMessage()
    {
        // Random byte mutations of a saved model (header, metadata and weights alike). Each copy must either load and
        // generate, or be refused with InvalidDataException at load (or, for weights that overflow only on some token, with
        // the generator's message); nothing else (no JsonException, no libtorch error).
        byte[] original = File.ReadAllBytes(_file);
        long headerLength = BitConverter.ToInt64(original, 0);
        var random = new Random(7);
        var ml = new MLContext();
        int loaded = 0, refused = 0;
        var unexpected = new List<string>();
        string path = TestUtil.TempPath();
        for (int trial = 0; trial < 300; trial++)
        {
            byte[] bytes = (byte[])original.Clone();
            int mutations = 1 + random.Next(4);
            for (int m = 0; m < mutations; m++)
            {
                // Half of the mutations hit the header (metadata, shapes, offsets), half the weights.
                int at = random.Next(2) == 0 ? 8 + random.Next((int)headerLength) : random.Next(bytes.Length);
                bytes[at] = random.Next(3) switch { 0 => (byte)random.Next(256), 1 => (byte)(bytes[at] ^ (1 << random.Next(8))), _ => 0xFF };
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using TextGenerationTransformer model = ml.Transformers().LoadTextGeneration(path, "cpu");
                model.Generate("ROMEO:", new GenerationOptions { MaxNewTokens = 5, Temperature = 0.8, TopK = 10, Seed = 1 });
                loaded++;
            }
            catch (InvalidDataException)
            {
                refused++;
            }
            catch (InvalidOperationException e) when (e.Message.StartsWith("The model's scores for the next token are not finite numbers", StringComparison.Ordinal))
            {
                refused++; // weights that overflow only on some token: the generator says so
            }
            catch (Exception e)
            {
                unexpected.Add($"trial {trial}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.AreEqual(0, unexpected.Count, string.Join("\n", unexpected.Select(u => u[(u.IndexOf(':') + 2)..]).Distinct().Take(20)));
        Assert.IsTrue(loaded > 0 && refused > 0, $"{loaded} loaded, {refused} refused: both kinds of mutation occur");
    }
}

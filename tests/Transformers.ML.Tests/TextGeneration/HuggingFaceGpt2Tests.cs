using Transformers.ML.Core.Generation;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.TextGeneration;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.TextGeneration;

/// <summary>
/// GPT-2 checkpoints in Hugging Face's layout. The fixtures come from Fixtures/make_gpt2_reference.py (transformers 5.17,
/// PyTorch 2.11): a tiny random GPT2LMHeadModel saved with save_pretrained, with its logits and greedy continuation.
/// </summary>
[TestClass]
public sealed class HuggingFaceGpt2Tests
{
    private static string Fixture(params string[] parts) => Path.Combine(new[] { AppContext.BaseDirectory, "Fixtures" }.Concat(parts).ToArray());

    /// <summary>The hub checkpoint plus a tokenizer file (its vocabulary of 300 is not GPT-2's, so the import needs one).</summary>
    private static string CheckpointWithTokenizer()
    {
        string folder = TestUtil.TempPath("");
        Directory.CreateDirectory(folder);
        foreach (string file in new[] { "config.json", "model.safetensors" })
        {
            File.Copy(Fixture("hf_tiny_gpt2", file), Path.Combine(folder, file));
        }
        // 256 byte tokens + 43 characters + end-of-text = 300 tokens.
        var characters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ".Select(c => c.ToString()).ToList();
        File.WriteAllText(Path.Combine(folder, HuggingFaceGpt2.TokenizerFile), new TokenizerDefinition { Kind = TokenizerKind.Character, Characters = characters }.ToJson());
        return folder;
    }

    [TestMethod]
    public void ImportedCheckpointGivesTransformersLogitsAndGreedyTokens()
    {
        var reference = SafeTensors.Open(Fixture("hf_tiny_gpt2", "reference_logits.safetensors")).ReadAll();
        (GptModel model, TextTokenizer tokenizer) = HuggingFaceGpt2.Import(CheckpointWithTokenizer());
        using (model)
        {
            model.eval();
            Assert.AreEqual(300, model.VocabularySize);
            Assert.AreEqual(300, tokenizer.VocabularySize);
            using (no_grad())
            {
                using Tensor logits = model.Forward(reference["input_ids"]);
                Assert.IsLessThan(1e-4, TestUtil.MaxAbsDiff(logits, reference["logits"]));
            }
            long[] prompt = reference["prompt"].data<long>().ToArray();
            using var stepper = new TorchCausalStepper(model, CPU);
            List<int>[] greedy = CausalDecoding.Generate(stepper, new[] { prompt.Select(i => (int)i).ToList() }, new DecodingSettings { MaxNewTokens = 20 });
            CollectionAssert.AreEqual(reference["greedy"].data<long>().ToArray().Select(i => (int)i).ToList(), greedy[0]);
            // The loop sized the cache once for the prompt and the 20 new tokens (the last new token is not fed back).
            Assert.AreEqual(Math.Min(model.ContextLength, prompt.Length + 20), stepper.CacheCapacity);
        }
    }

    [TestMethod]
    public void ExportThenImportGivesIdenticalLogits()
    {
        var ml = new Microsoft.ML.MLContext();
        using TextGenerationTransformer imported = ml.Transformers().ImportGpt2(CheckpointWithTokenizer());
        string folder = TestUtil.TempPath("");
        imported.ExportToHuggingFace(folder);
        using TextGenerationTransformer again = ml.Transformers().ImportGpt2(folder);
        using Tensor ids = randint(0, 300, new long[] { 2, 16 });
        using (no_grad())
        {
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(imported.Model.Forward(ids), again.Model.Forward(ids)));
        }
        Assert.AreEqual(imported.Generate("abc", new GenerationOptions { MaxNewTokens = 10, Temperature = 0 }),
            again.Generate("abc", new GenerationOptions { MaxNewTokens = 10, Temperature = 0 }));
        // The exported weights carry GPT-2's names and its Conv1D (in, out) layout.
        var tensors = SafeTensors.Open(Path.Combine(folder, "model.safetensors")).Tensors;
        CollectionAssert.AreEqual(new long[] { 32, 96 }, tensors["transformer.h.0.attn.c_attn.weight"].Shape);
        CollectionAssert.AreEqual(new long[] { 32, 128 }, tensors["transformer.h.1.mlp.c_fc.weight"].Shape);
    }

    [TestMethod]
    public void PyTorchReadsOurExportWithTheSameLogits()
    {
        // Fixtures/ours_gpt2 was written by ExportToHuggingFace; make_gpt2_reference.py loaded it with
        // GPT2LMHeadModel.from_pretrained and recorded the largest logit difference from ours.
        string json = File.ReadAllText(Fixture("ours_gpt2", "ours_in_pytorch.json"));
        double difference = System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("max_abs_diff").GetDouble();
        Assert.IsLessThan(1e-5, difference);
        // And the committed export still is what the library writes and reads.
        var ml = new Microsoft.ML.MLContext();
        using TextGenerationTransformer ours = ml.Transformers().ImportGpt2(Fixture("ours_gpt2"));
        var expected = SafeTensors.Open(Fixture("ours_gpt2", "our_logits.safetensors")).ReadAll();
        using (no_grad())
        {
            Assert.IsLessThan(1e-6, TestUtil.MaxAbsDiff(ours.Model.Forward(expected["input_ids"]), expected["logits"]));
        }
    }

    [TestMethod]
    public void AFolderWithoutACheckpointOrTokenizerFailsClearly()
    {
        string empty = TestUtil.TempPath("");
        Directory.CreateDirectory(empty);
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => HuggingFaceGpt2.Import(empty));
        StringAssert.Contains(e.Message, "config.json and model.safetensors");
        var noTokenizer = Assert.ThrowsExactly<InvalidDataException>(() => HuggingFaceGpt2.Import(Fixture("hf_tiny_gpt2")));
        StringAssert.Contains(noTokenizer.Message, "the tokenizer is unknown");
    }
}

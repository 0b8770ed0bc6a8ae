using Microsoft.ML;
using Microsoft.ML.OnnxRuntimeGenAI;
using Transformers.ML.Core.Generation;
using Transformers.ML.TextGeneration;
using Transformers.ML.Tests.TextGeneration;
using static TorchSharp.torch;
using GenAiGenerator = Microsoft.ML.OnnxRuntimeGenAI.Generator;
using GenAiModel = Microsoft.ML.OnnxRuntimeGenAI.Model;

namespace Transformers.ML.Tests.Onnx;

/// <summary>The GPT exported in ONNX Runtime GenAI's layout, generated from by Microsoft.ML.OnnxRuntimeGenAI itself.</summary>
[TestClass]
public sealed class GenAiTests
{
    [TestMethod]
    public void OnnxRuntimeGenAIGreedyTokensEqualOurs()
    {
        var ml = new MLContext(seed: 1);
        TextGenerationOptions options = TextGenerationTests.Tiny();
        options.Tokenizer = TokenizerKind.BytePairEncoding;
        options.VocabularySize = 400;
        options.Epochs = 1;
        options.BatchesPerEpoch = 20;
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, TestData.ShakespeareHead[..40_000]));
        foreach (bool shared in new[] { false, true })
        {
            GenAiMatches(model, shared);
        }
    }

    /// <summary>The export (with or without shared cache buffers) generates our greedy tokens in ONNX Runtime GenAI.</summary>
    private static void GenAiMatches(TextGenerationTransformer model, bool shared)
    {
        string folder = TestUtil.TempPath("-genai");
        model.ExportToOnnxRuntimeGenAI(folder, new OnnxExportOptions { SharedCacheBuffers = shared });
        foreach (string file in new[] { "model.onnx", "genai_config.json", "vocab.json", "merges.txt", "tokenizer_config.json" })
        {
            Assert.IsTrue(File.Exists(Path.Combine(folder, file)), file);
        }

        int[] prompt = model.Tokenizer.Encode("ROMEO:\nWhat light").ToArray();
        int newTokens = Math.Min(24, model.Model.ContextLength - prompt.Length);
        using var stepper = new TorchCausalStepper(model.Model, CPU);
        List<int> ours = CausalDecoding.Generate(stepper, new[] { prompt }, new DecodingSettings { MaxNewTokens = newTokens, EndOfTextId = model.Tokenizer.EndOfTextId })[0];

        using var oga = new OgaHandle();
        using var genAi = new GenAiModel(folder);
        using var parameters = new GeneratorParams(genAi);
        parameters.SetSearchOption("max_length", prompt.Length + newTokens);
        parameters.SetSearchOption("do_sample", false);
        using var generator = new GenAiGenerator(genAi, parameters);
        generator.AppendTokens(prompt);
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }
        int[] sequence = generator.GetSequence(0).ToArray();
        CollectionAssert.AreEqual(prompt, sequence[..prompt.Length], "GenAI keeps the prompt");
        List<int> theirs = sequence[prompt.Length..].TakeWhile(t => t != model.Tokenizer.EndOfTextId).ToList();
        Assert.IsGreaterThan(5, ours.Count);
        CollectionAssert.AreEqual(ours, theirs, $"shared buffers {shared}; ours: {model.Tokenizer.Decode(ours)} | GenAI: {model.Tokenizer.Decode(theirs)}");
    }
}

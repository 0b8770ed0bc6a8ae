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
        List<int> theirs = Generate(generator, prompt, model.Tokenizer.EndOfTextId);
        Assert.IsGreaterThan(5, ours.Count);
        CollectionAssert.AreEqual(ours, theirs, $"shared buffers {shared}; ours: {model.Tokenizer.Decode(ours)} | GenAI: {model.Tokenizer.Decode(theirs)}");

        // One Generator rewound to the start for each prompt (RewindTo(0) saves GenAI's per-Generator set-up, which the
        // benchmark measures): the longer prompt's generation first, so that the shorter one's steps run with stale keys and
        // values beyond its own positions in the cache, which the graph must not attend to.
        int[] longer = model.Tokenizer.Encode("ROMEO:\nBut soft, what light through yonder window breaks?\nIt is").ToArray();
        using var rewoundParameters = new GeneratorParams(genAi);
        rewoundParameters.SetSearchOption("max_length", model.Model.ContextLength);
        rewoundParameters.SetSearchOption("do_sample", false);
        using var rewound = new GenAiGenerator(genAi, rewoundParameters);
        foreach (int[] p in new[] { longer, prompt })
        {
            rewound.RewindTo(0);
            List<int> again = Generate(rewound, p, model.Tokenizer.EndOfTextId);
            List<int> expected = CausalDecoding.Generate(stepper, new[] { p },
                new DecodingSettings { MaxNewTokens = model.Model.ContextLength - p.Length, EndOfTextId = model.Tokenizer.EndOfTextId })[0];
            Assert.IsGreaterThan(5, expected.Count);
            CollectionAssert.AreEqual(expected, again, $"shared buffers {shared}, rewound Generator, prompt of {p.Length} tokens; ours: {model.Tokenizer.Decode(expected)} | GenAI: {model.Tokenizer.Decode(again)}");
        }
    }

    /// <summary>GenAI's greedy tokens after <paramref name="prompt"/>, up to its max_length or the end of text (not included).</summary>
    private static List<int> Generate(GenAiGenerator generator, int[] prompt, int endOfText)
    {
        generator.AppendTokens(prompt);
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }
        int[] sequence = generator.GetSequence(0).ToArray();
        CollectionAssert.AreEqual(prompt, sequence[..prompt.Length], "GenAI keeps the prompt");
        return sequence[prompt.Length..].TakeWhile(t => t != endOfText).ToList();
    }
}

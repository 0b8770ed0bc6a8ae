using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntimeGenAI;
using Transformers.ML.Core.Generation;
using Transformers.ML.TextGeneration;
using Transformers.ML.Tests.TextGeneration;
using static TorchSharp.torch;
using GenAiGenerator = Microsoft.ML.OnnxRuntimeGenAI.Generator;
using GenAiModel = Microsoft.ML.OnnxRuntimeGenAI.Model;
using Tensor = TorchSharp.torch.Tensor;

namespace Transformers.ML.Tests.Onnx;

/// <summary>The GPT exported in ONNX Runtime GenAI's layout, generated from by Microsoft.ML.OnnxRuntimeGenAI itself.</summary>
[TestClass]
public sealed class GenAiTests
{
    [TestMethod]
    public void OnnxRuntimeGenAIGreedyTokensEqualOurs()
    {
        using TextGenerationTransformer model = LoadBpeModel();
        foreach (bool shared in new[] { false, true })
        {
            GenAiMatches(model, shared);
        }
    }

    /// <summary>
    /// Two prompts of different lengths in one GenAI batch, both cache layouts: GenAI pads the shorter on the right with the
    /// pad token and marks it 0 in attention_mask, which the graph reads for the keys it blocks and the positions it counts;
    /// each row's greedy tokens are ours alone (GenAI's max_length counts the padded width, so the shorter row gets fewer).
    /// With the graph counting the padding in the short row's positions this fails (and passed with the model of 20 batches).
    /// GenAI's pad token is our end of text, and the short prompt holds one between two documents: GenAI (0.18 to 0.20)
    /// takes the padding from the lengths, not the token's id, so that end of text is a token of the prompt, as it is to us.
    /// </summary>
    [TestMethod]
    public void AGenAIBatchOfPromptsOfDifferentLengthsGivesEachRowItsTokensAlone()
    {
        using TextGenerationTransformer model = LoadBpeModel();
        const string endOfText = "<|endoftext|>"; // GenAI's tokenizer reads the special token from tokenizer.json
        string[] texts = { "ROMEO:" + endOfText + "\nWhat light", "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is" };
        int[] first = model.Tokenizer.Encode("ROMEO:").Append(model.Tokenizer.EndOfTextId).Concat(model.Tokenizer.Encode("\nWhat light")).ToArray();
        int[][] prompts = { first, model.Tokenizer.Encode(texts[1]).ToArray() };
        using var stepper = new TorchCausalStepper(model.Model, CPU);
        // The check can fail: read as padding, the end of text would drop out of the prompt (blocked as a key, skipped by
        // the positions), which gives other tokens.
        var settings = new DecodingSettings { MaxNewTokens = 12, EndOfTextId = model.Tokenizer.EndOfTextId };
        CollectionAssert.AreNotEqual(CausalDecoding.Generate(stepper, new[] { first }, settings)[0],
            CausalDecoding.Generate(stepper, new[] { first.Where(t => t != model.Tokenizer.EndOfTextId).ToArray() }, settings)[0]);
        foreach (bool shared in new[] { false, true })
        {
            string folder = TestUtil.TempPath("-genai-batch");
            model.ExportToOnnxRuntimeGenAI(folder, new OnnxExportOptions { SharedCacheBuffers = shared });
            using var oga = new OgaHandle();
            using var genAi = new GenAiModel(folder);
            using var parameters = new GeneratorParams(genAi);
            parameters.SetSearchOption("max_length", model.Model.ContextLength);
            parameters.SetSearchOption("do_sample", false);
            parameters.SetSearchOption("batch_size", 2);
            using var batch = new GenAiGenerator(genAi, parameters);
            using var tokenizer = new Tokenizer(genAi);
            using Sequences both = tokenizer.EncodeBatch(texts);
            batch.AppendTokenSequences(both);
            while (!batch.IsDone())
            {
                batch.GenerateNextToken();
            }
            for (int row = 0; row < 2; row++)
            {
                int[] sequence = batch.GetSequence((ulong)row).ToArray();
                CollectionAssert.AreEqual(prompts[row], sequence[..prompts[row].Length]);
                List<int> batched = sequence[prompts[1].Length..].TakeWhile(t => t != model.Tokenizer.EndOfTextId).ToList();
                List<int> alone = CausalDecoding.Generate(stepper, new[] { prompts[row] },
                    new DecodingSettings { MaxNewTokens = batched.Count, EndOfTextId = model.Tokenizer.EndOfTextId })[0];
                Assert.IsGreaterThan(5, batched.Count);
                Assert.IsGreaterThan(3, alone.Distinct().Count(), $"a model whose text varies: {model.Tokenizer.Decode(alone)}");
                CollectionAssert.AreEqual(alone, batched, $"shared buffers {shared}, GenAI batch row {row}; ours: {model.Tokenizer.Decode(alone)} | GenAI: {model.Tokenizer.Decode(batched)}");
            }
        }
    }

    /// <summary>
    /// An int8 export (both kinds): GenAI, which leaves logits_to_keep out, and our ONNX Runtime loop, which feeds 1, run the same graph
    /// and pick the same greedy tokens, past a 20-token prompt (that the kept scores are bit for bit every position's is
    /// OnnxExportTests' check; here the two loops agree end to end).
    /// </summary>
    [TestMethod]
    public void OnAnInt8ExportGenAIPicksTheTokensOfOurOnnxRuntimeLoop()
    {
        using TextGenerationTransformer model = LoadBpeModel();
        int[] prompt = model.Tokenizer.Encode("ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and").ToArray();
        var settings = new DecodingSettings { MaxNewTokens = model.Model.ContextLength - prompt.Length, EndOfTextId = model.Tokenizer.EndOfTextId };
        foreach ((bool shared, OnnxQuantization quantization) in new[]
        {
            (false, OnnxQuantization.DynamicInt8), (true, OnnxQuantization.DynamicInt8), (false, OnnxQuantization.DynamicInt8PerRow), (true, OnnxQuantization.DynamicInt8PerRow),
        })
        {
            string folder = TestUtil.TempPath("-genai-int8");
            model.ExportToOnnxRuntimeGenAI(folder, new OnnxExportOptions { SharedCacheBuffers = shared, Quantization = quantization });
            List<int> ours;
            using (OnnxTextGenerator generator = OnnxTextGenerator.Load(Path.Combine(folder, GenAiExport.ModelFile)))
            {
                ours = generator.GenerateTokens(new[] { prompt }, settings)[0];
            }
            using var oga = new OgaHandle();
            using var genAi = new GenAiModel(folder);
            using var parameters = new GeneratorParams(genAi);
            parameters.SetSearchOption("max_length", model.Model.ContextLength);
            parameters.SetSearchOption("do_sample", false);
            using var genAiGenerator = new GenAiGenerator(genAi, parameters);
            List<int> theirs = Generate(genAiGenerator, prompt, model.Tokenizer.EndOfTextId);
            Assert.IsGreaterThan(5, ours.Count);
            CollectionAssert.AreEqual(ours, theirs, $"{quantization}, shared buffers {shared}; ours: {model.Tokenizer.Decode(ours)} | GenAI: {model.Tokenizer.Decode(theirs)}");
        }
    }

    [TestMethod]
    public void TheSearchSectionIsTheModelsGenerationSettings()
    {
        JsonObject greedy = GenAiExport.Search(new GenerationOptions { Temperature = 0, TopK = 40, RepetitionPenalty = 1.2 }, 256, sharedBuffers: false);
        Assert.IsFalse(greedy["do_sample"]!.GetValue<bool>());
        Assert.AreEqual(1, greedy["top_k"]!.GetValue<int>(), "GenAI's greedy choice");
        Assert.AreEqual(1.0, greedy["temperature"]!.GetValue<double>(), "GenAI rejects a temperature of 0");
        Assert.AreEqual(1.2, greedy["repetition_penalty"]!.GetValue<double>());
        Assert.AreEqual(-1, greedy["random_seed"]!.GetValue<int>(), "no seed: a fresh one per Generator");
        Assert.AreEqual(256, greedy["max_length"]!.GetValue<int>());
        Assert.IsFalse(greedy["past_present_share_buffer"]!.GetValue<bool>());

        var options = new GenerationOptions { Temperature = 0.7, TopK = 40, TopP = 0.9, RepetitionPenalty = 1.1, NoRepeatNgramSize = 3, Seed = 5 };
        JsonObject sampled = GenAiExport.Search(options, 128, sharedBuffers: true);
        Assert.IsTrue(sampled["do_sample"]!.GetValue<bool>());
        Assert.AreEqual(0.7, sampled["temperature"]!.GetValue<double>());
        Assert.AreEqual(40, sampled["top_k"]!.GetValue<int>());
        Assert.AreEqual(0.9, sampled["top_p"]!.GetValue<double>());
        Assert.AreEqual(1.1, sampled["repetition_penalty"]!.GetValue<double>());
        Assert.AreEqual(3, sampled["no_repeat_ngram_size"]!.GetValue<int>());
        Assert.AreEqual(5, sampled["random_seed"]!.GetValue<int>());
        Assert.IsTrue(sampled["past_present_share_buffer"]!.GetValue<bool>());

        options.TopP = 1.5;
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => GenAiExport.Search(options, 128, sharedBuffers: false));
    }

    /// <summary>
    /// A Generator made without search options decodes with the model's saved settings: the repetition penalty of greedy
    /// decoding gives our tokens, so does the ban on repeated n-grams, and sampling with a seed draws the same text twice,
    /// only among our top k, not all greedy.
    /// </summary>
    [TestMethod]
    public void OnnxRuntimeGenAIDecodesWithTheModelsSavedSettings()
    {
        using TextGenerationTransformer model = LoadBpeModel();
        int[] prompt = model.Tokenizer.Encode("ROMEO:\nWhat light").ToArray();
        int endOfText = model.Tokenizer.EndOfTextId;
        using var stepper = new TorchCausalStepper(model.Model, CPU);
        using var oga = new OgaHandle();

        model.Generation.Temperature = 0;
        model.Generation.RepetitionPenalty = 1.5;
        List<int> plain = CausalDecoding.Generate(stepper, new[] { prompt }, new DecodingSettings { MaxNewTokens = model.Model.ContextLength - prompt.Length, EndOfTextId = endOfText })[0];
        List<int> ours = CausalDecoding.Generate(stepper, new[] { prompt }, model.Generation.ToDecodingSettings(endOfText) with { MaxNewTokens = model.Model.ContextLength - prompt.Length })[0];
        CollectionAssert.AreNotEqual(plain, ours, "the penalty changes this model's greedy text");
        CollectionAssert.AreEqual(ours, GenerateFromConfig(model, prompt), $"ours: {model.Tokenizer.Decode(ours)}");

        // GenAI applies no_repeat_ngram_size since 0.20 (0.18 read it and ignored it): its greedy tokens are ours.
        model.Generation.RepetitionPenalty = 1.0;
        model.Generation.NoRepeatNgramSize = 2;
        List<int> noRepeat = CausalDecoding.Generate(stepper, new[] { prompt }, model.Generation.ToDecodingSettings(endOfText) with { MaxNewTokens = model.Model.ContextLength - prompt.Length })[0];
        CollectionAssert.AreNotEqual(plain, noRepeat, "banning repeated pairs changes this model's greedy text");
        CollectionAssert.AreEqual(noRepeat, GenerateFromConfig(model, prompt), $"ours: {model.Tokenizer.Decode(noRepeat)}");
        model.Generation.NoRepeatNgramSize = 0;

        model.Generation.Temperature = 0.9;
        model.Generation.TopK = 5;
        model.Generation.RepetitionPenalty = 1.0;
        model.Generation.Seed = 11;
        List<int> first = GenerateFromConfig(model, prompt);
        CollectionAssert.AreEqual(first, GenerateFromConfig(model, prompt), "random_seed from the config");
        int[] sequence = prompt.Concat(first).ToArray();
        using (no_grad())
        {
            using Tensor ids = tensor(sequence.Select(t => (long)t).ToArray(), new long[] { 1, sequence.Length });
            using Tensor logits = model.Model.Forward(ids);
            int notGreedy = 0;
            for (int i = 0; i < first.Count; i++)
            {
                float[] row = logits[0, prompt.Length - 1 + i].data<float>().ToArray();
                int rank = row.Count(v => v > row[first[i]]);
                Assert.IsLessThan(5, rank, $"token {i} ({first[i]}) ranks {rank} among our logits; top-k is 5");
                notGreedy += rank > 0 ? 1 : 0;
            }
            Assert.IsGreaterThan(0, notGreedy, "do_sample from the config: some tokens are not the most likely");
        }
    }

    /// <summary>GenAI's tokens from a fresh export of <paramref name="model"/>, with no search option but max_length.</summary>
    private static List<int> GenerateFromConfig(TextGenerationTransformer model, int[] prompt)
    {
        string folder = TestUtil.TempPath("-genai-settings");
        model.ExportToOnnxRuntimeGenAI(folder);
        using var genAi = new GenAiModel(folder);
        using var parameters = new GeneratorParams(genAi);
        parameters.SetSearchOption("max_length", model.Model.ContextLength);
        using var generator = new GenAiGenerator(genAi, parameters);
        return Generate(generator, prompt, model.Tokenizer.EndOfTextId);
    }

    /// <summary>
    /// A model with GPT-2's own vocabulary (an imported or fine-tuned GPT-2): vocab.json, merges.txt and tokenizer.json are
    /// GPT-2's, recovered from the tiktoken table, and GenAI's tokenizer reads them into our ids.
    /// </summary>
    [TestMethod]
    public void GenAIsTokenizerReadsGpt2sVocabularyFromOurFiles()
    {
        var ml = new MLContext(seed: 1);
        TextGenerationOptions options = TextGenerationTests.Tiny();
        options.Tokenizer = TokenizerKind.Gpt2;
        options.Epochs = 1;
        options.BatchesPerEpoch = 2;
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, TestData.ShakespeareHead[..5_000]));
        Assert.AreEqual(TokenizerKind.Gpt2, model.TokenizerKind);
        string folder = TestUtil.TempPath("-genai-gpt2");
        model.ExportToOnnxRuntimeGenAI(folder);
        string[] merges = File.ReadAllLines(Path.Combine(folder, "merges.txt"));
        Assert.AreEqual("#version: 0.2", merges[0]);
        Assert.AreEqual(50_001, merges.Length, "GPT-2's 50,000 merges");
        Assert.AreEqual("Ġ t", merges[1], "GPT-2's first merge");
        var vocabulary = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(folder, "vocab.json")))!;
        Assert.AreEqual(50_257, vocabulary.Count);
        Assert.AreEqual(50_256, vocabulary["<|endoftext|>"]);
        Assert.AreEqual(464, vocabulary["The"]);
        // The recovered tables, as a BPE of their own, encode a longer text as GPT-2's tiktoken tokenizer does.
        string shakespeare = TestData.ShakespeareHead[..40_000];
        var recovered = Transformers.ML.Core.Tokenization.ByteLevelBpe.Create(vocabulary.Where(p => p.Key != "<|endoftext|>").ToDictionary(), merges[1..]);
        CollectionAssert.AreEqual(model.Tokenizer.Encode(shakespeare).ToArray(), recovered.EncodeToIds(shakespeare).ToArray(), "40,000 characters of Shakespeare");

        AssertGenAiTokenizerEncodesAsOurs(folder, model, "ROMEO:\nBut soft, what light through yonder window breaks?", "  Two spaces, tabs\tand é, ü, 東京, emoji 🙂 -- it's 1,234.5!\n\nEnd");
    }

    /// <summary>
    /// A tiny GPT with a byte-level BPE of 400 tokens, trained on Shakespeare for 250 batches, once per test run (each
    /// caller loads a copy of its own): with 20 batches it answered every prompt with newlines, against which "GenAI's
    /// tokens equal ours" held whatever the graph did with positions; now its greedy text varies with the prompt and a
    /// positions mistake fails the batch test.
    /// </summary>
    private static readonly Lazy<string> BpeModel = TestUtil.TrainedOnce((ml, path) =>
    {
        TextGenerationOptions options = TextGenerationTests.Tiny();
        options.Tokenizer = TokenizerKind.BytePairEncoding;
        options.VocabularySize = 400;
        options.Epochs = 1;
        options.BatchesPerEpoch = 250;
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, TestData.ShakespeareHead[..40_000]));
        model.Save(path);
    });

    private static TextGenerationTransformer LoadBpeModel() => new MLContext(seed: 1).Transformers().LoadTextGeneration(BpeModel.Value);

    /// <summary>GenAI's Tokenizer over the exported <paramref name="folder"/> encodes each text into our ids and decodes them back.</summary>
    private static void AssertGenAiTokenizerEncodesAsOurs(string folder, TextGenerationTransformer model, params string[] texts)
    {
        using var oga = new OgaHandle();
        using var genAi = new GenAiModel(folder);
        using var tokenizer = new Tokenizer(genAi);
        foreach (string text in texts)
        {
            using Sequences ids = tokenizer.Encode(text);
            int[] encoded = ids[0].ToArray();
            CollectionAssert.AreEqual(model.Tokenizer.Encode(text).ToArray(), encoded, $"GenAI's tokenizer on '{text}'");
            Assert.AreEqual(text, tokenizer.Decode(encoded));
        }
    }

    /// <summary>The export (with or without shared cache buffers) generates our greedy tokens in ONNX Runtime GenAI.</summary>
    private static void GenAiMatches(TextGenerationTransformer model, bool shared)
    {
        string folder = TestUtil.TempPath("-genai");
        model.ExportToOnnxRuntimeGenAI(folder, new OnnxExportOptions { SharedCacheBuffers = shared });
        foreach (string file in new[] { "model.onnx", "genai_config.json", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json" })
        {
            Assert.IsTrue(File.Exists(Path.Combine(folder, file)), file);
        }

        int[] prompt = model.Tokenizer.Encode("ROMEO:\nWhat light").ToArray();
        int newTokens = Math.Min(24, model.Model.ContextLength - prompt.Length);
        // GenAI's own tokenizer, from the files written beside the model, encodes as ours and decodes back.
        AssertGenAiTokenizerEncodesAsOurs(folder, model, "ROMEO:\nWhat light", "  Two spaces, tabs\tand é, ü, 東京, emoji 🙂.\n\nEnd");
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
        Assert.IsGreaterThan(3, ours.Distinct().Count(), $"a model whose text varies (not one token again and again): {model.Tokenizer.Decode(ours)}");
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

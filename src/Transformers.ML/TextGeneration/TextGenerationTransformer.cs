using System.Text.Json;
using TorchSharp;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.TextGeneration;

/// <summary>
/// A trained GPT-style language model as an ML.NET transformer: Transform adds a column with the completion of
/// each prompt (generated in batches), and the model generates, streams, saves and evaluates directly.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | prompt (<see cref="PromptColumnName"/>) | Text | input |
/// | completion (<see cref="TextToTextTransformer.OutputColumnName"/>) | Text | output: the generated continuation, without the prompt |
/// </remarks>
public sealed class TextGenerationTransformer : TextToTextTransformer, IDisposable
{
    internal const string Capability = "text-generation";
    /// <summary>
    /// Metadata key of <see cref="Generation"/> as JSON, in the model file and in the ONNX export (since 2026-12-07 there:
    /// <see cref="OnnxTextGenerator.Generation"/>).
    /// </summary>
    internal const string GenerationKey = "generation";
    private const string TransformBatchKey = "transform_batch_size";
    private readonly Action<string>? _log;

    internal TextGenerationTransformer(GptModel model, TextTokenizer tokenizer, Device device, string promptColumn, string outputColumn,
        GenerationOptions generation, int batchSize, Action<string>? log)
        : base(promptColumn, outputColumn, batchSize, "prompt", "LoadTextGeneration")
    {
        Model = model;
        Tokenizer = tokenizer;
        Device = device;
        Generation = generation;
        _log = log;
    }

    internal GptModel Model { get; }

    internal TextTokenizer Tokenizer { get; }

    internal Device Device { get; }

    /// <summary>The column of prompts that Transform reads.</summary>
    public string PromptColumnName => InputColumnName;

    /// <summary>How Transform and PredictionEngine generate (change its properties to change them).</summary>
    public GenerationOptions Generation { get; }

    /// <summary>The architecture of the model.</summary>
    public TransformerConfig Config => Model.Config.Clone();

    /// <summary>The tokenizer kind.</summary>
    public TokenizerKind TokenizerKind => Tokenizer.Kind;

    /// <summary>Tokens in the vocabulary.</summary>
    public int VocabularySize => Model.VocabularySize;

    /// <summary>Parameters of the model.</summary>
    public long ParameterCount => Model.parameters().Sum(p => p.numel());

    /// <summary>What training did: per-epoch reports (loss, validation loss, sample), when this model was trained in this process.</summary>
    public IReadOnlyList<TrainingProgress> EpochReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <summary>Every progress report of training (steps and epochs), when trained in this process: e.g. for <see cref="Charts.SaveTrainingCurves"/>.</summary>
    public IReadOnlyList<TrainingProgress> TrainingReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <summary>The completion of <paramref name="prompt"/> (without the prompt).</summary>
    public string Generate(string prompt, GenerationOptions? options = null) =>
        Generator().Generate(new[] { prompt }, options ?? Generation)[0];

    /// <summary>Completions of several prompts, generated in batches; in the order of the prompts.</summary>
    public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null) =>
        Generator().Generate(prompts, options ?? Generation, TransformBatchSize);

    /// <summary>The completion of <paramref name="prompt"/>, piece by piece as it is generated.</summary>
    public IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions? options = null, CancellationToken cancellation = default) =>
        Generator().GenerateStreaming(prompt, options ?? Generation, cancellation);

    /// <summary>
    /// The causal self-attention of the model over <paramref name="text"/> (at most a context window of it), per layer and
    /// head: row i is where token i looks among tokens 0..i. The tokens are the model's own (characters or BPE pieces).
    /// </summary>
    public AttentionWeights Attention(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        int[] ids = Tokenizer.Encode(text).TakeLast(Model.ContextLength).ToArray();
        if (ids.Length == 0)
        {
            throw new ArgumentException($"'{text}' gives no tokens.", nameof(text));
        }
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Model.eval();
        Tensor input = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length }, device: Device);
        string[] tokens = AttentionWeights.TokenTexts(Tokenizer, ids);
        return AttentionWeights.From("causal self-attention", tokens, tokens, Model.Attention(input));
    }

    /// <summary>
    /// Encodes <paramref name="documents"/> one at a time with this model's tokenizer, each after the end-of-text token
    /// (as llm.c's data scripts do), into token shards of at most <paramref name="tokensPerShard"/> tokens in
    /// <paramref name="folder"/>, named <c>{prefix}_000000.bin</c>, <c>{prefix}_000001.bin</c>, ... in llm.c's layout
    /// (<see cref="TokenShard"/>): a PyTorch script in llm.c's or nanoGPT's style reads them, together with the weights
    /// of <see cref="ExportToHuggingFace"/>. Memory holds one document, not a shard or the corpus. Returns the shards' paths.
    /// </summary>
    public IReadOnlyList<string> WriteTokenShards(IEnumerable<string> documents, string folder, int tokensPerShard = 100_000_000, string prefix = "train")
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokensPerShard, 2);
        AtomicFile.CreateFolder(folder, nameof(WriteTokenShards));
        using var shards = new TokenShardSet(folder, prefix, Tokenizer.VocabularySize, tokensPerShard);
        Span<int> separator = stackalloc int[] { Tokenizer.EndOfTextId };
        int row = 0;
        foreach (string document in documents)
        {
            if (document is null)
            {
                throw new ArgumentException($"Document {row} is null.", nameof(documents));
            }
            row++;
            if (document.Length == 0)
            {
                continue;
            }
            shards.Append(separator); // before each document, as llm.c's data scripts
            IReadOnlyList<int> ids = Tokenizer.Encode(document);
            shards.Append(ids as int[] ?? ids.ToArray());
        }
        return shards.Complete(atLeastOne: true).Select(s => s.Path).ToList();
    }

    /// <summary>Writes the model (configuration, tokenizer, weights) to one safetensors file, atomically.</summary>
    public void Save(string path)
    {
        var settings = new Dictionary<string, string>
        {
            ["columns"] = JsonSerializer.Serialize(new[] { PromptColumnName, OutputColumnName }),
            ["vocabulary_size"] = JsonSerializer.Serialize(VocabularySize),
            // Everything else that shapes Transform, so that a reloaded model completes prompts as this one does.
            [GenerationKey] = JsonSerializer.Serialize(Generation),
            [TransformBatchKey] = JsonSerializer.Serialize(TransformBatchSize),
        };
        ModelFile.Save(path, Capability, Model.Config.ToJson(), Tokenizer.Definition.ToJson(), Model, settings);
    }

    /// <summary>Reads a model written by <see cref="Save(string)"/>; a damaged file fails with an <see cref="InvalidDataException"/> that names it.</summary>
    internal static TextGenerationTransformer Load(string path, string device, Action<string>? log)
    {
        Device target = DeviceSelector.Resolve(device, allowCpuFallback: false, log);
        using ModelFileContents contents = ModelFile.Load(path, Capability);
        TransformerConfig config = contents.Parse("configuration", () => TransformerConfig.FromJson(contents.Config));
        TextTokenizer tokenizer = contents.Parse("tokenizer", () => TextTokenizer.FromModelFile(contents));
        int vocabulary = contents.Json("vocabulary_size", tokenizer.VocabularySize);
        string[] columns = contents.Json("columns", new[] { "Text", "GeneratedText" });
        GenerationOptions generation = contents.Json(GenerationKey, new TextGenerationOptions().Generation);
        int batch = contents.Json(TransformBatchKey, new TextGenerationOptions().TransformBatchSize);
        contents.Parse("settings", () =>
        {
            generation.Validate();
            return columns.Length == 2 && columns.All(c => !string.IsNullOrEmpty(c)) && batch is >= 1 and <= 1024 && vocabulary >= tokenizer.VocabularySize
                ? true
                : throw new FormatException($"columns [{string.Join(", ", columns)}], transform batch size {batch} or vocabulary size {vocabulary} out of range");
        });
        var model = new GptModel(config, vocabulary);
        ModelFile.LoadForInference(contents, model, target, d => model.Forward(tensor(new long[] { tokenizer.EndOfTextId }, new long[] { 1, 1 }, device: d)));
        return new TextGenerationTransformer(model, tokenizer, target, columns[0], columns[1], generation, batch, log);
    }

    /// <summary>
    /// Writes the model as a Hugging Face GPT-2 checkpoint (config.json, model.safetensors with GPT-2's names,
    /// the tokenizer; vocab.json, merges.txt and tokenizer.json for a byte-level BPE, learned or GPT-2's), so that PyTorch
    /// can continue from it.
    /// </summary>
    public void ExportToHuggingFace(string folder) => HuggingFaceGpt2.Export(Model, Tokenizer, folder);

    /// <summary>Reads a Hugging Face GPT-2 checkpoint folder.</summary>
    internal static TextGenerationTransformer ImportHuggingFace(string folder, string device, Action<string>? log)
    {
        Device target = DeviceSelector.Resolve(device, allowCpuFallback: false, log);
        (GptModel model, TextTokenizer tokenizer) = HuggingFaceGpt2.Import(folder);
        model.to(target);
        model.eval();
        return new TextGenerationTransformer(model, tokenizer, target, "Text", "GeneratedText", new TextGenerationOptions().Generation, 16, log);
    }

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose() => Model.Dispose();

    /// <summary>
    /// Exports the model to ONNX (opset 17) with its key/value cache: inputs input_ids (batch, sequence) and past_key_i /
    /// past_value_i (batch, heads, past, head_dim), the optional int64 scalar logits_to_keep (default 0: every position's
    /// logits; k: the last k positions', as Hugging Face's argument; the ONNX Runtime generator feeds 1) and the optional
    /// int64 attention_mask (batch, past + sequence), 1 at tokens and 0 at padding (default: no padding; the generator
    /// feeds it for a batch of prompts of different lengths); outputs logits and present_key_i / present_value_i. The tokenizer, configuration and generation settings
    /// (<see cref="Generation"/>, <see cref="OnnxTextGenerator.Generation"/>'s) are in the model's metadata:
    /// <see cref="OnnxTextGenerator.Load"/> needs no other file. Written atomically.
    /// </summary>
    public void ExportToOnnx(string path) => ExportToOnnx(path, new OnnxExportOptions());

    /// <summary>Exports the model to ONNX with <paramref name="options"/> (e.g. int8 weights, <see cref="OnnxExportOptions.Quantization"/>); see <see cref="ExportToOnnx(string)"/>.</summary>
    public void ExportToOnnx(string path, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        OnnxGraph.Save(GptOnnxExport.Build(Model, Tokenizer, options, generation: Generation), path);
    }

    /// <summary>
    /// Writes the model in the folder layout ONNX Runtime GenAI (Microsoft.ML.OnnxRuntimeGenAI) loads: model.onnx (the
    /// export of <see cref="ExportToOnnx(string)"/>), genai_config.json (a decoder-only model with separate key and value
    /// caches: the input and output names, sizes and end-of-text id), and for a byte-level BPE tokenizer (learned, or
    /// GPT-2's) vocab.json, merges.txt, tokenizer.json and tokenizer_config.json (GenAI's Tokenizer reads them and encodes
    /// as this model's tokenizer; a character tokenizer has no such files). GenAI generates up to the context length (it does not slide the window). With
    /// <see cref="OnnxExportOptions.SharedCacheBuffers"/> the config says past_present_share_buffer and GenAI writes the
    /// caches in place too. model.onnx requires attention_mask, which GenAI feeds: a GenAI batch of prompts of different
    /// lengths (padded on the right) gives each its tokens alone. The config's search section is <see cref="Generation"/>: greedy or sampled (do_sample),
    /// temperature, top-k, top-p, repetition penalty, no repeated n-grams and seed (random_seed), so that a Generator made without search options
    /// decodes as <see cref="Generate(string, GenerationOptions?)"/> does (GenAI's own random numbers, so not the same
    /// sampled text); SetSearchOption overrides them. GenAI has no min-p (<see cref="GenerationOptions.MinP"/>, 0.1 in
    /// a trained model's default settings, is not written: GenAI samples without it; GenAI 0.18 read no_repeat_ngram_size without applying it, 0.20 applies it);
    /// its min_length counts the prompt, so <see cref="GenerationOptions.MinNewTokens"/> is not written either (min_length is 0); stop strings are the caller's.
    /// </summary>
    public void ExportToOnnxRuntimeGenAI(string folder, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        GenAiExport.Write(this, folder, options ?? new OnnxExportOptions());
    }

    /// <summary>Exports the model to ONNX into a stream (see <see cref="ExportToOnnx(string)"/>).</summary>
    public void ExportToOnnx(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Google.Protobuf.MessageExtensions.WriteTo(GptOnnxExport.Build(Model, Tokenizer, generation: Generation), stream);
    }

    internal TextGenerator Generator() => new(Model, Tokenizer, Device, _log);

    private protected override IReadOnlyList<string> MapBatch(IReadOnlyList<string> inputs) =>
        Generator().Generate(inputs, Generation, TransformBatchSize);
}

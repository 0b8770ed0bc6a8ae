// Text generation with ONNX Runtime alone (no libtorch): the exported GPT graph with its key/value cache, the
// tokenizer from the model's metadata, and the same generation options, prompt cropping, sliding window, stop
// strings and end-of-text rule as the TorchSharp generator. Greedy output is identical to the TorchSharp model's.
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Transformers.ML.Core.Generation;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.TextGeneration;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.TextGeneration;

/// <summary>Generates text with a GPT model exported by <see cref="TextGenerationTransformer.ExportToOnnx(string)"/>, through ONNX Runtime.</summary>
public sealed class OnnxTextGenerator : IDisposable
{
    private readonly InferenceSession _session;
    private readonly TransformerConfig _config;
    private readonly bool _sharedBuffers;
    private readonly bool _keepsLastLogits;
    private readonly bool _takesPadding;
    private readonly bool _requiresMask;

    private OnnxTextGenerator(InferenceSession session, string source)
    {
        _session = session;
        IReadOnlyDictionary<string, string> metadata = OnnxModels.Metadata(session, source, TextGenerationTransformer.Capability);
        _config = TransformerConfig.FromJson(metadata["config"]);
        _sharedBuffers = OnnxSharedCache.IsShared(metadata);
        // Exports before logits_to_keep project every position; they still generate the same tokens.
        _keepsLastLogits = HasInput(session, GptOnnxExport.LogitsToKeep);
        // A concatenated-cache graph with attention_mask takes left-padded batches; a shared-buffer graph right-padded ones
        // when its positions follow the mask (exports before either decode prompts of one length at a time). GenAI's
        // folder requires the mask, ExportToOnnx's has a default.
        _takesPadding = _sharedBuffers
            ? metadata.TryGetValue(GptOnnxExport.PositionsMetadataKey, out string? positions) && positions == GptOnnxExport.PositionsFromMask
            : HasInput(session, GptOnnxExport.AttentionMask);
        _requiresMask = !_sharedBuffers && _takesPadding && !session.OverridableInitializerMetadata.ContainsKey(GptOnnxExport.AttentionMask);
        Tokenizer = TextTokenizer.FromDefinition(TokenizerDefinition.FromJson(metadata["tokenizer"], source), source);
        Generation = metadata.TryGetValue(TextGenerationTransformer.GenerationKey, out string? generation) ? ReadGeneration(generation, source) : new GenerationOptions();
    }

    private static GenerationOptions ReadGeneration(string json, string source)
    {
        try
        {
            GenerationOptions options = System.Text.Json.JsonSerializer.Deserialize<GenerationOptions>(json)
                ?? throw new FormatException("null");
            options.Validate();
            return options;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"'{source}' has unreadable generation settings (metadata '{TextGenerationTransformer.GenerationKey}'): {e.Message}", e);
        }
    }

    /// <summary>
    /// How <see cref="Generate(string, GenerationOptions?)"/> and <see cref="GenerateStreaming"/> generate when given no
    /// options: the exported model's own settings (<see cref="TextGenerationTransformer.Generation"/>: the same seed and
    /// rules give the same text as the TorchSharp model's Generate), or <see cref="GenerationOptions"/>' defaults for an
    /// export from before 2026-12-07, which did not carry them. Change them here, or pass options to a call.
    /// </summary>
    public GenerationOptions Generation { get; }

    private static bool HasInput(InferenceSession session, string name) =>
        session.OverridableInitializerMetadata.ContainsKey(name) || session.InputMetadata.ContainsKey(name);

    /// <summary>Loads an exported GPT model with every ONNX Runtime graph optimisation on.</summary>
    /// <param name="sessionOptions">ONNX Runtime options (threads, execution provider); null: all optimisations, default threads.</param>
    public static OnnxTextGenerator Load(string path, SessionOptions? sessionOptions = null)
    {
        InferenceSession session = OnnxModels.Session(path, sessionOptions);
        try
        {
            return new OnnxTextGenerator(session, path);
        }
        catch
        {
            session.Dispose(); // a file this generator cannot read leaves no session behind
            throw;
        }
    }

    internal TextTokenizer Tokenizer { get; }

    /// <summary>Tokens the model sees at once.</summary>
    public int ContextLength => _config.MaxSequenceLength;

    /// <summary>The completion of <paramref name="prompt"/>.</summary>
    public string Generate(string prompt, GenerationOptions? options = null) => Generate(new[] { prompt }, options)[0];

    /// <summary>
    /// Completions of <paramref name="prompts"/>, in order, in padded batches of up to <paramref name="maxBatch"/> prompts
    /// of similar token length (an export from before attention_mask batches prompts of one token length).
    /// </summary>
    /// <remarks>The decoding loop and the rules (<see cref="GenerationOptions"/>) are the TorchSharp model's: greedy text is identical, and so is sampled text for the same <see cref="GenerationOptions.Seed"/>.</remarks>
    public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null, int maxBatch = 16)
    {
        options ??= Generation;
        return TextGenerator.Generate(Tokenizer, ContextLength, prompts, options, maxBatch, null, () => NewStepper(options.UseKeyValueCache), _takesPadding);
    }

    /// <summary>The completion of <paramref name="prompt"/>, piece by piece as its tokens are chosen (on a worker thread).</summary>
    /// <remarks>The pieces together are <see cref="Generate(string, GenerationOptions?)"/>'s text; text that ends inside a character or could still grow into a stop string is held back until it cannot. As the TorchSharp model's <see cref="TextGenerationTransformer.GenerateStreaming"/>.</remarks>
    public IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions? options = null, CancellationToken cancellation = default)
    {
        options ??= Generation;
        return TextGenerator.GenerateStreaming(Tokenizer, ContextLength, prompt, options, null, () => NewStepper(options.UseKeyValueCache), cancellation);
    }

    /// <summary>
    /// How well the exported model predicts <paramref name="documents"/>: cross-entropy per token, perplexity and bits per
    /// character over the same consecutive windows of the context as <see cref="TransformersCatalog.EvaluateTextGeneration(TextGenerationTransformer, Microsoft.ML.IDataView, string)"/>
    /// on the TorchSharp model, so that an export (int8, say) can be checked against the model it came from.
    /// </summary>
    public TextGenerationMetrics Evaluate(IReadOnlyList<string> documents)
    {
        using var run = new RunOptions();
        // logits_to_keep = 0: every position's scores, whatever the graph's default.
        using OrtValue? every = LogitsToKeep(0);
        OnnxSharedCache? shared = _sharedBuffers ? new OnnxSharedCache(_session, _config, 1, ContextLength) : null;
        using OnnxKeyValueCache? empty = _sharedBuffers ? null : new OnnxKeyValueCache(_config, 1); // every window's empty past
        try
        {
            if (shared is not null && every is not null)
            {
                shared.BindFixed(GptOnnxExport.LogitsToKeep, every);
            }
            return TextGenerationMetrics.Compute(Tokenizer, ContextLength, documents, (input, target) =>
            {
                if (shared is not null)
                {
                    shared.Reset();
                    return shared.Step(GptOnnxExport.InputIds, input, input.Length, GptOnnxExport.Logits, scores => NegativeLogLikelihood(scores, target));
                }
                using OrtValue ids = OrtValue.CreateTensorValueFromMemory(input, new long[] { 1, input.Length });
                using OrtValue? mask = _requiresMask ? OrtValue.CreateTensorValueFromMemory(AttentionMask(1, input.Length, _ => (0, 0)), new long[] { 1, input.Length }) : null;
                var names = new List<string> { GptOnnxExport.InputIds };
                var values = new List<OrtValue> { ids };
                if (mask is not null)
                {
                    names.Add(GptOnnxExport.AttentionMask);
                    values.Add(mask);
                }
                if (every is not null)
                {
                    names.Add(GptOnnxExport.LogitsToKeep);
                    values.Add(every);
                }
                empty!.AddInputs(names, values);
                using IDisposableReadOnlyCollection<OrtValue> outputs = _session.Run(run, names, values, new[] { GptOnnxExport.Logits });
                return NegativeLogLikelihood(outputs[0], target);
            });
        }
        finally
        {
            shared?.Dispose();
        }
    }

    /// <summary>The summed -log softmax(scores[0, t])[target[t]] over the positions t of one row's (1, T, V) scores.</summary>
    private static double NegativeLogLikelihood(OrtValue scores, long[] target)
    {
        long[] shape = scores.GetTensorTypeAndShape().Shape;
        int vocabulary = (int)shape[2];
        if (shape[0] != 1 || shape[1] != target.Length)
        {
            throw new InvalidOperationException($"Expected the scores of 1 x {target.Length} positions; the graph gave [{string.Join(", ", shape)}].");
        }
        ReadOnlySpan<float> flat = scores.GetTensorDataAsSpan<float>();
        double sum = 0;
        for (int t = 0; t < target.Length; t++)
        {
            ReadOnlySpan<float> row = flat.Slice(t * vocabulary, vocabulary);
            float max = System.Numerics.Tensors.TensorPrimitives.Max(row);
            double total = 0;
            foreach (float v in row)
            {
                total += Math.Exp(v - max);
            }
            sum += max + Math.Log(total) - row[(int)target[t]];
        }
        return sum;
    }

    /// <summary>The new tokens of each prompt (of different lengths where the graph takes attention_mask), without the end-of-text token.</summary>
    internal List<int>[] GenerateTokens(IReadOnlyList<IReadOnlyList<int>> prompts, DecodingSettings settings, bool useCache = true)
    {
        using ICausalStepper stepper = NewStepper(useCache);
        return CausalDecoding.Generate(stepper, prompts, settings);
    }

    /// <summary>
    /// The logits_to_keep value <paramref name="count"/> (1: the steps need the last position's scores only; 0: every
    /// position's); null for a graph without the input, which gives every position's.
    /// </summary>
    private OrtValue? LogitsToKeep(long count) =>
        _keepsLastLogits ? OrtValue.CreateTensorValueFromMemory(new[] { count }, Array.Empty<long>()) : null;

    /// <summary>The stepper for the graph's cache layout (a shared-buffer graph always keeps its cache).</summary>
    private ICausalStepper NewStepper(bool useCache) => _sharedBuffers ? new SharedBufferStepper(this) : new Stepper(this, useCache);

    /// <summary>
    /// The exported graph as a stepper of the shared decoding loop: input_ids and the past keys/values in, logits and the
    /// presents out, all as ONNX Runtime values; the presents become the next step's pasts without a copy.
    /// </summary>
    private sealed class Stepper(OnnxTextGenerator owner, bool useCache) : ICausalStepper
    {
        private readonly OrtValue? _lastOnly = owner.LogitsToKeep(1);
        private OnnxKeyValueCache? _cache;

        public int ContextLength => owner.ContextLength;

        public bool HasCache => useCache;

        public int CachedLength => _cache?.Length ?? 0;

        public bool AcceptsPadding => owner._takesPadding;

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int>? leftPadding = null)
        {
            int rows = ids.Count, length = ids[0].Count;
            if (_cache is null || !useCache)
            {
                _cache?.Dispose();
                _cache = new OnnxKeyValueCache(owner._config, rows);
            }
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(CausalDecoding.Flatten(ids), new long[] { rows, length });
            var names = new List<string> { GptOnnxExport.InputIds };
            var values = new List<OrtValue> { input };
            if (_lastOnly is not null)
            {
                names.Add(GptOnnxExport.LogitsToKeep);
                values.Add(_lastOnly);
            }
            int total = _cache.Length + length;
            using OrtValue? mask = leftPadding is null && !owner._requiresMask ? null
                : OrtValue.CreateTensorValueFromMemory(AttentionMask(rows, total, r => (0, leftPadding?[r] ?? 0)), new long[] { rows, total });
            if (mask is not null)
            {
                names.Add(GptOnnxExport.AttentionMask);
                values.Add(mask);
            }
            return _cache.Step(owner._session, names, values, GptOnnxExport.Logits);
        }

        public void ResetCache()
        {
            _cache?.Dispose();
            _cache = null;
        }

        public void Dispose()
        {
            ResetCache();
            _lastOnly?.Dispose();
        }
    }

    /// <summary>
    /// An attention_mask (rows x total, row-major): ones, but zeros at each row's padding, the slots [From, To) that
    /// <paramref name="padding"/> gives for the row (left padding: from 0; right padding: after the row's tokens).
    /// </summary>
    private static long[] AttentionMask(int rows, int total, Func<int, (int From, int To)> padding)
    {
        var mask = new long[rows * total];
        Array.Fill(mask, 1L);
        for (int r = 0; r < rows; r++)
        {
            (int from, int to) = padding(r);
            Array.Clear(mask, r * total + from, to - from);
        }
        return mask;
    }

    /// <summary>
    /// A graph exported with <see cref="OnnxExportOptions.SharedCacheBuffers"/>: the keys and values of the whole context live
    /// in one buffer per layer and kind (<see cref="OnnxSharedCache"/>), which ONNX Runtime writes in place, so nothing is
    /// copied from step to step. A reset only rewinds the length; the buffers are reused.
    /// </summary>
    /// <remarks>
    /// GroupQueryAttention writes each row's new keys at that row's own length (attention_mask's ones), so a batch of
    /// prompts of different lengths goes in padded on the right, as ONNX Runtime GenAI pads it: the loop's left-padded
    /// rows are turned around, the prompt step reads each row's scores at its last token, and every later step's mask
    /// keeps the hole the padding left (the graph counts positions over the ones).
    /// </remarks>
    private sealed class SharedBufferStepper(OnnxTextGenerator owner) : ICausalStepper
    {
        private readonly OrtValue? _lastOnly = owner.LogitsToKeep(1);
        private readonly OrtValue? _every = owner.LogitsToKeep(0);
        private OnnxSharedCache? _cache;
        private int[]? _tokens; // after a padded prompt step: per row, the prompt's tokens before its padding; else null
        private int _width;     // that step's length: each row's padding runs from its tokens to here

        public int ContextLength => owner.ContextLength;

        public bool HasCache => true;

        public int CachedLength => _cache?.Length ?? 0;

        public bool AcceptsPadding => owner._takesPadding;

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int>? leftPadding = null)
        {
            if (leftPadding is not null && !owner._takesPadding)
            {
                throw new ArgumentException("This shared-buffer graph (exported before its positions followed attention_mask) decodes prompts of one length at a time.", nameof(leftPadding));
            }
            int rows = ids.Count, length = ids[0].Count;
            if (_cache is null || rows != _cache.Rows)
            {
                _cache?.Dispose();
                _cache = null; // so that a failed allocation below leaves no disposed cache behind
                _cache = new OnnxSharedCache(owner._session, owner._config, rows, ContextLength);
                if (_lastOnly is not null)
                {
                    _cache.BindFixed(GptOnnxExport.LogitsToKeep, _lastOnly);
                }
            }
            if (_cache.Length == 0)
            {
                _tokens = null;
                if (leftPadding is not null)
                {
                    return RightPaddedPrompt(ids, leftPadding);
                }
            }
            // After a padded prompt, each row's mask keeps the hole its padding left (null: ones).
            long[]? mask = _tokens is null ? null : AttentionMask(rows, _cache.Length + length, r => (_tokens[r], _width));
            return _cache.Step(GptOnnxExport.InputIds, CausalDecoding.Flatten(ids), length, GptOnnxExport.Logits, OnnxKeyValueCache.LastPosition, mask);
        }

        /// <summary>The prompt step of a padded batch: each row's tokens first, its padding after; its scores at its last token.</summary>
        private float[][] RightPaddedPrompt(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int> leftPadding)
        {
            int rows = ids.Count, length = ids[0].Count;
            var flat = new long[rows * length];
            int[] tokens = leftPadding.Select(pad => length - pad).ToArray();
            for (int r = 0; r < rows; r++)
            {
                for (int t = 0; t < tokens[r]; t++)
                {
                    flat[r * length + t] = ids[r][leftPadding[r] + t];
                }
            }
            (_tokens, _width) = (tokens, length);
            if (_every is not null)
            {
                _cache!.BindFixed(GptOnnxExport.LogitsToKeep, _every); // every position's scores: the rows end at different ones
            }
            try
            {
                return _cache!.Step(GptOnnxExport.InputIds, flat, length, GptOnnxExport.Logits, scores =>
                {
                    int vocabulary = (int)scores.GetTensorTypeAndShape().Shape[2];
                    ReadOnlySpan<float> all = scores.GetTensorDataAsSpan<float>();
                    var last = new float[rows][];
                    for (int r = 0; r < rows; r++)
                    {
                        last[r] = all.Slice((r * length + tokens[r] - 1) * vocabulary, vocabulary).ToArray();
                    }
                    return last;
                }, AttentionMask(rows, length, r => (tokens[r], length)));
            }
            finally
            {
                if (_lastOnly is not null)
                {
                    _cache!.BindFixed(GptOnnxExport.LogitsToKeep, _lastOnly);
                }
            }
        }

        public void ResetCache()
        {
            _cache?.Reset();
            _tokens = null;
        }

        public void Dispose()
        {
            _cache?.Dispose();
            _lastOnly?.Dispose();
            _every?.Dispose();
        }
    }

    /// <summary>Frees the ONNX Runtime session.</summary>
    public void Dispose() => _session.Dispose();
}

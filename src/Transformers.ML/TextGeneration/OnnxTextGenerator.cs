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

    private OnnxTextGenerator(InferenceSession session, string source)
    {
        _session = session;
        IReadOnlyDictionary<string, string> metadata = OnnxModels.Metadata(session, source, TextGenerationTransformer.Capability);
        _config = TransformerConfig.FromJson(metadata["config"]);
        _sharedBuffers = metadata.TryGetValue("cache", out string? cache) && cache == GptOnnxExport.SharedCache;
        Tokenizer = TextTokenizer.FromDefinition(TokenizerDefinition.FromJson(metadata["tokenizer"], source), source);
    }

    /// <summary>Loads an exported GPT model with every ONNX Runtime graph optimisation on.</summary>
    /// <param name="sessionOptions">ONNX Runtime options (threads, execution provider); null: all optimisations, default threads.</param>
    public static OnnxTextGenerator Load(string path, SessionOptions? sessionOptions = null) =>
        new(OnnxModels.Session(path, sessionOptions), path);

    internal TextTokenizer Tokenizer { get; }

    /// <summary>Tokens the model sees at once.</summary>
    public int ContextLength => _config.MaxSequenceLength;

    /// <summary>The completion of <paramref name="prompt"/>.</summary>
    public string Generate(string prompt, GenerationOptions? options = null) => Generate(new[] { prompt }, options)[0];

    /// <summary>Completions of <paramref name="prompts"/>, in order; prompts of equal token length run together.</summary>
    /// <remarks>The decoding loop and the rules (<see cref="GenerationOptions"/>) are the TorchSharp model's: greedy text is identical, and so is sampled text for the same <see cref="GenerationOptions.Seed"/>.</remarks>
    public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null, int maxBatch = 16)
    {
        options ??= new GenerationOptions();
        return TextGenerator.Generate(Tokenizer, ContextLength, prompts, options, maxBatch, null, () => NewStepper(options.UseKeyValueCache));
    }

    /// <summary>The new tokens of each prompt (all of one length), without the end-of-text token.</summary>
    internal List<int>[] GenerateTokens(IReadOnlyList<IReadOnlyList<int>> prompts, DecodingSettings settings, bool useCache = true)
    {
        using ICausalStepper stepper = NewStepper(useCache);
        return CausalDecoding.Generate(stepper, prompts, settings);
    }

    /// <summary>The stepper for the graph's cache layout (a shared-buffer graph always keeps its cache).</summary>
    private ICausalStepper NewStepper(bool useCache) => _sharedBuffers ? new SharedBufferStepper(this) : new Stepper(this, useCache);

    /// <summary>
    /// The exported graph as a stepper of the shared decoding loop: input_ids and the past keys/values in, logits and the
    /// presents out, all as ONNX Runtime values; the presents become the next step's pasts without a copy.
    /// </summary>
    private sealed class Stepper(OnnxTextGenerator owner, bool useCache) : ICausalStepper
    {
        private OnnxKeyValueCache? _cache;

        public int ContextLength => owner.ContextLength;

        public bool HasCache => useCache;

        public int CachedLength => _cache?.Length ?? 0;

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids)
        {
            int rows = ids.Count, length = ids[0].Count;
            if (_cache is null || !useCache)
            {
                _cache?.Dispose();
                _cache = new OnnxKeyValueCache(owner._config, rows);
            }
            var flat = new long[rows * length];
            for (int r = 0; r < rows; r++)
            {
                for (int t = 0; t < length; t++)
                {
                    flat[r * length + t] = ids[r][t];
                }
            }
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(flat, new long[] { rows, length });
            return _cache.Step(owner._session, new List<string> { GptOnnxExport.InputIds }, new List<OrtValue> { input }, GptOnnxExport.Logits);
        }

        public void ResetCache()
        {
            _cache?.Dispose();
            _cache = null;
        }

        public void Dispose() => ResetCache();
    }

    /// <summary>
    /// A graph exported with <see cref="OnnxExportOptions.SharedCacheBuffers"/>: the keys and values of the whole context live
    /// in one buffer per layer and kind, bound through IOBinding as both past and present, so ONNX Runtime writes each step's
    /// keys in place and nothing is copied from step to step. A reset only rewinds the length; the buffers are reused.
    /// </summary>
    private sealed class SharedBufferStepper(OnnxTextGenerator owner) : ICausalStepper
    {
        private static readonly RunOptions StepOptions = new();
        private OrtValue[]? _buffers; // per layer: keys, values, each (rows, heads, context, head size)
        private OrtIoBinding? _binding; // the buffers bound once as past and present; each step rebinds its ids and mask
        private long[] _ones = Array.Empty<long>(); // rows x context ones: the attention mask is a prefix of it
        private int _rows;

        public int ContextLength => owner.ContextLength;

        public bool HasCache => true;

        public int CachedLength { get; private set; }

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids)
        {
            int rows = ids.Count, length = ids[0].Count;
            if (_binding is null || rows != _rows)
            {
                Allocate(rows);
            }
            int total = CachedLength + length;
            if (total > ContextLength)
            {
                throw new InvalidOperationException($"A step of {length} tokens after {CachedLength} cached ones exceeds the context of {ContextLength}.");
            }
            var flat = new long[rows * length];
            for (int r = 0; r < rows; r++)
            {
                for (int t = 0; t < length; t++)
                {
                    flat[r * length + t] = ids[r][t];
                }
            }
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(flat, new long[] { rows, length });
            using OrtValue mask = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<long>(_ones, 0, rows * total), new long[] { rows, total });
            _binding!.BindInput(GptOnnxExport.InputIds, input);
            _binding.BindInput(GptOnnxExport.AttentionMask, mask);
            // Rebound at every step: bound once in Allocate, the greedy text no longer equals TorchSharp's (OnnxExportTests).
            _binding.BindOutputToDevice(GptOnnxExport.Logits, OrtMemoryInfo.DefaultInstance);
            owner._session.RunWithBinding(StepOptions, _binding);
            using IDisposableReadOnlyCollection<OrtValue> outputs = _binding.GetOutputValues();
            float[][] scores = OnnxKeyValueCache.LastPosition(outputs[outputs.Count - 1]); // bound last: the logits
            CachedLength = total;
            return scores;
        }

        public void ResetCache() => CachedLength = 0;

        public void Dispose() => Free();

        /// <summary>Buffers for <paramref name="rows"/> sequences of the whole context, bound as past and present.</summary>
        private void Allocate(int rows)
        {
            Free();
            TransformerConfig config = owner._config;
            _buffers = new OrtValue[2 * config.NumLayers];
            _binding = owner._session.CreateIoBinding();
            for (int i = 0; i < _buffers.Length; i++)
            {
                _buffers[i] = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float,
                    new long[] { rows, config.NumHeads, ContextLength, i % 2 == 0 ? config.HeadKeyDimension : config.HeadValueDimension });
                int layer = i / 2;
                _binding.BindInput(i % 2 == 0 ? OnnxKeyValueCache.PastKey(layer) : OnnxKeyValueCache.PastValue(layer), _buffers[i]);
                _binding.BindOutput(i % 2 == 0 ? OnnxKeyValueCache.PresentKey(layer) : OnnxKeyValueCache.PresentValue(layer), _buffers[i]);
            }
            _ones = new long[rows * ContextLength];
            Array.Fill(_ones, 1L);
            _rows = rows;
            CachedLength = 0;
        }

        private void Free()
        {
            _binding?.Dispose();
            _binding = null;
            foreach (OrtValue buffer in _buffers ?? Array.Empty<OrtValue>())
            {
                buffer.Dispose();
            }
            _buffers = null;
        }
    }

    /// <summary>Frees the ONNX Runtime session.</summary>
    public void Dispose() => _session.Dispose();
}

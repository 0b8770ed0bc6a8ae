// Text generation with ONNX Runtime alone (no libtorch): the exported GPT graph with its key/value cache, the
// tokenizer from the model's metadata, and the same generation options, prompt cropping, sliding window, stop
// strings and end-of-text rule as the TorchSharp generator. Greedy output is identical to the TorchSharp model's.
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.TextGeneration;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.TextGeneration;

/// <summary>Generates text with a GPT model exported by <see cref="TextGenerationTransformer.ExportToOnnx(string)"/>, through ONNX Runtime.</summary>
public sealed class OnnxTextGenerator : IDisposable
{
    private readonly InferenceSession _session;
    private readonly TransformerConfig _config;

    private OnnxTextGenerator(InferenceSession session, string source)
    {
        _session = session;
        IReadOnlyDictionary<string, string> metadata = OnnxModels.Metadata(session, source, TextGenerationTransformer.Capability);
        _config = TransformerConfig.FromJson(metadata["config"]);
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
    public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null, int maxBatch = 16)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        options ??= new GenerationOptions();
        options.Validate();
        var encoded = prompts.Select(p => TextGenerator.PromptIds(Tokenizer, ContextLength, p, options, null)).ToArray();
        var results = new string[prompts.Count];
        var sampler = new LogitsSampler(options);
        foreach (var group in Enumerable.Range(0, prompts.Count).GroupBy(i => encoded[i].Count))
        {
            foreach (int[] rows in group.Chunk(maxBatch))
            {
                List<int>[] tokens = GenerateTokens(rows.Select(r => (IReadOnlyList<int>)encoded[r]).ToList(), options, sampler);
                for (int i = 0; i < rows.Length; i++)
                {
                    results[rows[i]] = TextGenerator.Cut(Tokenizer.Decode(tokens[i]), options.StopStrings);
                }
            }
        }
        return results;
    }

    /// <summary>The new tokens of each prompt (all of one length), without the end-of-text token.</summary>
    internal List<int>[] GenerateTokens(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, LogitsSampler sampler)
    {
        int batch = prompts.Count;
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new bool[batch];
        int context = ContextLength;
        var cache = new OnnxKeyValueCache(_config, batch);
        List<int>[] input = sequences.Select(s => s.ToList()).ToArray();
        for (int step = 0; step < options.MaxNewTokens && !finished.All(f => f); step++)
        {
            if (cache.Length + input[0].Count > context)
            {
                // As the TorchSharp generator: restart the cache from the last three quarters of the window.
                cache = new OnnxKeyValueCache(_config, batch);
                int keep = Math.Min(sequences[0].Count, Math.Max(1, context * 3 / 4));
                input = sequences.Select(s => s.GetRange(s.Count - keep, keep)).ToArray();
            }
            int length = input[0].Count;
            var ids = new DenseTensor<long>(new[] { batch, length });
            for (int b = 0; b < batch; b++)
            {
                for (int t = 0; t < length; t++)
                {
                    ids[b, t] = input[b][t];
                }
            }
            var feeds = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor(GptOnnxExport.InputIds, ids) };
            cache.AddInputs(feeds);
            var next = new int[batch];
            using (IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = _session.Run(feeds))
            {
                var byName = results.ToDictionary(r => r.Name);
                float[][] last = OnnxKeyValueCache.LastPosition(byName["logits"].AsTensor<float>());
                for (int b = 0; b < batch; b++)
                {
                    next[b] = sampler.Next(last[b], sequences[b]);
                }
                cache.Update(byName);
            }
            for (int b = 0; b < batch; b++)
            {
                sequences[b].Add(next[b]);
                input[b] = new List<int> { next[b] };
                if (finished[b])
                {
                    continue;
                }
                if (next[b] == Tokenizer.EndOfTextId)
                {
                    finished[b] = true;
                    continue;
                }
                outputs[b].Add(next[b]);
                if (options.StopStrings.Count > 0 && TextGenerator.FindStop(Tokenizer.Decode(outputs[b]), options.StopStrings) >= 0)
                {
                    finished[b] = true;
                }
            }
        }
        return outputs;
    }

    /// <summary>Frees the ONNX Runtime session.</summary>
    public void Dispose() => _session.Dispose();
}

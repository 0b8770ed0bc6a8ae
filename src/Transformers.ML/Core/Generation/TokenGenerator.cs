// Autoregressive decoding for decoder-only models (nanoGPT's generate, with a key/value cache): feed the
// prompt once, then one token per step, each chosen greedily or sampled after the logits processors.
using TorchSharp;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Generation;

/// <summary>How to pick each next token; built from the user's options by the capability.</summary>
internal sealed record DecodingSettings
{
    public required int MaxNewTokens { get; init; }

    /// <summary>Take the most likely token (true) or sample from the processed distribution (false).</summary>
    public required bool Greedy { get; init; }

    public IReadOnlyList<ILogitsProcessor> Processors { get; init; } = Array.Empty<ILogitsProcessor>();

    /// <summary>Seed of the sampling generator; null draws from libtorch's global generator.</summary>
    public long? Seed { get; init; }

    /// <summary>A row ends when it emits this token (not included in its output); null never ends early.</summary>
    public int? EndOfTextId { get; init; }

    /// <summary>Reuse keys and values of earlier positions (true) or recompute the whole window each step.</summary>
    public bool UseCache { get; init; } = true;
}

internal sealed class TokenGenerator
{
    private readonly ICausalLanguageModel _model;
    private readonly Device _device;

    public TokenGenerator(ICausalLanguageModel model, Device device)
    {
        _model = model;
        _device = device;
    }

    /// <summary>
    /// Continues each prompt (all of the same length, at least one token). <paramref name="shouldStop"/> is asked
    /// after every token whether a row is done (e.g. a stop string appeared); <paramref name="onToken"/> sees every
    /// new token of every row as it is chosen (streaming). Returns the new tokens of each row, without the end-of-text token.
    /// </summary>
    public List<int>[] Generate(IReadOnlyList<IReadOnlyList<int>> prompts, DecodingSettings settings,
        Func<int, IReadOnlyList<int>, bool>? shouldStop = null, Action<int, int>? onToken = null)
    {
        int batch = prompts.Count;
        int length = prompts.Count == 0 ? 0 : prompts[0].Count;
        if (batch == 0 || length == 0 || prompts.Any(p => p.Count != length))
        {
            throw new ArgumentException("The generator needs at least one prompt, all of the same non-zero length.", nameof(prompts));
        }

        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new bool[batch];
        int context = _model.ContextLength;
        using var noGrad = no_grad();
        using var generator = settings.Seed is long seed ? new Generator((ulong)seed, _device) : null;
        KeyValueCache? cache = settings.UseCache ? _model.CreateCache() : null;
        try
        {
            Tensor all = tensor(prompts.SelectMany(p => p.Select(id => (long)id)).ToArray(), new long[] { batch, length }, device: _device);
            Tensor input = all.alias();
            for (int step = 0; step < settings.MaxNewTokens && !finished.All(f => f); step++)
            {
                using var scope = NewDisposeScope();
                Tensor logits;
                if (cache is not null)
                {
                    if (cache.Length + input.shape[1] > context)
                    {
                        // The window is full: start a new cache from the last three quarters of it, so that the
                        // re-encoding happens once every context/4 tokens instead of every token.
                        cache.Dispose();
                        cache = _model.CreateCache();
                        long keep = Math.Min(all.shape[1], Math.Max(1, context * 3 / 4));
                        Tensor window = all.narrow(1, all.shape[1] - keep, keep).MoveToOuterDisposeScope();
                        input.Dispose();
                        input = window;
                    }
                    logits = _model.Forward(input, cache).select(1, -1); // (B, V) at the last position
                }
                else
                {
                    long window = Math.Min(all.shape[1], context);
                    logits = _model.Forward(all.narrow(1, all.shape[1] - window, window)).select(1, -1);
                }

                if (!isfinite(logits).all().item<bool>())
                {
                    // Sampling would fail inside libtorch ("probability tensor contains inf or nan"); say why instead.
                    throw new InvalidOperationException(
                        $"The model's scores for the next token are not finite numbers (NaN or infinity) after {step} generated tokens: its weights are damaged or overflow on this input.");
                }
                foreach (ILogitsProcessor processor in settings.Processors)
                {
                    logits = processor.Process(logits, all);
                }
                Tensor next = settings.Greedy
                    ? logits.argmax(-1)
                    : multinomial(logits.softmax(-1), 1, false, generator).squeeze(1); // (B)

                Tensor grown = cat(new[] { all, next.unsqueeze(1) }, 1);
                all.Dispose();
                all = grown.MoveToOuterDisposeScope();
                input.Dispose();
                input = next.unsqueeze(1).MoveToOuterDisposeScope();

                long[] chosen = next.cpu().data<long>().ToArray();
                for (int row = 0; row < batch; row++)
                {
                    if (finished[row])
                    {
                        continue;
                    }
                    int token = (int)chosen[row];
                    if (settings.EndOfTextId == token)
                    {
                        finished[row] = true;
                        continue;
                    }
                    outputs[row].Add(token);
                    onToken?.Invoke(row, token);
                    if (shouldStop?.Invoke(row, outputs[row]) == true)
                    {
                        finished[row] = true;
                    }
                }
            }
            all.Dispose();
            input.Dispose();
        }
        finally
        {
            cache?.Dispose();
        }
        return outputs;
    }
}

// The decoding loop of decoder-only models (nanoGPT's generate with a key/value cache), written once for every runtime:
// a stepper runs the model (TorchSharp, ONNX Runtime) and the loop feeds the prompt once, then one token per step,
// chosen by the LogitsRules, restarts the cache from the last three quarters of the window when the context is full,
// and ends rows on the end-of-text token or when the caller says so (stop strings).
namespace Transformers.ML.Core.Generation;

/// <summary>Runs a decoder-only model one step at a time for a batch of rows.</summary>
internal interface ICausalStepper : IDisposable
{
    /// <summary>Most positions the model attends over.</summary>
    int ContextLength { get; }

    /// <summary>Whether the stepper keeps keys and values of earlier positions (else every step gets the whole window).</summary>
    bool HasCache { get; }

    /// <summary>Positions in the cache (0 without one).</summary>
    int CachedLength { get; }

    /// <summary>
    /// The next-token scores (rows, V) at the last position of <paramref name="ids"/> (rows x t, all rows of one length),
    /// which follow the cached positions; the cache then holds them too.
    /// </summary>
    float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids);

    /// <summary>Empties the cache (the loop then feeds a window again).</summary>
    void ResetCache();

    /// <summary>
    /// The most positions the cache will hold during this generation (this one and any after a reset): a stepper that
    /// preallocates its cache sizes it once instead of growing it. A hint: by default ignored (ONNX Runtime's graph
    /// concatenates past and new keys into a new present at every step, so there is nothing to size ahead).
    /// </summary>
    void Reserve(int positions)
    {
    }
}

/// <summary>How to pick each next token and when to stop; built from the user's options by the capability.</summary>
internal sealed record DecodingSettings
{
    public required int MaxNewTokens { get; init; }

    public LogitsRules Rules { get; init; } = LogitsRules.Greedy;

    /// <summary>A row ends when it emits this token (not included in its output); null never ends early.</summary>
    public int? EndOfTextId { get; init; }
}

internal static class CausalDecoding
{
    /// <summary>Rows of token ids, all of one length (a stepper's input), as one row-major int64 array.</summary>
    public static long[] Flatten(IReadOnlyList<IReadOnlyList<int>> ids)
    {
        int rows = ids.Count, length = ids[0].Count;
        var flat = new long[rows * length];
        for (int r = 0; r < rows; r++)
        {
            for (int t = 0; t < length; t++)
            {
                flat[r * length + t] = ids[r][t];
            }
        }
        return flat;
    }

    /// <summary>
    /// Continues each prompt (all of the same length, at least one token). <paramref name="shouldStop"/> is asked after
    /// every token whether a row is done (e.g. a stop string appeared); <paramref name="onToken"/> sees every new token of
    /// every row as it is chosen (streaming). <paramref name="random"/> draws the samples (one per row and step, in row
    /// order); null: a new one from the rules. Returns the new tokens of each row, without the end-of-text token.
    /// </summary>
    public static List<int>[] Generate(ICausalStepper stepper, IReadOnlyList<IReadOnlyList<int>> prompts, DecodingSettings settings,
        Func<int, IReadOnlyList<int>, bool>? shouldStop = null, Action<int, int>? onToken = null, Random? random = null)
    {
        int batch = prompts.Count;
        int length = batch == 0 ? 0 : prompts[0].Count;
        if (batch == 0 || length == 0 || prompts.Any(p => p.Count != length))
        {
            throw new ArgumentException("The generator needs at least one prompt, all of the same non-zero length.", nameof(prompts));
        }
        random ??= settings.Rules.NewRandom();
        int context = stepper.ContextLength;
        if (stepper.HasCache)
        {
            // The prompt and every new token, but never more than the window: the cache is then allocated once.
            stepper.Reserve((int)Math.Min(context, (long)length + settings.MaxNewTokens));
        }
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new bool[batch];
        IReadOnlyList<IReadOnlyList<int>> input = prompts;
        for (int step = 0; step < settings.MaxNewTokens && !finished.All(f => f); step++)
        {
            if (!stepper.HasCache)
            {
                input = Window(sequences, Math.Min(sequences[0].Count, context));
            }
            else if (stepper.CachedLength + input[0].Count > context)
            {
                // The window is full: start a new cache from the last three quarters of it, so that the
                // re-encoding happens once every context/4 tokens instead of every token.
                stepper.ResetCache();
                input = Window(sequences, Math.Min(sequences[0].Count, Math.Max(1, context * 3 / 4)));
            }
            float[][] scores = stepper.Step(input);
            var next = new int[batch];
            for (int row = 0; row < batch; row++)
            {
                if (!Scores.AllFinite(scores[row]))
                {
                    // Sampling would draw from garbage; say why instead.
                    throw new InvalidOperationException(
                        $"The model's scores for the next token are not finite numbers (NaN or infinity) after {step} generated tokens: its weights are damaged or overflow on this input.");
                }
                next[row] = settings.Rules.Next(scores[row], sequences[row], random);
            }
            var nextInput = new IReadOnlyList<int>[batch];
            for (int row = 0; row < batch; row++)
            {
                int token = next[row];
                sequences[row].Add(token);
                nextInput[row] = new[] { token };
                if (finished[row])
                {
                    continue;
                }
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
            input = nextInput;
        }
        return outputs;
    }

    private static IReadOnlyList<int>[] Window(List<int>[] sequences, int keep) =>
        sequences.Select(s => (IReadOnlyList<int>)s.GetRange(s.Count - keep, keep)).ToArray();
}

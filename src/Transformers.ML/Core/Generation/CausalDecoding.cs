// The decoding loop of decoder-only models (nanoGPT's generate with a key/value cache), written once for every runtime:
// a stepper runs the model (TorchSharp, ONNX Runtime) and the loop feeds the prompt once, then one token per step,
// chosen by the LogitsRules, restarts the cache from the last three quarters of the window when the context is full,
// and ends rows on the end-of-text token (not before MinNewTokens) or when the caller says so (stop strings).
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
    /// Whether <see cref="Step"/> takes left padding, so that prompts of different lengths decode in one batch (else the
    /// caller batches prompts of one length only).
    /// </summary>
    bool AcceptsPadding => false;

    /// <summary>
    /// The next-token scores (rows, V) at the last position of <paramref name="ids"/> (rows x t, all rows of one length),
    /// which follow the cached positions; the cache then holds them too. <paramref name="leftPadding"/>: per row, how
    /// many of the first cached and new positions are padding (given at every step while the cache lives; null: none),
    /// which no position attends to and which the row's positions do not count.
    /// </summary>
    float[][] Step(IReadOnlyList<IReadOnlyList<int>> ids, IReadOnlyList<int>? leftPadding = null);

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

    /// <summary>Before this many new tokens a row cannot end: the end-of-text token is never chosen (Hugging Face's min_new_tokens).</summary>
    public int MinNewTokens { get; init; }
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
    /// Continues each prompt (at least one token each). Prompts of different lengths need a stepper that
    /// <see cref="ICausalStepper.AcceptsPadding"/>: they are aligned on the right, the shorter ones padded on the left (as
    /// Hugging Face's generate pads decoder-only batches), so that every row's next token sits at the same slot. The rows
    /// slide the window together: when the longest fills the context, each keeps its last three quarters of it.
    /// <paramref name="shouldStop"/> is asked after every token whether a row is done (e.g. a stop string appeared);
    /// <paramref name="onToken"/> sees every new token of every row as it is chosen (streaming). <paramref name="randoms"/>
    /// draw each row's samples (one source per row); null: the rules' source of prompt 0, 1, ... for rows 0, 1, ....
    /// Returns the new tokens of each row, without the end-of-text token.
    /// </summary>
    public static List<int>[] Generate(ICausalStepper stepper, IReadOnlyList<IReadOnlyList<int>> prompts, DecodingSettings settings,
        Func<int, IReadOnlyList<int>, bool>? shouldStop = null, Action<int, int>? onToken = null, IReadOnlyList<Random>? randoms = null)
    {
        int batch = prompts.Count;
        if (batch == 0 || prompts.Any(p => p.Count == 0))
        {
            throw new ArgumentException("The generator needs at least one prompt, each of at least one token.", nameof(prompts));
        }
        int length = prompts.Max(p => p.Count);
        if (!stepper.AcceptsPadding && prompts.Any(p => p.Count != length))
        {
            throw new ArgumentException(
                $"This model's runtime decodes prompts of one length at a time; found lengths {string.Join(", ", prompts.Select(p => p.Count).Distinct())}.", nameof(prompts));
        }
        if (randoms is not null && randoms.Count != batch)
        {
            throw new ArgumentException($"Expected one random source per prompt ({batch}); found {randoms.Count}.", nameof(randoms));
        }
        randoms ??= Enumerable.Range(0, batch).Select(settings.Rules.NewRandom).ToArray();
        int context = stepper.ContextLength;
        if (stepper.HasCache)
        {
            // The prompt and every new token, but never more than the window: the cache is then allocated once.
            stepper.Reserve((int)Math.Min(context, (long)length + settings.MaxNewTokens));
        }
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new bool[batch];
        IReadOnlyList<int>? padding = null;
        IReadOnlyList<IReadOnlyList<int>> input = Window(sequences, length, ref padding);
        for (int step = 0; step < settings.MaxNewTokens && !finished.All(f => f); step++)
        {
            // Every row grows by one token a step, so the longest row is still the first prompts' longest, and the others
            // keep their padding.
            int slots = sequences.Max(s => s.Count);
            if (!stepper.HasCache)
            {
                input = Window(sequences, Math.Min(slots, context), ref padding);
            }
            else if (stepper.CachedLength + input[0].Count > context)
            {
                // The window is full: start a new cache from the last three quarters of it, so that the
                // re-encoding happens once every context/4 tokens instead of every token.
                stepper.ResetCache();
                input = Window(sequences, Math.Min(slots, Math.Max(1, context * 3 / 4)), ref padding);
            }
            float[][] scores = stepper.Step(input, padding);
            var next = new int[batch];
            for (int row = 0; row < batch; row++)
            {
                if (!Scores.AllFinite(scores[row]))
                {
                    // Sampling would draw from garbage; say why instead.
                    throw new InvalidOperationException(
                        $"The model's scores for the next token are not finite numbers (NaN or infinity) after {step} generated tokens: its weights are damaged or overflow on this input.");
                }
                if (step < settings.MinNewTokens && settings.EndOfTextId is int endOfText && endOfText < scores[row].Length)
                {
                    scores[row][endOfText] = float.NegativeInfinity;
                }
                next[row] = settings.Rules.Next(scores[row], sequences[row], randoms[row]);
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

    /// <summary>
    /// The last <paramref name="keep"/> slots of every row: its last tokens, after as many padding ids (0) as it is short
    /// of <paramref name="keep"/>. <paramref name="padding"/> becomes the rows' padding, null where no row has any (then
    /// the steps are exactly those of an unpadded batch).
    /// </summary>
    private static IReadOnlyList<int>[] Window(List<int>[] sequences, int keep, ref IReadOnlyList<int>? padding)
    {
        var rows = new IReadOnlyList<int>[sequences.Length];
        var pads = new int[sequences.Length];
        for (int r = 0; r < sequences.Length; r++)
        {
            List<int> s = sequences[r];
            int real = Math.Min(s.Count, keep);
            pads[r] = keep - real;
            rows[r] = pads[r] == 0 ? s.GetRange(s.Count - keep, keep) : Enumerable.Repeat(0, pads[r]).Concat(s.GetRange(s.Count - real, real)).ToList();
        }
        padding = pads.Any(p => p > 0) ? pads : null;
        return rows;
    }
}

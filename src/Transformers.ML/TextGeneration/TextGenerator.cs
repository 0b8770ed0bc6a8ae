// Text in, text out: tokenizes prompts, crops them to the context window, batches prompts of similar token length
// (left-padded where the runtime takes padding, else of one length), runs the token generator and decodes, honouring
// stop strings (after the first MinNewTokens tokens).
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Transformers.ML.Core.Generation;
using Transformers.ML.Core.Tokenization;
using static TorchSharp.torch;

namespace Transformers.ML.TextGeneration;

internal sealed class TextGenerator
{
    private readonly GptModel _model;
    private readonly TextTokenizer _tokenizer;
    private readonly Device _device;
    private readonly Action<string>? _log;

    public TextGenerator(GptModel model, TextTokenizer tokenizer, Device device, Action<string>? log)
    {
        _model = model;
        _tokenizer = tokenizer;
        _device = device;
        _log = log;
    }

    /// <summary>Completions of <paramref name="prompts"/>, in order, in left-padded batches of up to <paramref name="maxBatch"/> prompts of similar token length.</summary>
    public string[] Generate(IReadOnlyList<string> prompts, GenerationOptions options, int maxBatch = 16)
    {
        _model.eval();
        return Generate(_tokenizer, _model.ContextLength, prompts, options, maxBatch, _log,
            () => new TorchCausalStepper(_model, _device, options.UseKeyValueCache), acceptsPadding: true);
    }

    /// <summary>
    /// Text in, text out over any runtime (shared with the ONNX Runtime generator): prompts cropped, then batches of up to
    /// <paramref name="maxBatch"/> decoded by <see cref="CausalDecoding"/> with a stepper from <paramref name="newStepper"/>,
    /// stop strings cut. When the steppers take left padding (<paramref name="acceptsPadding"/>), a batch holds prompts of
    /// neighbouring token lengths (sorted by length, so that little is padding), as long as a prompt and its new tokens fit
    /// in the context window; else prompts of one length. (Rows of a batch slide the window together, when the longest one
    /// fills it; a shorter row would then lose its oldest tokens sooner than alone. Prompts of one length slide as each
    /// does alone, and prompts that fit never slide: a prompt's text does not depend on its batch.) Each prompt draws from
    /// a source of its own (<see cref="LogitsRules.NewRandom"/> of its index), whatever its batch.
    /// </summary>
    internal static string[] Generate(TextTokenizer tokenizer, int contextLength, IReadOnlyList<string> prompts, GenerationOptions options, int maxBatch,
        Action<string>? log, Func<ICausalStepper> newStepper, bool acceptsPadding)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        DecodingSettings settings = options.ToDecodingSettings(tokenizer.EndOfTextId);
        if (maxBatch < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, $"maxBatch must be at least 1; found {maxBatch}.");
        }
        var encoded = prompts.Select(p => PromptIds(tokenizer, contextLength, p, options, log)).ToArray();
        var results = new string[prompts.Count];
        int[] byLength = Enumerable.Range(0, prompts.Count).OrderBy(i => encoded[i].Count).ToArray();
        Func<int, bool> padded = acceptsPadding ? i => encoded[i].Count + (long)options.MaxNewTokens <= contextLength : _ => false;
        IEnumerable<int[]> batches = byLength.Where(padded).Chunk(maxBatch)
            .Concat(byLength.Where(i => !padded(i)).GroupBy(i => encoded[i].Count).SelectMany(g => g.Chunk(maxBatch)));
        foreach (int[] rows in batches)
        {
            using ICausalStepper stepper = newStepper();
            List<int>[] tokens = CausalDecoding.Generate(stepper, rows.Select(r => (IReadOnlyList<int>)encoded[r]).ToList(), settings,
                (row, generated) => options.StopStrings.Count > 0 && StopsFrom(tokenizer, generated, options.MinNewTokens) is int from and >= 0
                    && FindStop(tokenizer.Decode(generated), options.StopStrings, from) >= 0,
                randoms: rows.Select(settings.Rules.NewRandom).ToArray());
            for (int i = 0; i < rows.Length; i++)
            {
                results[rows[i]] = Cut(tokenizer.Decode(tokens[i]), options.StopStrings, StopsFrom(tokenizer, tokens[i], options.MinNewTokens));
            }
        }
        return results;
    }

    /// <summary>The completion of one prompt, piece by piece as tokens are chosen.</summary>
    public IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions options, CancellationToken cancellation = default)
    {
        _model.eval();
        return GenerateStreaming(_tokenizer, _model.ContextLength, prompt, options, _log,
            () => new TorchCausalStepper(_model, _device, options.UseKeyValueCache), cancellation);
    }

    /// <summary>
    /// Streaming over any runtime (shared with the ONNX Runtime generator): the pieces of one prompt's completion as its
    /// tokens are chosen on a worker thread, held back while they end inside a character or could still grow into a stop
    /// string; together they are what <see cref="Generate(TextTokenizer, int, IReadOnlyList{string}, GenerationOptions, int, Action{string}?, Func{ICausalStepper}, bool)"/> returns.
    /// </summary>
    internal static async IAsyncEnumerable<string> GenerateStreaming(TextTokenizer tokenizer, int contextLength, string prompt, GenerationOptions options,
        Action<string>? log, Func<ICausalStepper> newStepper, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        DecodingSettings settings = options.ToDecodingSettings(tokenizer.EndOfTextId);
        List<int> prompted = PromptIds(tokenizer, contextLength, prompt, options, log);
        var channel = Channel.CreateUnbounded<string>();
        var tokens = new List<int>();
        int emitted = 0;
        bool stopped = false;
        Task producer = Task.Run(() =>
        {
            try
            {
                using ICausalStepper stepper = newStepper();
                CausalDecoding.Generate(stepper, new[] { (IReadOnlyList<int>)prompted }, settings,
                    (_, generated) => stopped || cancellation.IsCancellationRequested,
                    (_, token) =>
                    {
                        tokens.Add(token);
                        string text = tokenizer.Decode(tokens);
                        int from = StopsFrom(tokenizer, tokens, options.MinNewTokens);
                        int stop = from < 0 ? -1 : FindStop(text, options.StopStrings, from);
                        if (stop >= 0)
                        {
                            text = text[..stop];
                            stopped = true;
                        }
                        // Hold back text that ends inside a multi-byte character or could still grow into a stop string.
                        int safe = stopped ? text.Length : SafeLength(text, options.StopStrings);
                        if (safe > emitted)
                        {
                            channel.Writer.TryWrite(text[emitted..safe]);
                            emitted = safe;
                        }
                    });
                if (!stopped)
                {
                    string text = Cut(tokenizer.Decode(tokens), options.StopStrings, StopsFrom(tokenizer, tokens, options.MinNewTokens));
                    if (text.Length > emitted)
                    {
                        channel.Writer.TryWrite(text[emitted..]);
                    }
                }
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, cancellation);

        await foreach (string piece in channel.Reader.ReadAllAsync(cancellation).ConfigureAwait(false))
        {
            yield return piece;
        }
        await producer.ConfigureAwait(false);
    }

    /// <summary>
    /// The prompt's token ids for a model with <paramref name="contextLength"/>, cropped from the left to leave room for
    /// the new tokens in the context window (logged). An empty prompt starts from the end-of-text token: unconditional generation.
    /// </summary>
    internal static List<int> PromptIds(TextTokenizer tokenizer, int contextLength, string prompt, GenerationOptions options, Action<string>? log)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var ids = tokenizer.Encode(prompt).ToList();
        if (ids.Count == 0)
        {
            return new List<int> { tokenizer.EndOfTextId };
        }
        int room = Math.Max(1, contextLength - Math.Min(options.MaxNewTokens, contextLength / 2));
        if (ids.Count > room)
        {
            log?.Invoke($"The prompt has {ids.Count} tokens; the context window is {contextLength}: keeping its last {room} tokens.");
            ids = ids.GetRange(ids.Count - room, room);
        }
        return ids;
    }

    /// <summary>
    /// Where in the text of <paramref name="generated"/> stop strings count: after the text of its first
    /// <paramref name="minNewTokens"/> tokens (without a character they end inside of); -1 before it has that many.
    /// </summary>
    internal static int StopsFrom(TextTokenizer tokenizer, IReadOnlyList<int> generated, int minNewTokens)
    {
        if (minNewTokens == 0)
        {
            return 0;
        }
        return generated.Count < minNewTokens ? -1 : tokenizer.Decode(generated.Take(minNewTokens)).TrimEnd('\uFFFD').Length;
    }

    /// <summary>The first place at or after <paramref name="from"/> where one of <paramref name="stops"/> starts; -1: none.</summary>
    internal static int FindStop(string text, IReadOnlyList<string> stops, int from = 0)
    {
        int first = -1;
        foreach (string stop in stops)
        {
            int at = text.IndexOf(stop, Math.Min(from, text.Length), StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }
        return first;
    }

    /// <summary><paramref name="text"/> up to its first stop string at or after <paramref name="from"/> (-1: the whole text).</summary>
    internal static string Cut(string text, IReadOnlyList<string> stops, int from = 0)
    {
        int at = from < 0 ? -1 : FindStop(text, stops, from);
        return at >= 0 ? text[..at] : text;
    }

    /// <summary>How much of <paramref name="text"/> can be shown now: not a trailing replacement character, not a possible start of a stop string.</summary>
    private static int SafeLength(string text, IReadOnlyList<string> stops)
    {
        int safe = text.Length;
        while (safe > 0 && text[safe - 1] == '\uFFFD')
        {
            safe--;
        }
        foreach (string stop in stops)
        {
            for (int k = Math.Min(stop.Length - 1, safe); k > 0; k--)
            {
                if (text.AsSpan(safe - k, k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    safe -= k;
                    break;
                }
            }
        }
        return safe;
    }
}

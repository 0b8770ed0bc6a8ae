using Transformers.ML.Core.Generation;

namespace Transformers.ML.TextGeneration;

/// <summary>How text is generated from a prompt. Each rule is a separate component; these options choose and configure them.</summary>
public sealed class GenerationOptions
{
    /// <summary>Most tokens to add to the prompt. Range 1..100000; default 100.</summary>
    public int MaxNewTokens { get; set; } = 100;

    /// <summary>
    /// Fewest tokens to add before the text may end, as Hugging Face's min_new_tokens: until then the end-of-text token is
    /// never chosen and <see cref="StopStrings"/> are not looked for (a stop string counts where it starts after these
    /// tokens' text). For a sample that should not end after a word or two: a model trained on books ends a paragraph,
    /// with its blank line, as readily after "This story is about" as after a sentence. Range 0..MaxNewTokens; default 0.
    /// </summary>
    public int MinNewTokens { get; set; }

    /// <summary>Softmax temperature. 0 or less means greedy decoding (always the most likely token); default 1.</summary>
    public double Temperature { get; set; } = 1.0;

    /// <summary>Sample only among the k most likely tokens; 0 turns it off (default). Must be >= 0.</summary>
    public int TopK { get; set; }

    /// <summary>Nucleus sampling: sample among the most likely tokens whose probabilities reach p. Range (0, 1]; 1 turns it off (default).</summary>
    public double TopP { get; set; } = 1.0;

    /// <summary>Min-p sampling: drop the tokens less likely than this fraction of the most likely one's probability. Range [0, 1]; 0 turns it off (default).</summary>
    public double MinP { get; set; }

    /// <summary>CTRL's repetition penalty on tokens already in the text; 1 turns it off (default). Must be > 0.</summary>
    public double RepetitionPenalty { get; set; } = 1.0;

    /// <summary>
    /// Never repeat a sequence of this many tokens (the prompt's included), greedy decoding too, as Hugging Face's
    /// no_repeat_ngram_size; 1 bans every token already in the text. 0 turns it off (default). Must be >= 0.
    /// </summary>
    public int NoRepeatNgramSize { get; set; }

    /// <summary>
    /// Generation of a text stops when one of these strings appears (after the first <see cref="MinNewTokens"/> tokens'
    /// text); the string and what follows are not returned.
    /// </summary>
    public IReadOnlyList<string> StopStrings { get; set; } = Array.Empty<string>();

    /// <summary>
    /// Seed of the sampler: the same seed, prompt and model give the same text. In a call with several prompts each prompt
    /// draws from its own source (the seed for the first, one mixed from the seed and its index for the others), whatever
    /// the other prompts and the batches. Null draws fresh randomness (default).
    /// </summary>
    public int? Seed { get; set; }

    /// <summary>
    /// Reuse the keys and values of earlier tokens (default true); false recomputes the whole window each step. The text is
    /// the same within the context window; past it the cache restarts from the window's last three quarters when full (one
    /// re-encoding every quarter window) where recomputation sees the whole window, so the text may differ there.
    /// </summary>
    public bool UseKeyValueCache { get; set; } = true;

    /// <summary>True when <see cref="Temperature"/> asks for greedy decoding.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsGreedy => Temperature <= 0;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid option, with the value found and the range expected.</summary>
    public void Validate()
    {
        Check(MaxNewTokens is >= 1 and <= 100_000, nameof(MaxNewTokens), MaxNewTokens, "in [1, 100000]");
        Check(MinNewTokens >= 0 && MinNewTokens <= MaxNewTokens, nameof(MinNewTokens), MinNewTokens, $"in [0, MaxNewTokens = {MaxNewTokens}]");
        Check(!double.IsNaN(Temperature) && !double.IsInfinity(Temperature), nameof(Temperature), Temperature, "a finite number (0 or less: greedy)");
        Check(TopK >= 0, nameof(TopK), TopK, ">= 0 (0: off)");
        Check(TopP > 0 && TopP <= 1, nameof(TopP), TopP, "in (0, 1]");
        Check(MinP >= 0 && MinP <= 1, nameof(MinP), MinP, "in [0, 1] (0: off)");
        Check(RepetitionPenalty > 0 && !double.IsInfinity(RepetitionPenalty), nameof(RepetitionPenalty), RepetitionPenalty, "> 0 (1: off)");
        Check(NoRepeatNgramSize >= 0, nameof(NoRepeatNgramSize), NoRepeatNgramSize, ">= 0 (0: off)");
        Check(StopStrings is not null && StopStrings.All(s => !string.IsNullOrEmpty(s)), nameof(StopStrings), Describe(StopStrings), "a list of non-empty strings");
    }

    /// <summary>
    /// The rule that picks each token, as a log line or a caption says it: "greedy" or "temperature 0.8, top-k 40, min-p
    /// 0.1", then the rules that are on (repetition penalty, no repeated n-grams) and the seed. Length and stop strings are
    /// left out.
    /// </summary>
    public override string ToString()
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        var parts = new List<string> { IsGreedy ? "greedy" : string.Create(c, $"temperature {Temperature:0.###}") };
        if (!IsGreedy && TopK > 0)
        {
            parts.Add(string.Create(c, $"top-k {TopK}"));
        }
        if (!IsGreedy && TopP < 1)
        {
            parts.Add(string.Create(c, $"top-p {TopP:0.###}"));
        }
        if (!IsGreedy && MinP > 0)
        {
            parts.Add(string.Create(c, $"min-p {MinP:0.###}"));
        }
        if (RepetitionPenalty != 1)
        {
            parts.Add(string.Create(c, $"repetition penalty {RepetitionPenalty:0.###}"));
        }
        if (NoRepeatNgramSize > 0)
        {
            parts.Add(string.Create(c, $"no repeated {NoRepeatNgramSize}-grams"));
        }
        if (!IsGreedy && Seed is int seed)
        {
            parts.Add(string.Create(c, $"seed {seed}"));
        }
        return string.Join(", ", parts);
    }

    /// <summary>The decoding rules these options ask for, and the end of a row.</summary>
    internal DecodingSettings ToDecodingSettings(int? endOfTextId)
    {
        Validate();
        return new DecodingSettings
        {
            MaxNewTokens = MaxNewTokens,
            Rules = new LogitsRules(IsGreedy, IsGreedy ? 1.0 : Temperature, TopK, TopP, RepetitionPenalty, Seed, MinP, NoRepeatNgramSize),
            EndOfTextId = endOfTextId,
            MinNewTokens = MinNewTokens,
        };
    }

    /// <summary>A list as the message shows it: its items quoted (line breaks and tabs escaped), an empty or null one named by its index.</summary>
    private static string? Describe(IReadOnlyList<string>? strings)
    {
        if (strings is null)
        {
            return null;
        }
        int bad = strings.ToList().FindIndex(string.IsNullOrEmpty);
        string items = string.Join(", ", strings.Select(s => s is null ? "null" : $"\"{s.Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t")}\""));
        return bad < 0 ? $"[{items}]" : $"[{items}] (item {bad} is {(strings[bad] is null ? "null" : "empty")})";
    }

    private static void Check(bool ok, string option, object? found, string expected)
    {
        if (!ok)
        {
            throw new ArgumentOutOfRangeException(option, found, $"Generation option {option} must be {expected}; found {found ?? "null"}.");
        }
    }
}

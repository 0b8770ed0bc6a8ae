// The text-generation recipe of the example and the benchmark (one place, so the benchmark measures what the example
// runs): the model and training settings for a few CPU minutes, the seed's genres and their books, and reading books.
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Examples;

/// <summary>
/// The recipe for a few minutes on a CPU, found by measurement (BENCHMARKS.md, "text generation"): the Small GPT (4 layers,
/// 4 heads, width 128) without dropout, a 64-token context, batches of 16 windows (on two cores, many small steps learn
/// more in a minute than few large ones: 1.99 nats/char after one minute against 2.40 with 32 windows of 128), peak
/// learning rate 2e-3 with warmup and cosine decay planned over the budget, float32 (bfloat16 is slower for a model this
/// narrow here: 178 against 203 steps in a minute). With a byte-level BPE of 1,024 tokens learned from the book, a window
/// covers about 2.5 times the characters and 5 minutes reach 1.51 nats per character, against 1.64 with characters: the
/// examples' default.
/// </summary>
internal static class TextRecipe
{
    /// <summary>A text's first nine tenths, to train on, and its last tenth, held out: how the example and the benchmark split a book.</summary>
    public static (string Train, string HeldOut) Split(string text)
    {
        int split = (int)(text.Length * 0.9);
        return (text[..split], text[split..]);
    }

    public static TextGenerationOptions Options(TokenizerKind tokenizer, TimeSpan budget) => new()
    {
        Tokenizer = tokenizer,
        VocabularySize = 1024,
        Model = Model(),
        BatchSize = 16,
        BatchesPerEpoch = 100,
        LearningRate = 2e-3,
        MinLearningRateRatio = 0.1,
        WarmupSteps = 100,
        WeightDecay = 0.1,
        Beta2 = 0.99,
        Precision = TrainingPrecision.Float32,
        MaxTrainingTime = budget,
        LogEverySteps = 50,
        Generation = new GenerationOptions { MaxNewTokens = 120, Temperature = 0.8, TopK = 40, Seed = 1, StopStrings = new[] { "\n\n" } },
    };

    /// <summary>The Small GPT without dropout: dropout costs a quarter of a CPU step, and it did not lower the held-out loss
    /// even on a host where 5 minutes pass over the book 13 times and the validation loss flattens (1.523 and 1.512 nats
    /// per character with 0.1 against 1.521 and 1.516 without, `--only textgen.recipe --recipes bpe,bpe-dropout`).</summary>
    private static TransformerConfig Model()
    {
        TransformerConfig config = TextGenerationOptions.PresetConfig(GptPreset.Small);
        config.MaxSequenceLength = 64;
        config.Dropout = 0;
        config.AttentionDropout = 0;
        return config;
    }

    /// <summary>Fine-tuning: the same recipe, a lower peak learning rate, a short warmup.</summary>
    public static TextGenerationOptions FineTuning(TextGenerationOptions trained, TimeSpan budget)
    {
        TextGenerationOptions fine = Options(trained.Tokenizer, budget);
        fine.LearningRate = 5e-4;
        fine.WarmupSteps = 20;
        fine.ValidationFraction = 0; // the genre's held-out part is only for the perplexity after
        fine.Generation = trained.Generation;
        fine.TextColumnName = trained.TextColumnName;
        fine.OutputColumnName = trained.OutputColumnName;
        return fine;
    }
}

/// <summary>The seed's genres and their books (Project Gutenberg, public domain; shipped in examples/data).</summary>
internal sealed record Genre(string Name, string[] Books, string[] Titles)
{
    public static readonly Genre[] All =
    {
        new("mystery", new[] { "pg2852-the-hound-of-the-baskervilles.txt" }, new[] { "The Hound of the Baskervilles" }),
        new("vampire", new[] { "pg345-dracula.txt", "pg6087-the-vampyre.txt" }, new[] { "Dracula", "The Vampyre" }),
        new("love", new[] { "pg2002-sonnets-from-the-portuguese.txt", "pg1342-pride-and-prejudice.txt" }, new[] { "Sonnets from the Portuguese", "Pride and Prejudice" }),
    };
}

internal static class Books
{
    public static string Read(string? data, string file) => File.ReadAllText(DataLocator.File(data, $"text/{file}")).Replace("\r\n", "\n");

    /// <summary>A Project Gutenberg text between its "*** START OF" and "*** END OF" lines (the licence text is not the book).</summary>
    public static string Body(string text)
    {
        int start = text.IndexOf("*** START OF", StringComparison.Ordinal);
        start = start < 0 ? text.IndexOf("***START OF", StringComparison.Ordinal) : start;
        int end = text.IndexOf("*** END OF", StringComparison.Ordinal);
        end = end < 0 ? text.IndexOf("***END OF", StringComparison.Ordinal) : end;
        if (start >= 0)
        {
            start = text.IndexOf('\n', start) + 1;
        }
        return text[Math.Max(0, start)..(end > start ? end : text.Length)].Trim();
    }
}

// The text-generation recipe of the example and the benchmark (one place, so the benchmark measures what the example
// runs): the model and training settings for a few CPU minutes, the seed's genres and their books, and reading books.
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Examples;

/// <summary>
/// The text example's and the benchmark's recipe: the library's (<see cref="TextGenerationOptions.ForTimeBudget"/>: the
/// Small GPT with a 64-token context and no dropout, a BPE of 1,024 tokens, batches of 16 windows, warmup and cosine decay
/// planned over the budget; BENCHMARKS.md, "text generation") with the example's sampling settings and progress lines, and
/// how a book is split into the nine tenths trained on and the tenth held out.
/// </summary>
internal static class TextRecipe
{
    /// <summary>A text's first nine tenths, to train on, and its last tenth, held out: how the example and the benchmark split a book.</summary>
    public static (string Train, string HeldOut) Split(string text)
    {
        int split = (int)(text.Length * 0.9);
        return (text[..split], text[split..]);
    }

    public static TextGenerationOptions Options(TokenizerKind tokenizer, TimeSpan budget)
    {
        TextGenerationOptions options = TextGenerationOptions.ForTimeBudget(budget, tokenizer);
        options.LogEverySteps = 50;
        // A completion ends at a blank line (the end of a speech or paragraph), but not before 40 tokens: a model trained on
        // books ends a paragraph after "This story is about a till." as readily as anywhere.
        options.Generation = new GenerationOptions { MaxNewTokens = 120, MinNewTokens = 40, Temperature = 0.8, TopK = 40, MinP = 0.1, Seed = 1, StopStrings = new[] { "\n\n" } };
        return options;
    }

    /// <summary>Fine-tuning (<see cref="TextGenerationOptions.ForFineTuning"/>) with the trained model's settings; the genre's held-out part is only for the perplexity after.</summary>
    public static TextGenerationOptions FineTuning(TextGenerationOptions trained, TimeSpan budget)
    {
        TextGenerationOptions fine = TextGenerationOptions.ForFineTuning(budget); // the model keeps its own tokenizer
        fine.LogEverySteps = trained.LogEverySteps;
        fine.ValidationFraction = 0;
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

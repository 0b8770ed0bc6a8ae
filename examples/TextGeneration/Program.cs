// Text generation, Model Builder style: train a GPT-style model on Tiny Shakespeare, with a byte-level BPE of 1,024
// tokens learned from the book (measured better than characters in 5 minutes: BENCHMARKS.md), for a time budget that plans its schedule (warmup and decay end with the budget), watch it learn (the completion of the same
// prompt after every epoch), save and reload it, look at where it attends, then fine-tune it on the seed's three genres
// (mystery, vampire stories, love) and compare, on a held-out part of each genre that fine-tuning never saw, the
// perplexity before and after, and the completion of "This story is about".
//
//   dotnet run -c Release --project examples/TextGeneration -- [options]   (--help lists the options: Settings.Usage at the end of this file)
using System.Diagnostics;
using Microsoft.ML;
using Transformers.ML;
using Transformers.ML.Examples;
using Transformers.ML.TextGeneration;

var settings = CommandLine.Parse(args, Settings.Usage, Settings.Parse);
var clock = Stopwatch.StartNew();
var ml = new MLContext(seed: 1);
Directory.CreateDirectory(settings.Output);
const string prompt = "This story is about";

// ---------------------------------------------------------------- training
string book = Books.Read(settings.Data, settings.Book);
Console.WriteLine($"Training a GPT on {settings.Book} ({book.Length:N0} characters, {settings.Tokenizer} tokens) for {settings.Minutes:F1} minutes.");
TextGenerationOptions options = TextRecipe.Options(settings.Tokenizer, TimeSpan.FromMinutes(settings.Minutes));
options.Precision = settings.Precision ?? options.Precision;
options.TextColumnName = nameof(ModelInput.Text);
options.OutputColumnName = nameof(ModelOutput.GeneratedText);
options.SamplePrompt = prompt;
options.Progress = new ConsoleProgress(prompt);
options.CurvesPath = Path.Combine(settings.Output, "training-curves.png");
// The last tenth of the book is held out: the validation curve during training (never used to pick weights: the
// schedule's last step is the model) and the loss reported below.
options.RestoreBestWeights = false;
(string trainText, string heldOutText) = TextRecipe.Split(book);
IDataView train = ml.Data.LoadFromEnumerable(new[] { new ModelInput { Text = trainText } });
IDataView heldOut = ml.Data.LoadFromEnumerable(new[] { new ModelInput { Text = heldOutText } });
TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(train, heldOut);
TextGenerationMetrics quality = ml.Transformers().EvaluateTextGeneration(model, heldOut);
Console.WriteLine($"Trained {model.ParameterCount:N0} parameters in {model.TrainingReports[^1].Elapsed:mm\\:ss}: held-out loss {quality.CrossEntropy:F3} nats per token, " +
    $"{quality.BitsPerCharacter:F3} bits per character ({quality.BitsPerCharacter * Math.Log(2):F3} nats per character). Curves: {options.CurvesPath}");

string modelPath = Path.Combine(settings.Output, "text-generation.safetensors");
model.Save(modelPath);
model.Dispose();
Console.WriteLine($"Saved to {modelPath}.");

// ---------------------------------------------------------------- consumption: the reloaded model, through a PredictionEngine
TextGenerationTransformer reloaded = ml.Transformers().LoadTextGeneration(modelPath);
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(reloaded);
foreach (string start in new[] { prompt, "ROMEO:", "First Citizen:\nWe are" })
{
    Console.WriteLine($"\n{start}{engine.Predict(new ModelInput { Text = start }).GeneratedText}");
}

// ---------------------------------------------------------------- attention: where "it" looks
const string sentence = "The animal didn't cross the street because it was tired.";
AttentionWeights attention = reloaded.Attention(sentence);
int it = sentence.IndexOf(" it ", StringComparison.Ordinal) + 2; // the 't' of "it": the model has read the whole word there
string heads = Path.Combine(settings.Output, "attention-it.png");
Words.SaveAttentionFrom(attention, sentence, it, heads);
Console.WriteLine($"\nAttention from \"it\" in \"{sentence}\", per layer and head, summed over each word's tokens: {heads}");
Console.WriteLine("  " + Words.Strongest(attention, sentence, it));

// ---------------------------------------------------------------- fine-tuning on the seed's genres
foreach (Genre genre in Genre.All.Where(g => settings.Genres.Contains(g.Name)))
{
    // Each book of the genre: its text without the Project Gutenberg header and footer, its last tenth held out.
    var texts = genre.Books.Select(b => Books.Body(Books.Read(settings.Data, b))).ToList();
    var tune = texts.Select(t => new ModelInput { Text = TextRecipe.Split(t).Train }).ToList();
    var held = texts.Select(t => new ModelInput { Text = TextRecipe.Split(t).HeldOut }).ToList();
    IDataView heldGenre = ml.Data.LoadFromEnumerable(held);
    TextGenerationMetrics before = ml.Transformers().EvaluateTextGeneration(reloaded, heldGenre);

    TextGenerationOptions fine = TextRecipe.FineTuning(options, TimeSpan.FromMinutes(settings.GenreMinutes));
    using TextGenerationTransformer tuned = ml.Transformers().TextGeneration(reloaded, fine).Fit(ml.Data.LoadFromEnumerable(tune));
    TextGenerationMetrics after = ml.Transformers().EvaluateTextGeneration(tuned, heldGenre);
    Console.WriteLine($"\n{genre.Name} ({string.Join(" + ", genre.Titles)}; fine-tuned {settings.GenreMinutes:F1} min on 90 %, the other 10 % held out):");
    string unit = settings.Tokenizer == TokenizerKind.Character ? "character" : $"{settings.Tokenizer} token";
    Console.WriteLine($"  held-out perplexity {before.Perplexity:F2} -> {after.Perplexity:F2} per {unit} " +
        $"({before.BitsPerCharacter:F3} -> {after.BitsPerCharacter:F3} bits per character)");
    Console.WriteLine($"  {prompt}{Words.OneLine(tuned.Generate(prompt))}");
}
Console.WriteLine($"\nDone in {clock.Elapsed:mm\\:ss}.");
reloaded.Dispose();

/// <summary>What the model reads: a text (a training document, or a prompt).</summary>
public sealed class ModelInput
{
    public string Text { get; set; } = "";
}

/// <summary>What the model writes: the continuation of the prompt.</summary>
public sealed class ModelOutput
{
    public string Text { get; set; } = "";

    public string GeneratedText { get; set; } = "";
}

/// <summary>A model's attention seen word by word, whatever its tokens (characters or BPE pieces).</summary>
internal static class Words
{
    public static string OneLine(string text) => text.Replace("\r", "").Replace("\n", " / ");

    /// <summary>The words of the sentence and the character span of each (a word: letters and apostrophes; punctuation its own).</summary>
    private static List<(string Word, int Start, int End)> Spans(string sentence) =>
        System.Text.RegularExpressions.Regex.Matches(sentence, @"[\w']+|[^\w\s]").Select(m => (m.Value, m.Index, m.Index + m.Length)).ToList();

    /// <summary>Per token, the index of the word holding its last character (-1 for a token of white space only).</summary>
    private static (int[] WordOf, int[] End) Tokens(AttentionWeights attention, string sentence, List<(string Word, int Start, int End)> words)
    {
        if (string.Concat(attention.KeyTokens) != sentence)
        {
            throw new InvalidOperationException($"The tokens do not spell the sentence: {string.Join("|", attention.KeyTokens)}");
        }
        var wordOf = new int[attention.KeyTokens.Count];
        var end = new int[wordOf.Length];
        int position = 0;
        for (int t = 0; t < wordOf.Length; t++)
        {
            position += attention.KeyTokens[t].Length;
            end[t] = position;
            wordOf[t] = words.FindIndex(w => w.Start < position && position <= w.End);
        }
        return (wordOf, end);
    }

    /// <summary>The token that has read character <paramref name="character"/> (the one ending at or after it).</summary>
    private static int TokenAt(int[] end, int character) => Array.FindIndex(end, e => e > character);

    /// <summary>Per layer and head, the attention of the token holding character <paramref name="query"/>, summed over the tokens of each earlier word.</summary>
    public static void SaveAttentionFrom(AttentionWeights attention, string sentence, int query, string path)
    {
        var words = Spans(sentence);
        (int[] wordOf, int[] end) = Tokens(attention, sentence, words);
        int from = TokenAt(end, query);
        int shown = wordOf[from] + 1; // the words up to "it"
        var rows = new List<string>();
        var weights = new List<float>();
        for (int layer = 0; layer < attention.Layers; layer++)
        {
            for (int head = 0; head < attention.Heads; head++)
            {
                float[] row = attention.From(from, layer, head);
                rows.Add($"layer {layer + 1} head {head + 1}");
                weights.AddRange(Enumerable.Range(0, shown).Select(w => Enumerable.Range(0, from + 1).Where(t => wordOf[t] == w).Sum(t => row[t])));
            }
        }
        Charts.SaveHeatmap(weights, rows, words.Take(shown).Select(w => w.Word).ToList(), path, $"Where \"it\" looks: \"{sentence}\"", "layer and head",
            "word (attention summed over its tokens; the rest of a row is on white space)");
    }

    /// <summary>For each layer, the word before "it" that the head-averaged attention from "it" weighs most.</summary>
    public static string Strongest(AttentionWeights attention, string sentence, int query)
    {
        var words = Spans(sentence);
        (int[] wordOf, int[] end) = Tokens(attention, sentence, words);
        int from = TokenAt(end, query);
        int n = attention.KeyTokens.Count;
        return string.Join("; ", Enumerable.Range(0, attention.Layers).Select(layer =>
        {
            float[] average = attention.LayerAverage(layer).AsSpan(from * n, n).ToArray();
            int best = Enumerable.Range(0, wordOf[from]).MaxBy(w => Enumerable.Range(0, from + 1).Where(t => wordOf[t] == w).Sum(t => average[t]));
            float share = Enumerable.Range(0, from + 1).Where(t => wordOf[t] == best).Sum(t => average[t]);
            return $"layer {layer + 1}: \"{words[best].Word}\" ({share:P0})";
        }));
    }
}

/// <summary>Loss, throughput and ETA while training; the sample of the fixed prompt after each epoch (every fifth shown).</summary>
internal sealed class ConsoleProgress(string prompt) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p)
    {
        if (p.Kind == TrainingProgressKind.EpochEnd && (p.Epoch % 5 == 0 || p.Epoch == p.Epochs))
        {
            Console.WriteLine($"Epoch {p.Epoch}/{p.Epochs}: validation loss {p.ValidationValue:F3} | {prompt}{Words.OneLine(p.Sample ?? "")}");
        }
        else if (p.Kind == TrainingProgressKind.Step && p.Step % 250 == 0)
        {
            Console.WriteLine($"  step {p.Step}/{p.TotalSteps}  loss {p.Loss:F3}  lr {p.LearningRate:E2}  {p.Throughput:N0} tokens/s  elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}");
        }
    }
}

internal sealed record Settings(string Book, string[] Genres, TokenizerKind Tokenizer, double Minutes, double GenreMinutes, string Output, string? Data, TrainingPrecision? Precision = null)
{
    /// <summary>What --help prints.</summary>
    public const string Usage = """
        dotnet run -c Release --project examples/TextGeneration -- [options]
          --book FILE          training book under <data>/text (default tinyshakespeare.txt)
          --genres LIST        mystery,vampire,love (default all three); none to skip fine-tuning
          --tokenizer KIND     bpe | char | gpt2 (default bpe)
          --minutes M          training time budget (default 5)
          --genre-minutes M    fine-tuning time per genre (default 1.5)
          --precision P        auto | float32 | bfloat16 (default: the recipe's)
          --out DIR            model, training curves, attention pictures (default: a temp folder)
          --data DIR           data folder (else TRANSFORMERS_ML_DATA, else shared/data beside the repository, else the books
                               shipped in examples/data)
        """;

    public static Settings Parse(string[] args)
    {
        var s = new Settings("tinyshakespeare.txt", new[] { "mystery", "vampire", "love" }, TokenizerKind.BytePairEncoding, 5, 1.5,
            Path.Combine(Path.GetTempPath(), "transformers-ml-example", "text"), null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            double Minutes(string option) => double.TryParse(Next(), System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 ? m : throw new ArgumentException($"{option} must be a positive number.");
            s = args[i] switch
            {
                "--book" => s with { Book = Next() },
                "--genres" => s with { Genres = Next() is "none" ? Array.Empty<string>() : args[i].Split(',', StringSplitOptions.RemoveEmptyEntries) },
                "--tokenizer" => s with { Tokenizer = Next() switch { "char" => TokenizerKind.Character, "bpe" => TokenizerKind.BytePairEncoding, "gpt2" => TokenizerKind.Gpt2, var t => throw new ArgumentException($"--tokenizer must be char, bpe or gpt2; found '{t}'.") } },
                "--minutes" => s with { Minutes = Minutes("--minutes") },
                "--genre-minutes" => s with { GenreMinutes = Minutes("--genre-minutes") },
                "--precision" => s with { Precision = Precisions.Parse(Next()) },
                "--out" => s with { Output = Next() },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'."),
            };
        }
        string[] unknownGenres = s.Genres.Except(Genre.All.Select(g => g.Name)).ToArray();
        return unknownGenres.Length == 0 ? s : throw new ArgumentException($"Unknown genre(s) {string.Join(", ", unknownGenres)}; known: {string.Join(", ", Genre.All.Select(g => g.Name))}.");
    }
}

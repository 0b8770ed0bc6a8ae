// Text generation, Model Builder style: train a GPT-style model on a book, watch it learn (a sample of the
// same prompt after every epoch), save and reload it, fine-tune it on vampire stories, and compare the
// completion of one prompt before and after.
//
//   dotnet run -c Release --project examples/TextGeneration -- [options]
//     --book FILE         training book under <data>/text (default tinyshakespeare.txt)
//     --finetune A,B      fine-tuning books (default pg345-dracula.txt,pg6087-the-vampyre.txt)
//     --tokenizer KIND    char | bpe | gpt2 (default char)
//     --preset NAME       tiny | small | baby | gpt2small (default small)
//     --minutes M         training time budget; fine-tuning gets half of it (default 5)
//     --data DIR          data folder (else TRANSFORMERS_ML_DATA, else shared/data beside the repository, else the copy of
//                         Tiny Shakespeare in examples/data; other books are downloaded once into ~/.cache/transformers-ml)
using System.Diagnostics;
using Microsoft.ML;
using Transformers.ML;
using Transformers.ML.Examples;
using Transformers.ML.TextGeneration;

var settings = Settings.Parse(args);
var clock = Stopwatch.StartNew();
var ml = new MLContext(seed: 1);
const string prompt = "This story is about";

// ---------------------------------------------------------------- training
string book = DataLocator.File(settings.Data, $"text/{settings.Book}");
IDataView books = ml.Data.LoadFromEnumerable(new[] { new ModelInput { Text = File.ReadAllText(book) } });
Console.WriteLine($"Training a {settings.Preset} GPT with {settings.Tokenizer} tokens on {Path.GetFileName(book)} for up to {settings.Minutes:F1} minutes.");

var options = new TextGenerationOptions
{
    TextColumnName = nameof(ModelInput.Text),
    OutputColumnName = nameof(ModelOutput.GeneratedText),
    Tokenizer = settings.Tokenizer,
    VocabularySize = 2000,
    Preset = settings.Preset,
    Epochs = 10,
    BatchSize = 32,
    BatchesPerEpoch = 100,
    LearningRate = 2e-3,
    WarmupSteps = 30,
    MaxTrainingTime = TimeSpan.FromMinutes(settings.Minutes),
    SamplePrompt = prompt,
    Generation = new GenerationOptions { MaxNewTokens = 60, Temperature = 0.8, TopK = 40, Seed = 1, StopStrings = new[] { "\n\n" } },
    Progress = new ConsoleProgress(),
};
TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(books);
Console.WriteLine($"Trained {model.ParameterCount:N0} parameters, {model.VocabularySize} tokens, in {clock.Elapsed:mm\\:ss}.");

string modelPath = Path.Combine(Path.GetTempPath(), "transformers-ml-example", "text-generation.safetensors");
model.Save(modelPath);
model.Dispose();
Console.WriteLine($"Saved to {modelPath}.");

// ---------------------------------------------------------------- consumption
TextGenerationTransformer reloaded = ml.Transformers().LoadTextGeneration(modelPath);
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(reloaded);
string before = engine.Predict(new ModelInput { Text = prompt }).GeneratedText;
Console.WriteLine($"\nBefore fine-tuning: {prompt}{ConsoleProgress.OneLine(before)}");

// ---------------------------------------------------------------- fine-tuning on a genre
var genre = settings.FineTune.Select(f => new ModelInput
{
    Text = File.ReadAllText(DataLocator.File(settings.Data, $"text/{f}")),
}).ToList();
Console.WriteLine($"\nFine-tuning on {string.Join(" + ", settings.FineTune)} for up to {settings.Minutes / 2:F1} minutes.");
options.MaxTrainingTime = TimeSpan.FromMinutes(settings.Minutes / 2);
options.LearningRate = 5e-4;
options.WarmupSteps = 10;
options.Epochs = 5;
TextGenerationTransformer vampire = ml.Transformers().TextGeneration(reloaded, options).Fit(ml.Data.LoadFromEnumerable(genre));
var vampireEngine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(vampire);
string after = vampireEngine.Predict(new ModelInput { Text = prompt }).GeneratedText;
Console.WriteLine($"\nBefore fine-tuning: {prompt}{ConsoleProgress.OneLine(before)}");
Console.WriteLine($"After fine-tuning:  {prompt}{after}");

var heldOut = ml.Data.LoadFromEnumerable(new[] { new ModelInput { Text = genre[0].Text[^20_000..] } });
Console.WriteLine($"\nPerplexity on the end of {settings.FineTune[0]}: before {ml.Transformers().EvaluateTextGeneration(reloaded, heldOut).Perplexity:F2}, " +
    $"after {ml.Transformers().EvaluateTextGeneration(vampire, heldOut).Perplexity:F2} (it was part of the fine-tuning text).");
Console.WriteLine($"Done in {clock.Elapsed:mm\\:ss}.");
reloaded.Dispose();
vampire.Dispose();

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

/// <summary>Loss, throughput and ETA while training; the sample of the fixed prompt after each epoch.</summary>
internal sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    /// <summary>Generated text on one console line: line breaks shown as " / ".</summary>
    public static string OneLine(string text) => text.Replace("\r", "").Replace("\n", " / ");

    public void Report(TrainingProgress p)
    {
        if (p.Kind == TrainingProgressKind.EpochEnd)
        {
            Console.WriteLine($"Epoch {p.Epoch}/{p.Epochs}: validation loss {p.ValidationValue:F3} | This story is about{OneLine(p.Sample ?? "")}");
        }
        else
        {
            Console.WriteLine($"  step {p.Step}/{p.TotalSteps}  loss {p.Loss:F3}  {p.Throughput:N0} tokens/s  elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}");
        }
    }
}

internal sealed record Settings(string Book, string[] FineTune, TokenizerKind Tokenizer, GptPreset Preset, double Minutes, string? Data)
{
    public static Settings Parse(string[] args)
    {
        var s = new Settings("tinyshakespeare.txt", new[] { "pg345-dracula.txt", "pg6087-the-vampyre.txt" }, TokenizerKind.Character, GptPreset.Small, 5, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--book" => s with { Book = Next() },
                "--finetune" => s with { FineTune = Next().Split(',', StringSplitOptions.RemoveEmptyEntries) },
                "--tokenizer" => s with { Tokenizer = Next() switch { "char" => TokenizerKind.Character, "bpe" => TokenizerKind.BytePairEncoding, "gpt2" => TokenizerKind.Gpt2, var t => throw new ArgumentException($"--tokenizer must be char, bpe or gpt2; found '{t}'.") } },
                "--preset" => s with { Preset = Next() switch { "tiny" => GptPreset.Tiny, "small" => GptPreset.Small, "baby" => GptPreset.Baby, "gpt2small" => GptPreset.Gpt2Small, var p => throw new ArgumentException($"--preset must be tiny, small, baby or gpt2small; found '{p}'.") } },
                "--minutes" => s with { Minutes = double.TryParse(Next(), System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 ? m : throw new ArgumentException("--minutes must be a positive number.") },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'. See the comment at the top of Program.cs."),
            };
        }
        return s;
    }

}

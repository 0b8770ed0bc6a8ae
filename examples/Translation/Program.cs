// Translation, Model Builder style: train the Transformer of "Attention Is All You Need" on Spanish-English
// pairs, evaluate BLEU and chrF on held-out sentences with greedy decoding and beam search, translate a few
// sentences, save and reload.
//
//   dotnet run -c Release --project examples/Translation -- [options]
//     --minutes M     training time budget (default 8)
//     --preset NAME   small | base | big (default small)
//     --test N        held-out sentences to score (default 500)
//     --data DIR      data folder (else TRANSFORMERS_ML_DATA, else shared/data beside the repository, else spa-eng is
//                     downloaded once from manythings.org into ~/.cache/transformers-ml)
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML;
using Transformers.ML.Examples;
using Transformers.ML.Translation;

var settings = Settings.Parse(args);
var clock = Stopwatch.StartNew();
var ml = new MLContext(seed: 1);

// ---------------------------------------------------------------- data
string path = DataLocator.File(settings.Data, "translation/spa-eng.txt");
IDataView all = ml.Data.LoadFromTextFile<ModelInput>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
// The file holds many translations of one English sentence: split by unique English sentence, or the test set leaks.
var split = ml.Data.TrainTestSplit(all, testFraction: 0.02, samplingKeyColumnName: nameof(ModelInput.English), seed: 1);
var trainValidation = ml.Data.TrainTestSplit(split.TrainSet, testFraction: 0.01, samplingKeyColumnName: nameof(ModelInput.English), seed: 2);
IDataView test = ml.Data.TakeRows(split.TestSet, settings.TestSentences);
Console.WriteLine($"Training on {Count(trainValidation.TrainSet):N0} pairs, validating on {Count(trainValidation.TestSet):N0}, testing on {Count(test):N0} (split by English sentence).");

// ---------------------------------------------------------------- training
var options = new TranslationOptions
{
    SourceColumnName = nameof(ModelInput.Spanish),
    TargetColumnName = nameof(ModelInput.English),
    OutputColumnName = nameof(ModelOutput.Translation),
    Preset = settings.Preset,
    VocabularySize = 4000,     // a small shared vocabulary keeps the softmax cheap on a CPU
    Epochs = 20,
    MaxTokensPerBatch = 2048,  // more, smaller updates in a short time budget
    WarmupSteps = 400,
    LearningRateScale = 0.5,   // peak 0.5 * 256^-0.5 * 400^-0.5 = 1.6e-3 at step 400 (post-LN needs a gentle start)
    MaxTrainingTime = TimeSpan.FromMinutes(settings.Minutes),
    SampleSentence = "Soy un estudiante",
    Progress = new ConsoleProgress(),
};
TranslationTransformer model = ml.Transformers().Translation(options).Fit(trainValidation.TrainSet, trainValidation.TestSet);
Console.WriteLine($"Trained {model.ParameterCount:N0} parameters in {clock.Elapsed:mm\\:ss}.");

// ---------------------------------------------------------------- evaluation: greedy and beam search
foreach ((string name, int beam) in new[] { ("greedy", 1), ("beam 4, alpha 0.6", 4) })
{
    model.BeamSize = beam;
    var decode = Stopwatch.StartNew();
    TranslationMetrics metrics = ml.Transformers().EvaluateTranslation(model.Transform(test), nameof(ModelInput.English), nameof(ModelOutput.Translation));
    Console.WriteLine($"{name,-18} {metrics}  ({Count(test) / decode.Elapsed.TotalSeconds:F1} sentences/s)");
}

// ---------------------------------------------------------------- consumption
string modelPath = Path.Combine(Path.GetTempPath(), "transformers-ml-example", "translation.safetensors");
model.Save(modelPath);
model.Dispose();
using TranslationTransformer reloaded = ml.Transformers().LoadTranslation(modelPath);
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(reloaded);
foreach (string sentence in new[] { "Soy un estudiante", "¿Dónde está la biblioteca?", "Me gusta leer libros por la noche.", "Hace mucho frío hoy." })
{
    Console.WriteLine($"{sentence,-40} -> {engine.Predict(new ModelInput { Spanish = sentence }).Translation}");
}
Console.WriteLine($"Saved to {modelPath}; done in {clock.Elapsed:mm\\:ss}.");

long Count(IDataView data) => data.GetColumn<string>(nameof(ModelInput.English)).LongCount();

/// <summary>One pair of the file: English TAB Spanish.</summary>
public sealed class ModelInput
{
    [LoadColumn(0)]
    public string English { get; set; } = "";

    [LoadColumn(1)]
    public string Spanish { get; set; } = "";
}

/// <summary>The translation of the Spanish sentence.</summary>
public sealed class ModelOutput
{
    public string Translation { get; set; } = "";
}

/// <summary>Loss, tokens/s and ETA while training; validation loss and the sample translation after each epoch.</summary>
internal sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p) => Console.WriteLine(p.Kind == TrainingProgressKind.EpochEnd
        ? $"Epoch {p.Epoch}/{p.Epochs}: validation loss {p.ValidationValue:F3} | Soy un estudiante -> {p.Sample}"
        : $"  step {p.Step}  loss {p.Loss:F3}  lr {p.LearningRate:E2}  {p.Throughput:N0} tokens/s  elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}");
}

internal sealed record Settings(double Minutes, TranslationPreset Preset, int TestSentences, string? Data)
{
    public static Settings Parse(string[] args)
    {
        var s = new Settings(8, TranslationPreset.Small, 500, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--minutes" => s with { Minutes = double.TryParse(Next(), System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 ? m : throw new ArgumentException("--minutes must be a positive number.") },
                "--preset" => s with { Preset = Next() switch { "small" => TranslationPreset.Small, "base" => TranslationPreset.Base, "big" => TranslationPreset.Big, var p => throw new ArgumentException($"--preset must be small, base or big; found '{p}'.") } },
                "--test" => s with { TestSentences = int.TryParse(Next(), out int n) && n > 0 ? n : throw new ArgumentException("--test must be a positive number.") },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'. See the comment at the top of Program.cs."),
            };
        }
        return s;
    }
}

// Retinal OCT anomaly detection, Model Builder style: train a Vision Transformer on OCT B-scans (by default
// SYNTHETIC scans written in the Kermany OCT2017 folder layout, since the real data set cannot be had offline),
// evaluate it with ML.NET's evaluators (accuracy, macro/micro, log-loss, confusion matrix; AUC for normal vs.
// abnormal), run a one-class detector (RandomizedPca) on the ViT embeddings of NORMAL scans, score the 48 real OCT
// samples, write attention heat maps, save and reload.
//
//   dotnet run -c Release --project examples/OctAnomalyDetection -- [options]
//     --epochs N         passes over the training scans (default 20)
//     --minutes M        training time limit (default 9)
//     --per-class N      synthetic training scans per class (default 2000; 250 per class are kept for testing)
//     --oct2017 DIR      train on a Kermany OCT2017 folder (DIR/train|test/CNV|DME|DRUSEN|NORMAL/*.jpeg) instead
//     --octmnist FILE    train on MedMNIST's octmnist.npz (train/val/test arrays) instead
//     --preset NAME      small | tiny16 | small16 | base16 (default small: 64 x 64, patch 8)
//     --out DIR          where the model and heat maps go (default: a temp folder)
//     --data DIR         data folder with oct-samples/ (else TRANSFORMERS_ML_DATA, else shared/data beside the repository)
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML;
using Transformers.ML.Examples;
using Transformers.ML.ImageClassification;
using Transformers.ML.Datasets;

var settings = Settings.Parse(args);
var clock = Stopwatch.StartNew();
var ml = new MLContext(seed: 1);
Directory.CreateDirectory(settings.Output);

// ---------------------------------------------------------------- data
// Two forms of input, one estimator: image files (LoadImages -> MLImage) or pixel vectors (octmnist.npz).
IDataView train, test;
string imageColumn;
if (settings.OctMnist is string npz)
{
    (train, test) = OctMnist.Load(ml, npz);
    imageColumn = nameof(PixelInput.Pixels);
    Console.WriteLine($"OCTMNIST '{npz}': {Count(train):N0} training and {Count(test):N0} test scans (real data).");
}
else
{
    string folder = settings.Oct2017 ?? SyntheticFolder(settings);
    IDataView Files(string split) => ml.Data.LoadFromEnumerable(
        ImageDatasets.ReadOct2017Folder(folder, split).Select(f => new ModelInput { ImagePath = f.Path, Diagnosis = f.Label }));
    train = ml.Data.ShuffleRows(Files("train"), seed: 1);
    test = Files("test");
    imageColumn = "Image";
    Console.WriteLine($"{(settings.Oct2017 is null ? "SYNTHETIC OCT (not medical data)" : "OCT2017")} '{folder}': {Count(train):N0} training and {Count(test):N0} test scans.");
}

// ---------------------------------------------------------------- training: the ML.NET pipeline
var options = new ImageClassificationOptions
{
    Preset = settings.Preset,
    Epochs = settings.Epochs,                     // about 6 minutes on a 2-core CPU with the defaults; the cosine decay spans them
    MaxTrainingTime = TimeSpan.FromMinutes(settings.Minutes), // a guard for slower machines
    EarlyStoppingPatience = 5,
    ClassBalance = ClassBalance.BalancedSampling, // OCT2017 is imbalanced (CNV 37k, DRUSEN 8.6k)
    Augmentation = new ImageAugmentation(),       // flips, small rotations and shifts, crops, brightness/contrast
    LearningRate = 1e-3,
    Progress = new ConsoleProgress(),
};
var loadImages = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ModelInput.ImagePath));
IEstimator<ITransformer> pipeline = ml.Transforms.Conversion.MapValueToKey("Label", nameof(ModelInput.Diagnosis),
    keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue);
if (settings.OctMnist is null)
{
    pipeline = pipeline.Append(loadImages); // files -> MLImage; OCTMNIST's pixel vectors go straight in
}
pipeline = pipeline
    .Append(ml.Transformers().ImageClassification(labelColumnName: "Label", imageColumnName: imageColumn, options))
    .Append(ml.Transforms.Conversion.MapKeyToValue(nameof(ModelOutput.PredictedDiagnosis), "PredictedLabel"));
ITransformer model = pipeline.Fit(train);
var vit = ((IEnumerable<ITransformer>)model).OfType<ImageClassificationTransformer>().Single(); // the chain's ViT stage
Console.WriteLine($"Trained a ViT of {vit.ParameterCount:N0} parameters ({vit.Config.ImageSize} x {vit.Config.ImageSize}, patch {vit.Config.PatchSize}) in {clock.Elapsed:mm\\:ss}.");

// ---------------------------------------------------------------- evaluation with ML.NET's evaluators
IDataView scored = model.Transform(test);
MulticlassClassificationMetrics metrics = ml.MulticlassClassification.Evaluate(scored);
Console.WriteLine($"Test: micro accuracy {metrics.MicroAccuracy:F4}, macro accuracy {metrics.MacroAccuracy:F4}, log-loss {metrics.LogLoss:F4}");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

// Normal vs. abnormal through ML.NET's binary evaluator: the score is the log-odds of abnormal, 1 - P(NORMAL) against
// P(NORMAL) (the evaluator's threshold 0 is probability 0.5).
int normalIndex = vit.ClassNames.ToList().IndexOf("NORMAL");
var screening = scored.GetColumn<float[]>("Score").Zip(scored.GetColumn<string>(nameof(ModelInput.Diagnosis)))
    .Select(p => new Screening
    {
        Abnormal = p.Second != "NORMAL",
        Score = (float)Math.Log(Math.Max(1 - p.First[normalIndex], 1e-7) / Math.Max(p.First[normalIndex], 1e-7)),
        PredictedLabel = p.First[normalIndex] < 0.5f,
    }).ToList();
var binary = ml.BinaryClassification.EvaluateNonCalibrated(ml.Data.LoadFromEnumerable(screening), nameof(Screening.Abnormal), nameof(Screening.Score));
Console.WriteLine($"Normal vs. abnormal: AUC {binary.AreaUnderRocCurve:F4}, accuracy {binary.Accuracy:F4}, F1 {binary.F1Score:F4}");

// ---------------------------------------------------------------- one-class anomaly detection on the embeddings
// Trained on NORMAL scans only: any departure from a healthy retina scores high, whatever the disease.
IDataView normalTrain = ml.Data.FilterByCustomPredicate<ModelInput>(train, row => row.Diagnosis != "NORMAL");
var detector = ml.AnomalyDetection.Trainers.RandomizedPca("Embedding", rank: 8, ensureZeroMean: false, seed: 1)
    .Fit(model.Transform(normalTrain));
var anomalyInput = ml.Transforms.CustomMapping<DiagnosisRow, AnomalyLabel>((row, label) => label.Anomaly = row.Diagnosis == "NORMAL" ? 0 : 1, contractName: null);
IDataView anomalies = detector.Transform(anomalyInput.Fit(scored).Transform(scored));
AnomalyDetectionMetrics anomalyMetrics = ml.AnomalyDetection.Evaluate(anomalies, labelColumnName: nameof(AnomalyLabel.Anomaly));
Console.WriteLine($"One-class RandomizedPca on NORMAL embeddings: AUC {anomalyMetrics.AreaUnderRocCurve:F4}, detection rate at {anomalyMetrics.DetectionRateAtFalsePositiveCount:F4}");

// ---------------------------------------------------------------- the 48 real OCT samples
string? dataFolder = DataLocator.Find(settings.Data);
string samples = dataFolder is null ? "" : Path.Combine(dataFolder, "oct-samples");
if (settings.OctMnist is null && Directory.Exists(samples))
{
    var real = ImageDatasets.ReadOct2017Folder(samples).Select(f => new ModelInput { ImagePath = f.Path, Diagnosis = f.Label }).ToList();
    var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model);
    int correct = 0;
    Console.WriteLine($"The {real.Count} real scans of '{samples}'" + (settings.Oct2017 is null ? " (the model learned from SYNTHETIC scans: expect little agreement)" : "") + ":");
    foreach (ModelInput scan in real)
    {
        ModelOutput prediction = engine.Predict(scan);
        correct += prediction.PredictedDiagnosis == scan.Diagnosis ? 1 : 0;
        Console.WriteLine($"  {Path.GetFileName(scan.ImagePath),-24} {scan.Diagnosis,-7} -> {prediction.PredictedDiagnosis,-7} ({prediction.Score.Max():P0})");
    }
    Console.WriteLine($"  {correct} of {real.Count} agree with the folder's diagnosis.");
}
else
{
    Console.WriteLine("No oct-samples folder found (--data DIR, TRANSFORMERS_ML_DATA or shared/data): skipping the real scans.");
}

// ---------------------------------------------------------------- where the model looked: attention heat maps
if (settings.OctMnist is null)
{
    var shown = test.GetColumn<string>(nameof(ModelInput.ImagePath)).Zip(test.GetColumn<string>(nameof(ModelInput.Diagnosis)))
        .GroupBy(p => p.Second).Select(g => g.First().First).ToList();
    foreach (string file in shown)
    {
        using MLImage image = MLImage.CreateFromFile(file);
        AttentionMap map = vit.Explain(image);
        string png = Path.Combine(settings.Output, "attention-" + Path.GetFileNameWithoutExtension(file) + ".png");
        AttentionHeatmap.Save(image, map, png);
        Console.WriteLine($"Attention rollout of {Path.GetFileName(file)} -> {png}");
    }
}

// ---------------------------------------------------------------- save, reload, predict
string modelPath = Path.Combine(settings.Output, "oct-vit.safetensors");
vit.Save(modelPath);
using (ImageClassificationTransformer reloaded = ml.Transformers().LoadImageClassification(modelPath))
{
    IDataView again = reloaded.Transform(settings.OctMnist is null ? loadImages.Fit(test).Transform(test) : test);
    var before = scored.GetColumn<float[]>("Score").Take(20).ToList();
    var after = again.GetColumn<float[]>("Score").Take(20).ToList();
    double maxDiff = before.Zip(after).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));
    Console.WriteLine($"Saved to {modelPath} and reloaded: largest score difference on 20 test scans {maxDiff:E1}.");
}
Console.WriteLine($"Done in {clock.Elapsed:mm\\:ss}.");

long Count(IDataView data) => data.GetColumn<string>(nameof(ModelInput.Diagnosis)).LongCount();

static string SyntheticFolder(Settings settings)
{
    string folder = Path.Combine(Path.GetTempPath(), "transformers-ml-example", $"synthetic-oct-{settings.PerClass}");
    if (!File.Exists(Path.Combine(folder, "complete")))
    {
        var write = Stopwatch.StartNew();
        SyntheticOct.WriteOct2017Folder(folder, settings.PerClass, 250, size: 128, seed: 1);
        File.WriteAllText(Path.Combine(folder, "complete"), "");
        Console.WriteLine($"Wrote {settings.PerClass * 4 + 1000:N0} SYNTHETIC 128 x 128 scans to '{folder}' in {write.Elapsed.TotalSeconds:F0} s.");
    }
    return folder;
}

/// <summary>One scan: its file and its diagnosis (CNV, DME, DRUSEN or NORMAL).</summary>
public sealed class ModelInput
{
    public string ImagePath { get; set; } = "";

    public string Diagnosis { get; set; } = "";
}

/// <summary>What the model says: the diagnosis and the probability of each class.</summary>
public sealed class ModelOutput
{
    public string PredictedDiagnosis { get; set; } = "";

    public float[] Score { get; set; } = Array.Empty<float>();
}

/// <summary>A scan as pixels (OCTMNIST).</summary>
public sealed class PixelInput
{
    public float[] Pixels { get; set; } = Array.Empty<float>();

    public string Diagnosis { get; set; } = "";
}

public sealed class Screening
{
    public bool Abnormal { get; set; }

    public float Score { get; set; }

    public bool PredictedLabel { get; set; }
}

public sealed class DiagnosisRow
{
    public string Diagnosis { get; set; } = "";
}

public sealed class AnomalyLabel
{
    public float Anomaly { get; set; }
}

/// <summary>MedMNIST's octmnist.npz: uint8 images (N, S, S) and labels (N, 1) with 0 CNV, 1 DME, 2 DRUSEN, 3 NORMAL.</summary>
internal static class OctMnist
{
    public static (IDataView Train, IDataView Test) Load(MLContext ml, string path)
    {
        Dictionary<string, ImageArray> arrays = ImageDatasets.ReadNpz(path);
        IDataView Split(string name)
        {
            ImageArray images = arrays[$"{name}_images"], labels = arrays[$"{name}_labels"];
            int size = images.ItemSize;
            var rows = Enumerable.Range(0, images.Count).Select(i => new PixelInput
            {
                Pixels = images.Data.AsSpan(i * size, size).ToArray().Select(b => b / 255f).ToArray(),
                Diagnosis = ImageDatasets.Oct2017Classes[labels.Data[i]],
            });
            var schema = SchemaDefinition.Create(typeof(PixelInput));
            schema[nameof(PixelInput.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
            return ml.Data.LoadFromEnumerable(rows.ToList(), schema);
        }
        return (ml.Data.ShuffleRows(Split("train"), seed: 1), Split("test"));
    }
}

/// <summary>Loss, images/s and ETA while training; validation loss and accuracy after each epoch.</summary>
internal sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p) => Console.WriteLine(p.Kind == TrainingProgressKind.EpochEnd
        ? $"Epoch {p.Epoch}/{p.Epochs}: validation loss {p.ValidationValue:F3}, {p.Sample}"
        : $"  step {p.Step}  loss {p.Loss:F3}  lr {p.LearningRate:E2}  {p.Throughput:N0} images/s  elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}");
}

internal sealed record Settings(int Epochs, double Minutes, int PerClass, string? Oct2017, string? OctMnist, VitPreset Preset, string Output, string? Data)
{
    public static Settings Parse(string[] args)
    {
        var s = new Settings(20, 9, 2000, null, null, VitPreset.Small, Path.Combine(Path.GetTempPath(), "transformers-ml-example", "oct"), null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--minutes" => s with { Minutes = double.TryParse(Next(), System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 ? m : throw new ArgumentException("--minutes must be a positive number.") },
                "--epochs" => s with { Epochs = int.TryParse(Next(), out int e) && e >= 1 ? e : throw new ArgumentException("--epochs must be a number >= 1.") },
                "--per-class" => s with { PerClass = int.TryParse(Next(), out int n) && n >= 10 ? n : throw new ArgumentException("--per-class must be a number >= 10.") },
                "--oct2017" => s with { Oct2017 = Directory.Exists(Next()) ? args[i] : throw new DirectoryNotFoundException($"--oct2017 '{args[i]}' does not exist.") },
                "--octmnist" => s with { OctMnist = File.Exists(Next()) ? args[i] : throw new FileNotFoundException($"--octmnist '{args[i]}' does not exist.") },
                "--preset" => s with { Preset = Next() switch { "small" => VitPreset.Small, "tiny16" => VitPreset.Tiny16, "small16" => VitPreset.Small16, "base16" => VitPreset.Base16, var p => throw new ArgumentException($"--preset must be small, tiny16, small16 or base16; found '{p}'.") } },
                "--out" => s with { Output = Next() },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'. See the comment at the top of Program.cs."),
            };
        }
        return s;
    }
}

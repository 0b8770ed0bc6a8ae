// Retinal OCT anomaly detection on REAL scans, Model Builder style. A Vision Transformer learns the four diagnoses of
// Kermany's OCT2017 scans (CNV, DME, DRUSEN, NORMAL) with the recipe the benchmark chose by patient-grouped
// cross-validation (ImageClassificationOptions.RetinalOct); ML.NET's evaluators judge it on held-out PATIENTS (accuracy,
// per-class recall, confusion matrix, normal vs. abnormal AUC); a one-class RandomizedPca fitted on the embeddings of
// NORMAL scans only flags anomalies; attention heat maps show where the model looked. The final model is then trained on
// every scan, saved, reloaded, and exported to ONNX as an ML.NET ApplyOnnxModel pipeline saved as a .zip.
//
//   dotnet run -c Release --project examples/OctAnomalyDetection -- [options]   (--help lists the options: Settings.Usage at the end of this file)
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML;
using Transformers.ML.Datasets;
using Transformers.ML.Examples;
using Transformers.ML.ImageClassification;

var settings = CommandLine.Parse(args, Settings.Usage, Settings.Parse);
var clock = Stopwatch.StartNew();
var ml = new MLContext(seed: 1);
Directory.CreateDirectory(settings.Output);

// New scans to score (--evaluate), read first so that a wrong folder fails before minutes of training.
List<ModelInput>? newScans = settings.Evaluate is string evaluateFolder ? Scans.ReadToScore(evaluateFolder) : null;
string newScansTitle = $"New scans of '{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(settings.Evaluate ?? ".")))}'";
if (newScans is not null)
{
    Console.WriteLine($"To score: {newScans.Count} scans of '{Path.GetFullPath(settings.Evaluate!)}': " +
        string.Join(", ", newScans.GroupBy(s => s.Diagnosis).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}")));
}

// ---------------------------------------------------------------- --load: a saved model on new scans, no training
if (settings.Load is string saved)
{
    using ImageClassificationTransformer loaded = ml.Transformers().LoadImageClassification(saved);
    if (!loaded.ClassNames.Contains("NORMAL"))
    {
        throw new InvalidDataException($"'{saved}' classifies [{string.Join(", ", loaded.ClassNames)}]; this example scores models of the OCT2017 classes (CNV, DME, DRUSEN, NORMAL).");
    }
    Console.WriteLine($"Loaded {saved}: a ViT of {loaded.ParameterCount:N0} parameters for [{string.Join(", ", loaded.ClassNames)}].");
    // The one-class detector is fitted on healthy scans the model is not judged on: the NORMAL scans of the data setting.
    List<ModelInput> reference = Scans.FindReal(settings, out string referenceSource) ?? new List<ModelInput>();
    if (reference.Count > 0)
    {
        Console.WriteLine($"Healthy reference scans for the one-class detector: the NORMAL scans of {referenceSource}.");
        Scans.NoteSharedPatients(reference, newScans!, settings.Evaluate!, "the data setting's scans (those this example trains on)");
    }
    // The labels are mapped to keys in the model's own class order, so that ML.NET's evaluator reads its scores right.
    IDataView classes = ml.Data.LoadFromEnumerable(loaded.ClassNames.Select(c => new DiagnosisRow { Diagnosis = c }));
    ITransformer scorer = ml.Transforms.Conversion.MapValueToKey("Label", nameof(ModelInput.Diagnosis), keyData: classes)
        .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ModelInput.ImagePath)))
        .Fit(ml.Data.LoadFromEnumerable(newScans!))
        .Append(loaded);
    Evaluate(newScansTitle, scorer, loaded, reference, newScans!, "evaluate");
    Console.WriteLine($"Done in {clock.Elapsed:mm\\:ss}.");
    return 0;
}

// ---------------------------------------------------------------- data: real scans, split by patient
List<ModelInput> scans = Scans.Find(settings, out string source);
Console.WriteLine($"{scans.Count} scans of {scans.Select(s => s.Patient).Distinct().Count()} patients from {source}: " +
    string.Join(", ", scans.GroupBy(s => s.Diagnosis).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}")));
// One patient's scans are near copies: the held-out fifth shares no patient with the training part.
int[] fold = ImageDatasets.GroupedFolds(scans.Select(s => s.Patient).ToList(), scans.Select(s => s.Diagnosis).ToList(), folds: 5, seed: 1);
List<ModelInput> train = scans.Where((_, i) => fold[i] != 0).ToList(), test = scans.Where((_, i) => fold[i] == 0).ToList();
Console.WriteLine($"Training on {train.Count} scans, testing on {test.Count} scans of other patients.");

// ---------------------------------------------------------------- training: the ML.NET pipeline
ImageClassificationOptions Recipe(string curves)
{
    ImageClassificationOptions options = ImageClassificationOptions.RetinalOct(TimeSpan.FromMinutes(settings.Minutes));
    options.Progress = new ConsoleProgress();
    options.LogEverySteps = 50;
    options.CurvesPath = Path.Combine(settings.Output, curves);
    return options;
}
IEstimator<ITransformer> Pipeline(ImageClassificationOptions options) =>
    ml.Transforms.Conversion.MapValueToKey("Label", nameof(ModelInput.Diagnosis), keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
        .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ModelInput.ImagePath)))
        .Append(ml.Transformers().ImageClassification(labelColumnName: "Label", imageColumnName: "Image", options))
        .Append(ml.Transforms.Conversion.MapKeyToValue(nameof(ModelOutput.PredictedDiagnosis), "PredictedLabel"));

Console.WriteLine($"\nTraining a ViT for {settings.Minutes:F1} minutes on the training patients...");
IDataView trainData = ml.Data.LoadFromEnumerable(train), testData = ml.Data.LoadFromEnumerable(test);
ITransformer model = Pipeline(Recipe("training-curves.png")).Fit(trainData);
var vit = ((IEnumerable<ITransformer>)model).OfType<ImageClassificationTransformer>().Single(); // the chain's ViT stage
Console.WriteLine($"Trained a ViT of {vit.ParameterCount:N0} parameters ({vit.Config.ImageSize} x {vit.Config.ImageSize}, patch {vit.Config.PatchSize}) " +
    $"in {vit.TrainingReports.LastOrDefault()?.Elapsed.TotalMinutes:F1} min; curves in {Path.Combine(settings.Output, "training-curves.png")}");

// ---------------------------------------------------------------- evaluation with ML.NET's evaluators, on other patients
Evaluate("Held-out patients", model, vit, train, test, "held-out");

// ---------------------------------------------------------------- the final model: every scan, saved, reloaded
Console.WriteLine($"\nTraining the final model on all {scans.Count} scans for {settings.Minutes:F1} minutes...");
ITransformer final = Pipeline(Recipe("final-training-curves.png")).Fit(ml.Data.LoadFromEnumerable(scans));
var finalVit = ((IEnumerable<ITransformer>)final).OfType<ImageClassificationTransformer>().Single();
string modelPath = Path.Combine(settings.Output, "oct-vit.safetensors");
finalVit.Save(modelPath);
using (ImageClassificationTransformer reloaded = ml.Transformers().LoadImageClassification(modelPath))
{
    IDataView images = ml.Transforms.LoadImages("Image", null, nameof(ModelInput.ImagePath)).Fit(testData).Transform(testData);
    float[][] before = finalVit.Transform(images).GetColumn<float[]>("Score").Take(20).ToArray();
    float[][] after = reloaded.Transform(images).GetColumn<float[]>("Score").Take(20).ToArray();
    double diff = before.Zip(after).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));
    Console.WriteLine($"Saved to {modelPath} and reloaded: largest score difference on 20 scans {diff:E1}.");

    // ---------------------------------------------------------------- deployment: ONNX in an ML.NET pipeline saved as .zip
    // The graph takes the scans at their most common size and resamples them as the model does: ResizeImages leaves scans
    // of that size as they are (its own resampling differs from the model's) and brings the others to it.
    (int height, int width) = ImageSizes.MostCommon(scans.Select(s => s.ImagePath));
    var onnxOptions = new OnnxExportOptions { InputHeight = height, InputWidth = width };
    string onnx = Path.Combine(settings.Output, "oct-vit.onnx");
    reloaded.ExportToOnnx(onnx, onnxOptions);
    var deploy = ml.Transforms.LoadImages("Image", null, nameof(ModelInput.ImagePath))
        // Fill stretches the whole scan, as the model does (the default, IsoCrop, would cut the sides of a wide scan);
        // the graph then resamples, masks wedges, crops the band and averages down itself.
        .Append(ml.Transforms.ResizeImages("Image", width, height, resizing: Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.Fill))
        .Append(ml.Transforms.ExtractPixels("pixels", "Image", scaleImage: 1 / 255f))
        .Append(ml.Transforms.ApplyOnnxModel(new[] { "probabilities" }, new[] { "pixels" }, onnx));
    ITransformer deployed = deploy.Fit(testData);
    string zip = Path.Combine(settings.Output, "oct-vit-onnx.zip");
    ml.Model.Save(deployed, testData.Schema, zip);
    ITransformer fromZip = ml.Model.Load(zip, out _);
    float[][] onnxScores = fromZip.Transform(testData).GetColumn<float[]>("probabilities").ToArray();
    float[][] torchScores = reloaded.Transform(images).GetColumn<float[]>("Score").ToArray();
    int agree = onnxScores.Zip(torchScores).Count(p => Array.IndexOf(p.First, p.First.Max()) == Array.IndexOf(p.Second, p.Second.Max()));
    bool[] atSize = test.Select(s => ImageSizes.Of(s.ImagePath) == (height, width)).ToArray();
    string Largest(bool at) => onnxScores.Zip(torchScores).Where((_, i) => atSize[i] == at)
        .Select(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second))).DefaultIfEmpty().Max().ToString("E1");
    Console.WriteLine($"ONNX: {onnx} ({new FileInfo(onnx).Length / 1e6:F1} MB, taking {width} x {height} scans) in the ApplyOnnxModel pipeline {zip}: reloaded, " +
        $"it gives the same class as the TorchSharp model for {agree} of {onnxScores.Length} scans; largest probability difference {Largest(true)} on the " +
        $"{atSize.Count(a => a)} scans of {width} x {height} (ResizeImages leaves them as they are), {Largest(false)} on the {atSize.Count(a => !a)} others (resized by ResizeImages).");
}

// ---------------------------------------------------------------- --evaluate: the final model on new scans
if (newScans is not null)
{
    Scans.NoteSharedPatients(scans, newScans, settings.Evaluate!, "the training scans");
    Evaluate(newScansTitle, final, finalVit, scans, newScans, "evaluate");
}
Console.WriteLine($"Done in {clock.Elapsed:mm\\:ss}.");
return 0;

// ML.NET's evaluators on scored scans: accuracy, recall per class and the confusion matrix; normal vs. abnormal AUC; a
// one-class RandomizedPca fitted on the embeddings of the NORMAL scans of `reference` only; heat maps of two scans per class.
void Evaluate(string title, ITransformer model, ImageClassificationTransformer vit, List<ModelInput> reference, List<ModelInput> test, string name)
{
    IDataView scored = model.Transform(ml.Data.LoadFromEnumerable(test));
    MulticlassClassificationMetrics metrics = ml.MulticlassClassification.Evaluate(scored);
    Console.WriteLine($"\n{title} ({test.Count} scans): accuracy {metrics.MicroAccuracy:F3}, macro accuracy {metrics.MacroAccuracy:F3}, log-loss {metrics.LogLoss:F3}");
    Console.WriteLine("Recall: " + string.Join(", ", vit.ClassNames.Select((c, i) => $"{c} {Recall(metrics, i):F2}")));
    Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());
    string confusion = Path.Combine(settings.Output, name == "held-out" ? "confusion-matrix.png" : $"confusion-matrix-{name}.png");
    Charts.SaveConfusionMatrix(metrics.ConfusionMatrix, vit.ClassNames, confusion, $"{title}: {test.Count} scans, accuracy {metrics.MicroAccuracy:P1}");
    Console.WriteLine($"Confusion matrix: {confusion}");

    // Normal vs. abnormal through ML.NET's binary evaluator: the score is the log-odds of abnormal (1 - P(NORMAL) against
    // P(NORMAL); the evaluator's threshold 0 is probability 0.5).
    int normal = vit.ClassNames.ToList().IndexOf("NORMAL");
    if (test.All(s => s.Diagnosis == "NORMAL") || test.All(s => s.Diagnosis != "NORMAL"))
    {
        Console.WriteLine("Normal vs. abnormal: no AUC, since these scans are all NORMAL or all abnormal.");
    }
    else
    {
        var screening = scored.GetColumn<float[]>("Score").Zip(scored.GetColumn<string>(nameof(ModelInput.Diagnosis)))
            .Select(p => new Screening
            {
                Abnormal = p.Second != "NORMAL",
                Score = (float)Math.Log(Math.Max(1 - p.First[normal], 1e-7) / Math.Max(p.First[normal], 1e-7)),
                PredictedLabel = p.First[normal] < 0.5f,
            }).ToList();
        var binary = ml.BinaryClassification.EvaluateNonCalibrated(ml.Data.LoadFromEnumerable(screening), nameof(Screening.Abnormal), nameof(Screening.Score));
        Console.WriteLine($"Normal vs. abnormal: AUC {binary.AreaUnderRocCurve:F3}, sensitivity {binary.PositiveRecall:F3}, specificity {binary.NegativeRecall:F3}");

        // One-class anomaly detection on the embeddings, fitted on NORMAL scans only: any departure from a healthy retina
        // scores high, whatever the disease.
        List<ModelInput> healthy = reference.Where(s => s.Diagnosis == "NORMAL").ToList();
        if (healthy.Count > 8)
        {
            var detector = ml.AnomalyDetection.Trainers.RandomizedPca("Embedding", rank: 8, ensureZeroMean: false, seed: 1).Fit(model.Transform(ml.Data.LoadFromEnumerable(healthy)));
            var anomalyLabel = ml.Transforms.CustomMapping<DiagnosisRow, AnomalyLabel>((row, label) => label.Anomaly = row.Diagnosis == "NORMAL" ? 0 : 1, contractName: null);
            AnomalyDetectionMetrics anomaly = ml.AnomalyDetection.Evaluate(detector.Transform(anomalyLabel.Fit(scored).Transform(scored)), labelColumnName: nameof(AnomalyLabel.Anomaly));
            Console.WriteLine($"One-class RandomizedPca on the embeddings of {healthy.Count} NORMAL scans only: AUC {anomaly.AreaUnderRocCurve:F3}");
        }
        else
        {
            Console.WriteLine($"One-class RandomizedPca: skipped, {healthy.Count} healthy reference scans (it needs more than 8; pass --data or --oct2017).");
        }
    }

    // Where the model looked: attention heat maps.
    string maps = Path.Combine(settings.Output, name == "held-out" ? "heatmaps" : $"heatmaps-{name}");
    Directory.CreateDirectory(maps);
    foreach (var group in test.GroupBy(s => s.Diagnosis).OrderBy(g => g.Key))
    {
        foreach (ModelInput scan in group.Take(2))
        {
            using MLImage image = MLImage.CreateFromFile(scan.ImagePath);
            AttentionMap map = vit.Explain(image);
            string file = Path.Combine(maps, Path.GetFileNameWithoutExtension(scan.ImagePath) + ".png");
            AttentionHeatmap.Save(image, map, file);
            Console.WriteLine($"  {Path.GetFileName(scan.ImagePath),-26} {scan.Diagnosis,-7} -> {vit.ClassNames[Array.IndexOf(map.Probabilities, map.Probabilities.Max())],-7} heat map {file}");
        }
    }
}

static double Recall(MulticlassClassificationMetrics m, int c)
{
    double total = m.ConfusionMatrix.Counts[c].Sum();
    return total > 0 ? m.ConfusionMatrix.Counts[c][c] / total : double.NaN;
}

/// <summary>One scan: its file, its diagnosis (CNV, DME, DRUSEN or NORMAL) and its patient.</summary>
public sealed class ModelInput
{
    public string ImagePath { get; set; } = "";

    public string Diagnosis { get; set; } = "";

    public string Patient { get; set; } = "";
}

/// <summary>What the model says: the diagnosis and the probability of each class.</summary>
public sealed class ModelOutput
{
    public string PredictedDiagnosis { get; set; } = "";

    public float[] Score { get; set; } = Array.Empty<float>();
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

/// <summary>Where the scans come from: an OCT2017 folder, the data setting's real scans (downloaded when missing), or synthetic ones.</summary>
internal static class Scans
{
    public static List<ModelInput> Find(Settings settings, out string source)
    {
        if (!settings.Synthetic)
        {
            if (FindReal(settings, out source) is List<ModelInput> real)
            {
                return real;
            }
            Console.WriteLine("No real OCT scans found or downloaded: falling back to SYNTHETIC scans (pass --data, --oct2017 or set TRANSFORMERS_ML_DATA for real ones).");
        }
        string folder = Path.Combine(Path.GetTempPath(), "transformers-ml-example", "synthetic-oct-128");
        if (!File.Exists(Path.Combine(folder, "complete")))
        {
            SyntheticOct.WriteOct2017Folder(folder, trainPerClass: 400, testPerClass: 0, size: 128, seed: 1);
            File.WriteAllText(Path.Combine(folder, "complete"), "");
        }
        source = $"'{folder}' (SYNTHETIC scans: not medical data)";
        // Synthetic scans have no patients: each is its own.
        return ImageDatasets.ReadOct2017Folder(folder, "train").Select((f, i) => new ModelInput { ImagePath = f.Path, Diagnosis = f.Label, Patient = i.ToString() }).ToList();
    }

    /// <summary>The real scans of --oct2017, else of the data setting's oct-real (and oct-samples); null when there are none.</summary>
    public static List<ModelInput>? FindReal(Settings settings, out string source)
    {
        var folders = new List<string>();
        if (settings.Oct2017 is string oct2017)
        {
            folders.AddRange(Splits(oct2017, "train", "test", "val"));
        }
        else if (DataLocator.Folder(settings.Data, "oct-real") is string real)
        {
            folders.Add(real);
            if (DataLocator.Find(settings.Data) is string data && Directory.Exists(Path.Combine(data, "oct-samples")))
            {
                folders.Add(Path.Combine(data, "oct-samples"));
            }
        }
        source = string.Join(" and ", folders.Select(f => $"'{f}'")) + " (real scans)";
        return folders.Count == 0 ? null : folders.SelectMany(f => ImageDatasets.ReadOct2017Folder(f)).Select(f => new ModelInput
        {
            ImagePath = f.Path, Diagnosis = f.Label, Patient = ImageDatasets.Oct2017Patient(f.Path),
        }).ToList();
    }

    /// <summary>
    /// The scans of --evaluate DIR (DIR/CLASS/*.*, or DIR/test and DIR/val as in Kermany's download); a file not named
    /// CLASS-PATIENT-IMAGE has no patient (then it cannot be checked against the training patients).
    /// </summary>
    public static List<ModelInput> ReadToScore(string folder) =>
        Splits(folder, "test", "val").SelectMany(f => ImageDatasets.ReadOct2017Folder(f)).Select(f => new ModelInput
        {
            ImagePath = f.Path, Diagnosis = f.Label, Patient = PatientOrEmpty(f.Path),
        }).ToList();

    /// <summary>Says how many of <paramref name="scored"/> belong to patients of <paramref name="known"/>: their scores are optimistic.</summary>
    public static void NoteSharedPatients(List<ModelInput> known, List<ModelInput> scored, string folder, string what)
    {
        var patients = known.Select(s => s.Patient).ToHashSet();
        int shared = scored.Count(s => s.Patient.Length > 0 && patients.Contains(s.Patient));
        int unnamed = scored.Count(s => s.Patient.Length == 0);
        if (shared > 0)
        {
            Console.WriteLine($"Note: {shared} of the {scored.Count} scans of '{folder}' belong to patients of {what}; a patient's scans are near copies, so their scores are optimistic.");
        }
        if (unnamed > 0)
        {
            Console.WriteLine($"Note: {unnamed} of the {scored.Count} scans of '{folder}' are not named CLASS-PATIENT-IMAGE, so they could not be checked against the patients of {what}.");
        }
    }

    /// <summary>The split folders of <paramref name="folder"/> that exist, else the folder itself.</summary>
    private static IEnumerable<string> Splits(string folder, params string[] splits) =>
        splits.Select(s => Path.Combine(folder, s)).Where(Directory.Exists).DefaultIfEmpty(folder).ToList();

    private static string PatientOrEmpty(string path)
    {
        try
        {
            return ImageDatasets.Oct2017Patient(path);
        }
        catch (FormatException)
        {
            return "";
        }
    }
}

/// <summary>Loss, images/s and ETA while training; validation loss and accuracy after each epoch (every 20th shown).</summary>
internal sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p)
    {
        if (p.Kind == TrainingProgressKind.EpochEnd && p.Epoch % 20 == 0)
        {
            Console.WriteLine($"Epoch {p.Epoch}/{p.Epochs}: validation loss {p.ValidationValue:F3}, {p.Sample}");
        }
        else if (p.Kind == TrainingProgressKind.Step && p.Step % 250 == 0)
        {
            Console.WriteLine($"  step {p.Step}/{p.TotalSteps}  loss {p.Loss:F3}  lr {p.LearningRate:E2}  {p.Throughput:N0} images/s  elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}");
        }
    }
}

internal sealed record Settings(double Minutes, string? Oct2017, bool Synthetic, string Output, string? Data, string? Evaluate = null, string? Load = null)
{
    /// <summary>What --help prints.</summary>
    public const string Usage = """
        dotnet run -c Release --project examples/OctAnomalyDetection -- [options]
          --minutes M        training time of each of the two models (held-out evaluation, final model); default 6
          --oct2017 DIR      scans in the OCT2017 layout (DIR/CLASS/*.jpeg, or DIR/train and DIR/test): e.g. the Kermany download
          --synthetic        SYNTHETIC scans instead (a demonstration without data: no medical meaning)
          --evaluate DIR     new scans of other patients (DIR/CLASS/*.jpeg, or DIR/test and DIR/val): the final model is
                             scored on them with the same metrics and heat maps
          --load FILE        no training: score a model this example saved (oct-vit.safetensors) on the scans of --evaluate
          --out DIR          model, pictures and ONNX files (default: a temp folder)
          --data DIR         data folder with oct-real/ (else TRANSFORMERS_ML_DATA, else shared/data beside the repository,
                             else the 600 scans are downloaded once from their canonical address into ~/.cache/transformers-ml)
        """;

    public static Settings Parse(string[] args)
    {
        var s = new Settings(6, null, false, Path.Combine(Path.GetTempPath(), "transformers-ml-example", "oct"), null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--minutes" => s with { Minutes = double.TryParse(Next(), System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 ? m : throw new ArgumentException("--minutes must be a positive number.") },
                "--oct2017" => s with { Oct2017 = Directory.Exists(Next()) ? args[i] : throw new DirectoryNotFoundException($"--oct2017 '{args[i]}' does not exist.") },
                "--synthetic" => s with { Synthetic = true },
                "--evaluate" => s with { Evaluate = Directory.Exists(Next()) ? args[i] : throw new DirectoryNotFoundException($"--evaluate '{args[i]}' does not exist.") },
                "--load" => s with { Load = File.Exists(Next()) ? args[i] : throw new FileNotFoundException($"--load '{args[i]}' does not exist.", args[i]) },
                "--out" => s with { Output = Next() },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'."),
            };
        }
        return s.Load is not null && s.Evaluate is null
            ? throw new ArgumentException("--load needs --evaluate DIR: the scans to score with the saved model.")
            : s;
    }
}

// Patient-grouped k-fold cross-validation of an OCT recipe on real scans, through ML.NET's evaluators: per fold, every
// stage (key mapping, pretraining, the classifier, the one-class detector) is fitted on that fold's training part only;
// its evaluation part is scored with MulticlassClassification.Evaluate (accuracy, macro accuracy, per-class recall,
// confusion), BinaryClassification.EvaluateNonCalibrated (normal vs. abnormal AUC from the log-odds of "not NORMAL") and
// AnomalyDetection.Evaluate (a RandomizedPca fitted on the NORMAL training embeddings only).
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Datasets;
using Transformers.ML.Examples;
using Transformers.ML.ImageClassification;

namespace Transformers.ML.Benchmarks;

/// <summary>A scan of the cross-validation: file, diagnosis, patient.</summary>
internal sealed class OctScan
{
    public string ImagePath { get; set; } = "";

    public string Diagnosis { get; set; } = "";

    public string Patient { get; set; } = "";
}

/// <summary>How one fold trains: the classifier's options for a time budget, and an optional pretraining on the fold's training images.</summary>
/// <param name="Pretrain">
/// Given the fold's training images (an IDataView with an Image column, no label used) and the fold's budget: the classifier
/// estimator, started from what the pretraining learned, and the minutes the pretraining took; null trains from scratch.
/// </param>
internal sealed record OctRecipe(string Name, Func<TimeSpan, ImageClassificationOptions> Options,
    Func<MLContext, IDataView, TimeSpan, (ImageClassificationEstimator Classifier, double Minutes, IDisposable? Pretrained)>? Pretrain = null,
    string Notes = "");

/// <summary>The metrics of one fold.</summary>
internal sealed record OctFoldResult(double Accuracy, double MacroAccuracy, double[] Recall, double Auc, double OneClassAuc, double[,] Confusion,
    double TrainingMinutes, long Steps, int Epochs, double FinalLoss, double FlipAccuracy, double FlipAuc, double? PretrainedOneClassAuc);

/// <summary>Means and spreads over the folds.</summary>
internal sealed record OctCvResult(OctRecipe Recipe, IReadOnlyList<OctFoldResult> Folds, string[] Classes)
{
    public (double Mean, double Std) Stat(Func<OctFoldResult, double> metric)
    {
        double[] values = Folds.Select(metric).ToArray();
        double mean = values.Average();
        double std = values.Length > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1)) : 0;
        return (mean, std);
    }

    /// <summary>The confusion matrix summed over the folds (rows: truth, columns: prediction).</summary>
    public double[,] Confusion
    {
        get
        {
            int k = Classes.Length;
            var sum = new double[k, k];
            foreach (OctFoldResult fold in Folds)
            {
                for (int i = 0; i < k; i++)
                {
                    for (int j = 0; j < k; j++)
                    {
                        sum[i, j] += fold.Confusion[i, j];
                    }
                }
            }
            return sum;
        }
    }
}

internal static class OctCrossValidation
{
    /// <summary>The real scans of OCT2017-layout folders (e.g. oct-real and oct-samples), with their patients.</summary>
    public static List<OctScan> RealScans(IEnumerable<string> folders)
    {
        var scans = new List<OctScan>();
        foreach (string folder in folders)
        {
            {
                scans.AddRange(ImageDatasets.ReadOct2017Folder(folder).Select(f => new OctScan
                {
                    ImagePath = f.Path, Diagnosis = f.Label, Patient = ImageDatasets.Oct2017Patient(f.Path),
                }));
            }
        }
        return scans;
    }

    /// <summary>The 600 scans of oct-real (downloaded when no data folder has them); none, said on the console, when they cannot be found.</summary>
    public static List<OctScan> OctReal(BenchmarkOptions options, string area)
    {
        List<OctScan> scans = RealScans(new[] { DataLocator.Folder(options.Data, "oct-real") }.OfType<string>());
        if (scans.Count == 0)
        {
            Console.WriteLine($"  {area}: no real OCT scans (oct-real); its ViT rows are skipped.");
        }
        return scans;
    }

    /// <summary>
    /// The first recipe trained for <paramref name="minutes"/> on the patients outside fold <paramref name="index"/> (from 0)
    /// of <paramref name="folds"/> (seed 1); <paramref name="train"/> and <paramref name="test"/> are the training and the held-out scans.
    /// </summary>
    public static ImageClassificationTransformer TrainFold(MLContext ml, List<OctScan> scans, int folds, int index, double minutes, string area,
        out List<OctScan> train, out List<OctScan> test)
    {
        int[] fold = ImageDatasets.GroupedFolds(scans.Select(s => s.Patient).ToList(), scans.Select(s => s.Diagnosis).ToList(), folds, 1);
        train = scans.Where((_, i) => fold[i] != index).ToList();
        test = scans.Where((_, i) => fold[i] == index).ToList();
        IDataView trainData = ml.Data.LoadFromEnumerable(train);
        var prepare = ml.Transforms.Conversion.MapValueToKey("Label", nameof(OctScan.Diagnosis),
                keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
            .Append(ml.Transforms.LoadImages("Image", imageFolder: null, nameof(OctScan.ImagePath)))
            .Fit(trainData);
        Console.WriteLine($"  {area}: training the OCT ViT for {minutes} min on {train.Count} scans (fold {index + 1} of {folds} by patient)...");
        ImageClassificationOptions recipe = OctBenchmark.Recipes[0].Options(TimeSpan.FromMinutes(minutes));
        return ml.Transformers().ImageClassification(recipe).Fit(prepare.Transform(trainData));
    }

    /// <summary>
    /// Probabilities of an exported ViT for <paramref name="scans"/> the way an ML.NET application deploys it: LoadImages ->
    /// ResizeImages to the graph's input (Fill) -> ExtractPixels -> ApplyOnnxModel.
    /// </summary>
    public static float[][] Deployed(MLContext ml, IDataView scans, string onnx, int height, int width) =>
        ml.Transforms.LoadImages("Image", null, nameof(OctScan.ImagePath))
            .Append(ml.Transforms.ResizeImages("Image", width, height, resizing: Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.Fill))
            .Append(ml.Transforms.ExtractPixels("pixels", "Image", scaleImage: 1 / 255f))
            .Append(ml.Transforms.ApplyOnnxModel(new[] { "probabilities" }, new[] { "pixels" }, onnx))
            .Fit(scans).Transform(scans).GetColumn<float[]>("probabilities").ToArray();

    public static OctCvResult Run(OctRecipe recipe, IReadOnlyList<OctScan> scans, int folds, TimeSpan budgetPerFold, int seed, Action<string>? log = null,
        int? foldsToRun = null)
    {
        int[] fold = ImageDatasets.GroupedFolds(scans.Select(s => s.Patient).ToList(), scans.Select(s => s.Diagnosis).ToList(), folds, seed);
        var results = new List<OctFoldResult>();
        string[] classes = ImageDatasets.Oct2017Classes.ToArray();
        for (int f = 0; f < Math.Min(folds, foldsToRun ?? folds); f++)
        {
            var train = scans.Where((_, i) => fold[i] != f).ToList();
            var test = scans.Where((_, i) => fold[i] == f).ToList();
            OctFoldResult result = RunFold(recipe, train, test, budgetPerFold, seed + f);
            results.Add(result);
            log?.Invoke($"    {recipe.Name} fold {f + 1}/{folds}: {train.Count} train / {test.Count} test scans, accuracy {result.Accuracy:F3}, macro {result.MacroAccuracy:F3}, " +
                $"AUC {result.Auc:F3}, one-class AUC {result.OneClassAuc:F3}, recall {string.Join(" ", classes.Zip(result.Recall, (c, r) => $"{c} {r:F2}"))}, {result.TrainingMinutes:F1} min, " +
                $"{result.Steps} steps in {result.Epochs} epochs, last epoch's training loss {result.FinalLoss:F3}; with test-time flip: accuracy {result.FlipAccuracy:F3}, AUC {result.FlipAuc:F3}" +
                (result.PretrainedOneClassAuc is double p ? $"; one-class AUC of the pretrained embeddings alone {p:F3}" : ""));
        }
        return new OctCvResult(recipe, results, classes);
    }

    private static OctFoldResult RunFold(OctRecipe recipe, List<OctScan> train, List<OctScan> test, TimeSpan budget, int seed)
    {
        var ml = new MLContext(seed: seed);
        IDataView trainData = ml.Data.LoadFromEnumerable(train);
        IDataView testData = ml.Data.LoadFromEnumerable(test);
        var prepare = ml.Transforms.Conversion.MapValueToKey("Label", nameof(OctScan.Diagnosis),
                keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
            .Append(ml.Transforms.LoadImages("Image", imageFolder: null, nameof(OctScan.ImagePath)))
            .Fit(trainData); // fitted on the training part only
        IDataView trainImages = prepare.Transform(trainData);
        IDataView testImages = prepare.Transform(testData);

        var clock = Stopwatch.StartNew();
        ImageClassificationOptions options = recipe.Options(budget);
        options.Seed = seed;
        (ImageClassificationEstimator estimator, double _, IDisposable? kept) = recipe.Pretrain?.Invoke(ml, trainImages, budget)
            ?? (ml.Transformers().ImageClassification(options), 0, null);
        using IDisposable? disposeAfterward = kept; // the pretrained model the estimator starts from
        var pretrained = kept as MaskedAutoencoderTransformer;
        using ImageClassificationTransformer model = estimator.Fit(trainImages);
        double minutes = clock.Elapsed.TotalMinutes;
        double? pretrainedOneClass = pretrained is null ? null
            : OneClassAuc(ml, pretrained.Transform(trainImages), pretrained.Transform(testImages)); // the self-supervised embeddings alone

        IDataView scored = model.Transform(testImages);
        MulticlassClassificationMetrics metrics = ml.MulticlassClassification.Evaluate(scored);
        var confusion = new double[4, 4];
        for (int i = 0; i < 4; i++)
        {
            for (int j = 0; j < 4; j++)
            {
                confusion[i, j] = metrics.ConfusionMatrix.Counts[i][j];
            }
        }
        double[] recall = Enumerable.Range(0, 4).Select(i => Enumerable.Range(0, 4).Sum(j => confusion[i, j]) is double n && n > 0 ? confusion[i, i] / n : double.NaN).ToArray();
        double auc = NormalVersusAbnormalAuc(ml, scored, model.ClassNames.ToList().IndexOf("NORMAL"));
        double oneClass = OneClassAuc(ml, model.Transform(trainImages), scored);
        TrainingProgress? last = model.EpochReports.LastOrDefault();
        // The same model once more with test-time flip averaging (no training: only the Transform differs; recipes train
        // with it off, so the main numbers are without it).
        model.TestTimeFlip = true;
        IDataView flipped = model.Transform(testImages);
        double flipAccuracy = ml.MulticlassClassification.Evaluate(flipped).MicroAccuracy;
        double flipAuc = NormalVersusAbnormalAuc(ml, flipped, model.ClassNames.ToList().IndexOf("NORMAL"));
        model.TestTimeFlip = false;
        return new OctFoldResult(metrics.MicroAccuracy, metrics.MacroAccuracy, recall, auc, oneClass, confusion, minutes,
            last?.Step ?? 0, model.EpochReports.Count, last?.Loss ?? double.NaN, flipAccuracy, flipAuc, pretrainedOneClass);
    }

    private sealed class Screening
    {
        public bool Abnormal { get; set; }

        public float Score { get; set; }

        public bool PredictedLabel { get; set; }
    }

    /// <summary>ML.NET's binary evaluator on the log-odds of "abnormal" (1 - P(NORMAL) against P(NORMAL)).</summary>
    public static double NormalVersusAbnormalAuc(MLContext ml, IDataView scored, int normalIndex)
    {
        var rows = scored.GetColumn<float[]>("Score").Zip(scored.GetColumn<string>(nameof(OctScan.Diagnosis)))
            .Select(p => new Screening
            {
                Abnormal = p.Second != "NORMAL",
                Score = (float)Math.Log(Math.Max(1 - p.First[normalIndex], 1e-7) / Math.Max(p.First[normalIndex], 1e-7)),
                PredictedLabel = p.First[normalIndex] < 0.5f,
            }).ToList();
        return ml.BinaryClassification.EvaluateNonCalibrated(ml.Data.LoadFromEnumerable(rows), nameof(Screening.Abnormal), nameof(Screening.Score)).AreaUnderRocCurve;
    }

    private sealed class EmbeddingRow
    {
        [VectorType]
        public float[] Embedding { get; set; } = Array.Empty<float>();

        public float Anomaly { get; set; }
    }

    /// <summary>A RandomizedPca fitted on the NORMAL rows of <paramref name="train"/> only; its AUC on <paramref name="test"/> (abnormal = anomaly).</summary>
    public static double OneClassAuc(MLContext ml, IDataView train, IDataView test, string embeddingColumn = "Embedding")
    {
        List<EmbeddingRow> Rows(IDataView data, bool normalOnly) => data.GetColumn<float[]>(embeddingColumn)
            .Zip(data.GetColumn<string>(nameof(OctScan.Diagnosis)))
            .Where(p => !normalOnly || p.Second == "NORMAL")
            .Select(p => new EmbeddingRow { Embedding = p.First, Anomaly = p.Second == "NORMAL" ? 0 : 1 })
            .ToList();
        List<EmbeddingRow> normal = Rows(train, normalOnly: true);
        int width = normal[0].Embedding.Length;
        var schema = SchemaDefinition.Create(typeof(EmbeddingRow));
        schema[nameof(EmbeddingRow.Embedding)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
        var detector = ml.AnomalyDetection.Trainers.RandomizedPca(nameof(EmbeddingRow.Embedding), rank: Math.Min(8, normal.Count - 1), ensureZeroMean: false, seed: 1)
            .Fit(ml.Data.LoadFromEnumerable(normal, schema));
        IDataView scored = detector.Transform(ml.Data.LoadFromEnumerable(Rows(test, normalOnly: false), schema));
        return ml.AnomalyDetection.Evaluate(scored, labelColumnName: nameof(EmbeddingRow.Anomaly)).AreaUnderRocCurve;
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.ImageClassification;
using Transformers.ML.Datasets;

namespace Transformers.ML.Tests.ImageClassification;

/// <summary>The ViT classifier as ML.NET stages, trained on SYNTHETIC OCT B-scans (not medical data) of 32 x 32 pixels.</summary>
[TestClass]
public sealed class ImageClassificationTests
{
    internal const int Side = 32;

    public sealed class Scan
    {
        [VectorType(Side * Side)]
        public float[] Pixels { get; set; } = Array.Empty<float>();

        public string Diagnosis { get; set; } = "";

        public bool Abnormal { get; set; }

        /// <summary>1 for abnormal, 0 for normal: the label type ML.NET's anomaly evaluator takes.</summary>
        public float Anomaly { get; set; }
    }

    public sealed class ScanPrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();

        public string PredictedDiagnosis { get; set; } = "";

        public float[] Embedding { get; set; } = Array.Empty<float>();
    }

    internal static List<Scan> Scans(int perClass, int seed, params OctClass[] classes)
    {
        classes = classes.Length == 0 ? Enum.GetValues<OctClass>() : classes;
        var scans = new List<Scan>();
        for (int i = 0; i < perClass; i++)
        {
            foreach (OctClass c in classes)
            {
                scans.Add(new Scan { Pixels = SyntheticOct.Generate(c, Side, seed * 100_003 + i * 7 + (int)c), Diagnosis = c.ToString().ToUpperInvariant(), Abnormal = c != OctClass.Normal, Anomaly = c != OctClass.Normal ? 1 : 0 });
            }
        }
        return scans;
    }

    internal static ImageClassificationOptions SmallOptions(int epochs = 30) => new()
    {
        ImageColumnName = "Pixels",
        Model = new VitConfig { ImageSize = Side, PatchSize = 4, Channels = 1, Width = 64, Depth = 2, Heads = 4, MlpRatio = 2, Dropout = 0 },
        Epochs = epochs,
        BatchSize = 32,
        LearningRate = 3e-3,
        WarmupSteps = 10,
        ValidationFraction = 0.1,
        Seed = 3,
        Device = "cpu",
        LogEverySteps = 1000,
    };

    private static (MLContext Ml, ITransformer Model, ImageClassificationTransformer Vit, IDataView Test) TrainMulticlass()
    {
        var ml = new MLContext(seed: 1);
        IDataView train = ml.Data.LoadFromEnumerable(Scans(150, seed: 1));
        IDataView test = ml.Data.LoadFromEnumerable(Scans(25, seed: 2));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis")
            .Append(ml.Transformers().ImageClassification("Label", "Pixels", SmallOptions()))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedDiagnosis", "PredictedLabel"));
        var model = pipeline.Fit(train);
        var vit = (ImageClassificationTransformer)model.ElementAt(1);
        return (ml, model, vit, test);
    }

    [TestMethod]
    public void MulticlassPipelineLearnsSyntheticOctAndWorksWithMlNetEvaluatorsAndPredictionEngine()
    {
        (MLContext ml, ITransformer model, ImageClassificationTransformer vit, IDataView test) = TrainMulticlass();
        using (vit)
        {
            CollectionAssert.AreEqual(new[] { "CNV", "DME", "DRUSEN", "NORMAL" }, vit.ClassNames.ToArray());
            IDataView scored = model.Transform(test);
            MulticlassClassificationMetrics metrics = ml.MulticlassClassification.Evaluate(scored);
            Console.WriteLine($"macro accuracy {metrics.MacroAccuracy:F3}, log-loss {metrics.LogLoss:F3}");
            Assert.IsGreaterThan(0.65, metrics.MacroAccuracy, $"macro accuracy {metrics.MacroAccuracy:F3}\n{metrics.ConfusionMatrix.GetFormattedConfusionTable()}");
            Assert.IsLessThan(1.0, metrics.LogLoss); // uniform guessing: ln 4 = 1.39
            Assert.AreEqual(4, metrics.ConfusionMatrix.NumberOfClasses);
            Assert.IsTrue(vit.EpochReports.Count == 30 && vit.EpochReports[^1].Sample!.StartsWith("validation accuracy", StringComparison.Ordinal));

            // Slot names of Score are the classes; PredictedLabel maps back to them; the scores are probabilities.
            VBuffer<ReadOnlyMemory<char>> slots = default;
            scored.Schema["Score"].GetSlotNames(ref slots);
            CollectionAssert.AreEqual(new[] { "CNV", "DME", "DRUSEN", "NORMAL" }, slots.DenseValues().Select(s => s.ToString()).ToArray());
            var rows = ml.Data.CreateEnumerable<ScanPrediction>(scored, reuseRowObject: false).ToList();
            Assert.AreEqual(100, rows.Count);
            foreach (ScanPrediction row in rows)
            {
                Assert.AreEqual(1.0, row.Score.Sum(), 1e-4);
                Assert.AreEqual(vit.ClassNames[Array.IndexOf(row.Score, row.Score.Max())], row.PredictedDiagnosis);
                Assert.AreEqual(64, row.Embedding.Length);
            }

            // PredictionEngine gives the batched Transform's numbers.
            var engine = ml.Model.CreatePredictionEngine<Scan, ScanPrediction>(model);
            List<Scan> scans = Scans(25, seed: 2);
            for (int i = 0; i < 5; i++)
            {
                ScanPrediction single = engine.Predict(scans[i]);
                Assert.AreEqual(rows[i].PredictedDiagnosis, single.PredictedDiagnosis);
                for (int k = 0; k < 4; k++)
                {
                    Assert.AreEqual(rows[i].Score[k], single.Score[k], 1e-5);
                }
            }
            // A PredictionEngine per thread over the one model (as ML.NET's PredictionEnginePool keeps them) gives the same numbers.
            var concurrent = new float[20][];
            Parallel.For(0, concurrent.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 },
                i => concurrent[i] = ml.Model.CreatePredictionEngine<Scan, ScanPrediction>(model).Predict(scans[i % 5]).Score);
            for (int i = 0; i < concurrent.Length; i++)
            {
                for (int k = 0; k < 4; k++)
                {
                    Assert.AreEqual(rows[i % 5].Score[k], concurrent[i][k], 1e-5, $"call {i}, class {k}");
                }
            }

            // One-class anomaly detection on the embeddings of NORMAL scans only (RandomizedPca), as in the OCT embedding paper.
            IDataView normal = ml.Data.FilterByCustomPredicate<Scan>(ml.Data.LoadFromEnumerable(Scans(150, 1)), s => s.Abnormal);
            // ML.NET scores the reconstruction error relative to the vector's norm; on embeddings (which a LayerNorm has centred
            // per vector) centring again hurts: ensureZeroMean false (AUC about 0.92 here; about 0.25-0.4 with it on).
            var detector = ml.AnomalyDetection.Trainers.RandomizedPca("Embedding", rank: 8, ensureZeroMean: false, seed: 1);
            var pca = detector.Fit(vit.Transform(normal));
            IDataView anomalies = pca.Transform(vit.Transform(test));
            float[] scores = anomalies.GetColumn<float>("Score").ToArray();
            bool[] abnormal = test.GetColumn<bool>("Abnormal").ToArray();
            double auc = Auc(scores, abnormal);
            Console.WriteLine($"anomaly AUC {auc:F3}");
            Assert.IsGreaterThan(0.8, auc, $"anomaly AUC {auc:F3}");
            Assert.AreEqual(auc, ml.AnomalyDetection.Evaluate(anomalies, labelColumnName: "Anomaly").AreaUnderRocCurve, 1e-6);
        }
    }

    /// <summary>The probability that a random positive scores above a random negative.</summary>
    internal static double Auc(float[] scores, bool[] positive)
    {
        double wins = 0;
        int pairs = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            for (int j = 0; j < scores.Length; j++)
            {
                if (positive[i] && !positive[j])
                {
                    pairs++;
                    wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0;
                }
            }
        }
        return wins / pairs;
    }

    [TestMethod]
    public void CancellingFitWhileTheImagesAreReadStopsItThere()
    {
        var ml = new MLContext(seed: 1);
        using var cancel = new CancellationTokenSource();
        ImageClassificationOptions options = SmallOptions();
        options.Cancellation = cancel.Token;
        options.LogEverySteps = 1;
        int steps = 0;
        options.Progress = new SynchronousProgress<TrainingProgress>(_ => steps++);
        var rows = new CancellingRows<Scan>(Scans(10, seed: 1), pass: 1, row: 5, cancel);
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.Transformers().ImageClassification("Abnormal", "Pixels", options).Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.AreEqual(1, rows.Passes, "stopped in the pass that reads the images");
        Assert.AreEqual(0, steps, "stopped before training");
    }

    [TestMethod]
    public void FitsOnSeveralThreadsAtOnceDrawTheAugmentationDropoutAndMasksEachDrawsAlone()
    {
        // Every random draw of a step (augmentation: flips, rotations, crops, shifts, contrast, brightness and noise;
        // dropout; the masked autoencoder's masks) comes from the step's own generator, so Fits on other threads change
        // none of them: each run's losses are those it has alone, step for step.
        var ml = new MLContext(seed: 1);
        IDataView data = ml.Data.LoadFromEnumerable(Scans(8, seed: 1));
        double[] Losses(int run)
        {
            ImageClassificationOptions options = SmallOptions(epochs: 2);
            options.Model!.Dropout = 0.2;
            options.Augmentation = new ImageAugmentation { Noise = 0.05 };
            options.ValidationFraction = 0;
            options.LogEverySteps = 1;
            options.Seed = run + 1;
            IEnumerable<TrainingProgress> reports;
            if (run < 2)
            {
                using ImageClassificationTransformer classifier = ml.Transformers().ImageClassification("Abnormal", "Pixels", options).Fit(data);
                reports = classifier.TrainingReports;
            }
            else
            {
                var mae = new MaskedAutoencoderOptions
                {
                    ImageColumnName = "Pixels", Model = options.Model.Clone(), DecoderWidth = 16, DecoderDepth = 1, DecoderHeads = 2, Epochs = 2,
                    BatchSize = 16, ValidationFraction = 0, Device = "cpu", Seed = run + 1, LogEverySteps = 1,
                };
                using MaskedAutoencoderTransformer autoencoder = ml.Transformers().MaskedAutoencoder("Pixels", mae).Fit(data);
                reports = autoencoder.TrainingReports;
            }
            return reports.Where(r => r.Kind == TrainingProgressKind.Step).Select(r => r.Loss).ToArray();
        }
        double[][] alone = Enumerable.Range(0, 3).Select(Losses).ToArray();
        double[][] together = new double[3][];
        Parallel.For(0, 3, new ParallelOptions { MaxDegreeOfParallelism = 3 }, run => together[run] = Losses(run));
        for (int run = 0; run < 3; run++)
        {
            Assert.IsGreaterThanOrEqualTo(2, alone[run].Length, $"run {run}");
            CollectionAssert.AreEqual(alone[run], together[run], $"run {run}: {string.Join(", ", alone[run].Take(3))} alone, {string.Join(", ", together[run].Take(3))} together");
        }
        CollectionAssert.AreNotEqual(alone[0], alone[1], "another seed draws other augmentations and dropout");
    }

    [TestMethod]
    public void BinaryVariantWorksWithBinaryClassificationEvaluate()
    {
        var ml = new MLContext(seed: 1);
        IDataView train = ml.Data.LoadFromEnumerable(Scans(150, seed: 1));
        IDataView test = ml.Data.LoadFromEnumerable(Scans(25, seed: 2));
        ImageClassificationOptions options = SmallOptions();
        options.ClassBalance = ClassBalance.BalancedSampling; // 3 abnormal classes to 1 normal
        using ImageClassificationTransformer model = ml.Transformers().ImageClassification("Abnormal", "Pixels", options).Fit(train);
        Assert.IsTrue(model.IsBinary);
        IDataView scored = model.Transform(test);
        CalibratedBinaryClassificationMetrics metrics = ml.BinaryClassification.Evaluate(scored, labelColumnName: "Abnormal");
        Console.WriteLine($"AUC {metrics.AreaUnderRocCurve:F3}, accuracy {metrics.Accuracy:F3}");
        Assert.IsGreaterThan(0.85, metrics.AreaUnderRocCurve, $"AUC {metrics.AreaUnderRocCurve:F3}");
        Assert.IsGreaterThan(0.75, metrics.Accuracy);
        float[] score = scored.GetColumn<float>("Score").ToArray();
        float[] probability = scored.GetColumn<float>("Probability").ToArray();
        bool[] predicted = scored.GetColumn<bool>("PredictedLabel").ToArray();
        for (int i = 0; i < score.Length; i++)
        {
            Assert.AreEqual(1 / (1 + Math.Exp(-score[i])), probability[i], 1e-4);
            Assert.AreEqual(probability[i] > 0.5f, predicted[i]);
        }
    }
}

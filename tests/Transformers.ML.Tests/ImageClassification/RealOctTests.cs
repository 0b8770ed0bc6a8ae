using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Datasets;
using Transformers.ML.ImageClassification;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.ImageClassification;

/// <summary>
/// The 160 real OCT scans of tests/data/oct/reduced (40 per class, one per patient): input handling, the masked autoencoder,
/// and a short training run judged on held-out patients.
/// </summary>
[TestClass]
public sealed class RealOctTests
{
    public sealed class Scan
    {
        public string ImagePath { get; set; } = "";

        public string Diagnosis { get; set; } = "";

        public string Patient { get; set; } = "";
    }

    private static List<Scan> Scans() => ImageDatasets.ReadOct2017Folder(TestData.OctReduced)
        .Select(f => new Scan { ImagePath = f.Path, Diagnosis = f.Label, Patient = ImageDatasets.Oct2017Patient(f.Path) })
        .ToList();

    /// <summary>Training and held-out scans: 4 patient-grouped folds, the first held out.</summary>
    private static (List<Scan> Train, List<Scan> Test) Split()
    {
        List<Scan> scans = Scans();
        int[] fold = ImageDatasets.GroupedFolds(scans.Select(s => s.Patient).ToList(), scans.Select(s => s.Diagnosis).ToList(), 4, seed: 1);
        return (scans.Where((_, i) => fold[i] != 0).ToList(), scans.Where((_, i) => fold[i] == 0).ToList());
    }

    private static IDataView Images(MLContext ml, IEnumerable<Scan> scans, ITransformer? keys = null)
    {
        IDataView data = ml.Data.LoadFromEnumerable(scans);
        keys ??= ml.Transforms.Conversion.MapValueToKey("Label", nameof(Scan.Diagnosis),
            keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(data);
        return ml.Transforms.LoadImages("Image", null, nameof(Scan.ImagePath)).Fit(data).Transform(keys.Transform(data));
    }

    [TestMethod]
    public void PatientGroupedFoldsKeepAPatientInOneFoldAndBalanceTheClasses()
    {
        string[] patients = { "1", "1", "2", "3", "3", "3", "4", "5", "6", "7", "8", "9" };
        string[] labels = { "A", "A", "B", "A", "A", "B", "B", "A", "B", "A", "B", "A" };
        int[] fold = ImageDatasets.GroupedFolds(patients, labels, 3, seed: 2);
        foreach (var group in patients.Select((p, i) => (p, fold[i])).GroupBy(x => x.p))
        {
            Assert.AreEqual(1, group.Select(x => x.Item2).Distinct().Count(), $"patient {group.Key} in one fold");
        }
        Assert.IsTrue(Enumerable.Range(0, 3).All(f => fold.Count(x => x == f) is >= 3 and <= 5), "folds of similar size");
        Assert.AreEqual("1016042", ImageDatasets.Oct2017Patient("data/CNV/CNV-1016042-3.jpeg"));
        Assert.ThrowsExactly<FormatException>(() => ImageDatasets.Oct2017Patient("scan.jpeg"));

        (List<Scan> train, List<Scan> test) = Split();
        Assert.AreEqual(0, train.Select(s => s.Patient + s.Diagnosis).Intersect(test.Select(s => s.Patient + s.Diagnosis)).Count());
        Assert.AreEqual(0, train.Select(s => s.Patient).Intersect(test.Select(s => s.Patient)).Count(), "no patient on both sides");
        Assert.IsTrue(test.GroupBy(s => s.Diagnosis).All(g => g.Count() is >= 7 and <= 13), "each class about a quarter of the held-out scans");
    }

    [TestMethod]
    public void WedgesBecomeBlackAndTheBandFollowsTheRetina()
    {
        // A real scan with white registration wedges in three corners (reduced 512 x 496 -> 128 x 124).
        string path = Scans().First(s => s.ImagePath.EndsWith("NORMAL-223814-1.jpeg", StringComparison.Ordinal)).ImagePath;
        using MLImage image = MLImage.CreateFromFile(path);
        using var scope = NewDisposeScope();
        Tensor luma = ImageInput.Decode(image).mean(new long[] { 1 }, keepdim: true); // (1, 1, H, W)
        int height = image.Height, width = image.Width;
        Tensor wedge = ImagePreprocessor.WedgeMask(luma);
        int[] corners = { 0, width - 1, (height - 1) * width, height * width - 1 };
        float[] flat = luma.flatten().data<float>().ToArray();
        bool[] masked = wedge.flatten().data<bool>().ToArray();
        Assert.IsGreaterThanOrEqualTo(2, corners.Count(i => flat[i] > 0.96f), "the scan has white corners");
        Assert.IsTrue(corners.Where(i => flat[i] > 0.96f).All(i => masked[i]), "white corners are wedges");
        double fraction = masked.Count(m => m) / (double)masked.Length;
        Assert.IsTrue(fraction is > 0.01 and < 0.4, $"{fraction:P1} of the scan masked");
        // The retina's bright layers are speckled: almost none of the bright pixels outside the corners' wedges is masked.
        int bright = 0, brightMasked = 0;
        for (int y = height / 4; y < 3 * height / 4; y++)
        {
            for (int x = width / 4; x < 3 * width / 4; x++)
            {
                if (flat[y * width + x] > 0.5f)
                {
                    bright++;
                    brightMasked += masked[y * width + x] ? 1 : 0;
                }
            }
        }
        Assert.IsGreaterThan(20, bright, "the middle of the scan has bright retina");
        Assert.IsLessThan(0.05 * bright, (double)brightMasked, $"{brightMasked} of {bright} bright retina pixels masked");

        // With the wedges black, the band of half the height sits on the retina: brighter than the scan as a whole.
        Tensor clean = luma.mul(wedge.logical_not());
        int rows = height / 2;
        int top = ImagePreprocessor.BandTop(clean, rows);
        float[] values = clean.flatten().data<float>().ToArray();
        double Mean(int y0, int y1) => Enumerable.Range(y0 * width, (y1 - y0) * width).Average(i => (double)values[i]);
        Assert.IsGreaterThan(Mean(0, height) * 1.3, Mean(top, top + rows), "the band is brighter than the whole scan: it holds the retina");
        double outside = (Mean(0, height) * height - Mean(top, top + rows) * rows) / (height - rows);
        Assert.IsLessThan(Mean(0, height), outside, "the rows left out are the dark ones");

        // Through the options: at the model's size, the masked corners are black and each image is normalised.
        var schema = new DataViewSchema.Builder();
        schema.AddColumn("Image", new Microsoft.ML.Transforms.Image.ImageDataViewType());
        var config = new VitConfig { ImageSize = 32, PatchSize = 8, Channels = 1 };
        var input = new ImageInput(schema.ToSchema(), "Image", config, null, null, null, new ImagePreprocessing { MaskWedges = true, PerImageNormalization = true });
        Tensor model = input.ToTensor(image, 0);
        Assert.AreEqual(0.0, model.mean().item<float>(), 1e-4);
        Assert.AreEqual(1.0, model.std().item<float>(), 1e-3);
        Assert.IsLessThan(model.mean().item<float>(), model[0, 0, 0].item<float>(), "masked: the corner is as dark as the background");
        var plain = new ImageInput(schema.ToSchema(), "Image", config, null, null, null);
        Assert.IsGreaterThan(0.5f, plain.ToTensor(image, 0)[0, 0, 0].item<float>(), "without masking the corner stays white");
        // The band crop's region, for heat maps: half the rows, inside the scan.
        (_, ImageRegion region) = new ImageInput(schema.ToSchema(), "Image", config, null, null, null, new ImagePreprocessing { BandHeight = 0.5 }).ToTensorAndRegion(image, 0);
        Assert.AreEqual(width, region.Width);
        Assert.AreEqual(height / 2.0, region.Height, 1.0);
        Assert.IsTrue(region.Y >= 0 && region.Y + region.Height <= height);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ImageClassificationOptions { Preprocessing = new ImagePreprocessing { BandHeight = 0 } }.Validate());
    }

    [TestMethod]
    public void AShortRunOnRealScansBeatsChanceOnHeldOutPatients()
    {
        var ml = new MLContext(seed: 1);
        (List<Scan> train, List<Scan> test) = Split();
        IDataView trainData = ml.Data.LoadFromEnumerable(train);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", nameof(Scan.Diagnosis),
            keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(trainData);
        var options = new ImageClassificationOptions
        {
            Model = new VitConfig { ImageSize = 32, PatchSize = 4, Channels = 1, Width = 48, Depth = 2, Heads = 4, MlpRatio = 2, Dropout = 0, StemChannels = 16 },
            Preprocessing = ImagePreprocessing.RetinalOct,
            Epochs = 40,
            BatchSize = 30,
            LearningRate = 2e-3,
            WarmupSteps = 10,
            ValidationFraction = 0,
            Device = "cpu",
            Seed = 1,
            LogEverySteps = 1000,
        };
        using ImageClassificationTransformer model = ml.Transformers().ImageClassification(options).Fit(Images(ml, train, keys));
        IDataView scored = model.Transform(Images(ml, test, keys));
        MulticlassClassificationMetrics metrics = ml.MulticlassClassification.Evaluate(scored);
        // 40 held-out scans of patients never seen in training, 10 per class: chance is 0.25 (10 of 40); 0.45 is 18 of 40,
        // about 2.9 standard deviations of chance's binomial spread above it.
        Assert.IsGreaterThan(0.45, metrics.MacroAccuracy, $"macro accuracy {metrics.MacroAccuracy:F3} on {test.Count} held-out scans\n{metrics.ConfusionMatrix.GetFormattedConfusionTable()}");
    }

    [TestMethod]
    public void TheMaskedAutoencoderLearnsToReconstructEmbedsForRandomizedPcaAndStartsAClassifier()
    {
        var ml = new MLContext(seed: 1);
        (List<Scan> train, List<Scan> test) = Split();
        IDataView trainImages = Images(ml, train);
        var reports = new List<TrainingProgress>();
        var options = new MaskedAutoencoderOptions
        {
            Model = new VitConfig { ImageSize = 32, PatchSize = 4, Channels = 1, Width = 48, Depth = 2, Heads = 4, MlpRatio = 2, Dropout = 0 },
            DecoderWidth = 32,
            DecoderDepth = 1,
            Preprocessing = ImagePreprocessing.RetinalOct,
            Epochs = 12,
            BatchSize = 30,
            LearningRate = 2e-3,
            WarmupSteps = 5,
            ValidationFraction = 0.15,
            Device = "cpu",
            Seed = 1,
            LogEverySteps = 1000,
            Progress = new SynchronousProgress<TrainingProgress>(reports.Add),
        };
        using MaskedAutoencoderTransformer mae = ml.Transformers().MaskedAutoencoder("Image", options).Fit(trainImages);

        // The reconstruction loss (validation: held-out images, the same masks every epoch) falls.
        var epochs = reports.Where(r => r.Kind == TrainingProgressKind.EpochEnd).ToList();
        Assert.AreEqual(12, epochs.Count);
        Assert.IsTrue(epochs.All(e => e.ValidationMetric == "reconstruction loss"));
        double first = epochs[0].ValidationValue!.Value, last = epochs[^1].ValidationValue!.Value;
        Assert.IsLessThan(first * 0.9, last, $"validation reconstruction loss {first:F3} -> {last:F3}");

        // Its Embedding column feeds ML.NET's RandomizedPca in a pipeline (LoadImages -> MaskedAutoencoder -> RandomizedPca),
        // fitted on the NORMAL training scans only: a one-class detector that scores every held-out scan.
        options.Epochs = 3;
        var pipeline = ml.Transforms.LoadImages("Image", null, nameof(Scan.ImagePath))
            .Append(ml.Transformers().MaskedAutoencoder("Image", options))
            .Append(ml.AnomalyDetection.Trainers.RandomizedPca("Embedding", rank: 4, ensureZeroMean: false, seed: 1));
        ITransformer detector = pipeline.Fit(ml.Data.LoadFromEnumerable(train.Where(s => s.Diagnosis == "NORMAL")));
        IDataView scored = detector.Transform(ml.Data.LoadFromEnumerable(test));
        float[] scores = scored.GetColumn<float>("Score").ToArray();
        Assert.AreEqual(test.Count, scores.Length);
        Assert.IsTrue(scores.All(float.IsFinite) && scores.Distinct().Count() > test.Count / 2, "a finite, varied anomaly score per held-out scan");
        float[][] embeddings = mae.Transform(Images(ml, test)).GetColumn<float[]>("Embedding").ToArray();
        Assert.AreEqual(48, embeddings[0].Length);

        // Saved and reloaded, it embeds the same; its encoder starts a classifier with the same architecture.
        string path = TestUtil.TempPath();
        mae.Save(path);
        using (MaskedAutoencoderTransformer again = ml.Transformers().LoadMaskedAutoencoder(path, "cpu"))
        {
            float[][] reloaded = again.Transform(Images(ml, test)).GetColumn<float[]>("Embedding").ToArray();
            for (int i = 0; i < embeddings.Length; i++)
            {
                CollectionAssert.AreEqual(embeddings[i], reloaded[i], $"row {i}");
            }
        }
        var classifierOptions = new ImageClassificationOptions { Preprocessing = ImagePreprocessing.RetinalOct, Epochs = 2, BatchSize = 30, ValidationFraction = 0, Device = "cpu", LogEverySteps = 1000 };
        using ImageClassificationTransformer classifier = ml.Transformers().ImageClassification(mae, classifierOptions).Fit(trainImages);
        Assert.AreEqual(48, classifier.Config.Width);
        Assert.AreEqual(4, classifier.ClassNames.Count);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadImageClassification(path));
        StringAssert.Contains(e.Message, "holds a model of kind 'masked-autoencoder'");
    }
}

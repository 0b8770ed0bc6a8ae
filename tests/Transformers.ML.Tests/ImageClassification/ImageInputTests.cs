using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.IO;
using Transformers.ML.ImageClassification;
using static TorchSharp.torch;
using static Transformers.ML.Tests.ImageClassification.ImageClassificationTests;
using Transformers.ML.Datasets;

namespace Transformers.ML.Tests.ImageClassification;

/// <summary>Image columns of every kind (real OCT JPEGs through LoadImages, paths, pixel vectors), save/load, attention, bad input.</summary>
[TestClass]
public sealed class ImageInputTests
{
    public sealed class ImageFile
    {
        public string ImagePath { get; set; } = "";

        public string Diagnosis { get; set; } = "";
    }

    private static ImageClassificationOptions Quick(string imageColumn, int side = 32, int patch = 8, int epochs = 2) => new()
    {
        ImageColumnName = imageColumn,
        Model = new VitConfig { ImageSize = side, PatchSize = patch, Channels = 1, Width = 16, Depth = 1, Heads = 2, MlpRatio = 2, Dropout = 0 },
        Epochs = epochs,
        BatchSize = 16,
        ValidationFraction = 0,
        Device = "cpu",
        Seed = 1,
    };

    private static List<ImageFile> OctSamples() =>
        ImageDatasets.ReadOct2017Folder(TestData.OctOriginals).Select(f => new ImageFile { ImagePath = f.Path, Diagnosis = f.Label }).ToList();

    [TestMethod]
    public void RealOctJpegsThroughLoadImagesOrPathsGiveTheSameScoresAndSurviveSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        IDataView data = ml.Data.LoadFromEnumerable(OctSamples());
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(data);
        IDataView keyed = keys.Transform(data);
        IDataView images = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(keyed).Transform(keyed);

        ImageClassificationOptions options = Quick("Image");
        options.OutputAttention = true;
        using ImageClassificationTransformer model = ml.Transformers().ImageClassification("Label", "Image", options).Fit(images);
        IDataView scored = model.Transform(images);
        float[][] scores = scored.GetColumn<float[]>("Score").ToArray();
        Assert.AreEqual(8, scores.Length);

        // The same model reading the paths itself (a Text column) sees the same pixels: the 768 x 496 scans are resized to 32 x 32.
        ImageClassificationOptions byPath = Quick("ImagePath");
        using ImageClassificationTransformer pathModel = ml.Transformers().ImageClassification("Label", "ImagePath", byPath).Fit(keyed);
        float[][] pathScores = pathModel.Transform(keyed).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < scores.Length; i++)
        {
            for (int k = 0; k < 4; k++)
            {
                Assert.AreEqual(scores[i][k], pathScores[i][k], 1e-4, $"row {i}");
            }
        }
        string file = TestUtil.TempPath();
        model.Save(file);
        using (ImageClassificationTransformer loaded = ml.Transformers().LoadImageClassification(file, "cpu"))
        {
            CollectionAssert.AreEqual(model.ClassNames.ToArray(), loaded.ClassNames.ToArray());
            float[][] again = loaded.Transform(images).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < scores.Length; i++)
            {
                CollectionAssert.AreEqual(scores[i], again[i], $"row {i}");
            }
        }

        // Attention: the rollout over the 4 x 4 grid sums to 1; the heat map is a PNG of the scan's size.
        float[][] rollout = scored.GetColumn<float[]>(ImageClassificationTransformer.RolloutColumn).ToArray();
        Assert.AreEqual(16, rollout[0].Length);
        Assert.AreEqual(1.0, rollout[0].Sum(), 1e-4);
        Assert.AreEqual(1 * 2 * 17, scored.GetColumn<float[]>(ImageClassificationTransformer.ClsAttentionColumn).First().Length);
        using MLImage scan = MLImage.CreateFromFile(OctSamples()[0].ImagePath);
        AttentionMap map = model.Explain(scan);
        for (int i = 0; i < 16; i++)
        {
            Assert.AreEqual(rollout[0][i], map.Rollout[i], 1e-5);
        }
        Assert.AreEqual(1.0, map.Head(0, 1).Sum() + map.ClsAttention[17], 1e-4); // a head's [CLS] row, [CLS] itself included, sums to 1
        string png = TestUtil.TempPath(".png");
        AttentionHeatmap.Save(scan, map, png);
        using MLImage heat = MLImage.CreateFromFile(png);
        Assert.AreEqual((scan.Width, scan.Height), (heat.Width, heat.Height));
    }

    [TestMethod]
    public void LabelsUnseenInTrainingAreRefusedAtScoring()
    {
        var ml = new MLContext(seed: 1);
        List<ImageFile> files = OctSamples();
        IDataView data = ml.Data.LoadFromEnumerable(files);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(data);
        using ImageClassificationTransformer model = ml.Transformers().ImageClassification("Label", "ImagePath", Quick("ImagePath")).Fit(keys.Transform(data));

        // A label key fitted on other data (an extra class) is refused at Transform, naming the unseen class.
        var other = files.Take(3).Append(new ImageFile { ImagePath = files[0].ImagePath, Diagnosis = "GLAUCOMA" }).ToList();
        IDataView otherData = ml.Data.LoadFromEnumerable(other);
        IDataView rekeyed = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(otherData).Transform(otherData);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(rekeyed));
        StringAssert.Contains(e.Message, "unseen in training: GLAUCOMA");
        // Without the label column, or with the training key mapping, scoring works.
        Assert.AreEqual(3, model.Transform(keys.Transform(otherData.Take(ml, 3))).GetColumn<uint>("PredictedLabel").Count());
    }

    [TestMethod]
    public void MissingCorruptAndTooSmallImagesGetMessagesNamingThemOrAreSkippedAndCounted()
    {
        var ml = new MLContext(seed: 1);
        string folder = TestUtil.TempPath("");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "corrupt.jpeg"), "not a JPEG");
        List<ImageFile> files = OctSamples();
        files.Add(new ImageFile { ImagePath = Path.Combine(folder, "missing.jpeg"), Diagnosis = "NORMAL" });
        files.Add(new ImageFile { ImagePath = Path.Combine(folder, "corrupt.jpeg"), Diagnosis = "CNV" });
        IDataView data = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(ml.Data.LoadFromEnumerable(files)).Transform(ml.Data.LoadFromEnumerable(files));

        var missing = Assert.ThrowsExactly<UnreadableImageException>(() => ml.Transformers().ImageClassification("Label", "ImagePath", Quick("ImagePath")).Fit(data));
        StringAssert.Contains(missing.Message, "missing.jpeg");
        StringAssert.Contains(missing.Message, "does not exist");

        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("Skipped", StringComparison.Ordinal)) { messages.Add(e.Message); } };
        ImageClassificationOptions skip = Quick("ImagePath");
        skip.SkipUnreadableImages = true;
        using ImageClassificationTransformer model = ml.Transformers().ImageClassification("Label", "ImagePath", skip).Fit(data);
        Assert.IsTrue(messages.Any(m => m.Contains("Skipped 2 training image(s)", StringComparison.Ordinal)), string.Join("\n", messages));
        // At Transform the unreadable rows get NaN scores and a missing key.
        float[][] scores = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        uint[] predicted = model.Transform(data).GetColumn<uint>("PredictedLabel").ToArray();
        Assert.IsTrue(float.IsNaN(scores[^1][0]) && float.IsNaN(scores[^2][0]) && predicted[^1] == 0 && !float.IsNaN(scores[0][0]));

        ImageClassificationOptions strict = Quick("ImagePath");
        File.Delete(Path.Combine(folder, "missing.jpeg"));
        var corrupt = Assert.ThrowsExactly<UnreadableImageException>(() => ml.Transformers().ImageClassification("Label", "ImagePath", strict)
            .Fit(ml.Data.FilterByCustomPredicate<ImageFile>(ml.Data.LoadFromEnumerable(files), f => f.ImagePath.EndsWith("missing.jpeg", StringComparison.Ordinal))
                .Apply(d => ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(d).Transform(d))));
        StringAssert.Contains(corrupt.Message, "corrupt.jpeg");
        StringAssert.Contains(corrupt.Message, "could not be decoded");

        // Pixel vectors of 3 x 3 images: smaller than one 8 x 8 patch.
        IDataView tiny = ml.Data.LoadFromEnumerable(new[] { new Tiny { Pixels = new float[9], Abnormal = true }, new Tiny { Pixels = new float[9], Abnormal = false } });
        var small = Assert.ThrowsExactly<UnreadableImageException>(() => ml.Transformers().ImageClassification("Abnormal", "Pixels", Quick("Pixels")).Fit(tiny));
        StringAssert.Contains(small.Message, "3 x 3 pixels, smaller than one 8 x 8 patch");
    }

    [TestMethod]
    public void BothImageModelsGiveUnreadableRowsNaNsCountedInTheLogAndRefuseMlNetsModelSave()
    {
        // The classifier and the masked autoencoder share one ML.NET side (ImageModelTransformer): the same reading, the
        // same handling of unreadable rows at Transform, the same refusal of mlContext.Model.Save.
        var ml = new MLContext(seed: 1);
        string folder = TestUtil.TempPath("");
        Directory.CreateDirectory(folder);
        List<ImageFile> files = OctSamples().Take(12).ToList();
        files.Insert(1, new ImageFile { ImagePath = Path.Combine(folder, "missing.jpeg"), Diagnosis = "NORMAL" });
        IDataView data = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(ml.Data.LoadFromEnumerable(files)).Transform(ml.Data.LoadFromEnumerable(files));
        var logged = new List<string>();
        ml.Log += (_, e) => { lock (logged) { logged.Add(e.Message); } };

        ImageClassificationOptions classify = Quick("ImagePath", epochs: 1);
        classify.SkipUnreadableImages = true;
        classify.TransformBatchSize = 5;
        using ImageClassificationTransformer classifier = ml.Transformers().ImageClassification("Label", "ImagePath", classify).Fit(data);
        var mae = new MaskedAutoencoderOptions
        {
            ImageColumnName = "ImagePath", Model = classify.Model!.Clone(), DecoderWidth = 16, DecoderDepth = 1, DecoderHeads = 2, Epochs = 1, BatchSize = 16,
            ValidationFraction = 0, Device = "cpu", Seed = 1, SkipUnreadableImages = true, TransformBatchSize = 5,
        };
        using MaskedAutoencoderTransformer autoencoder = ml.Transformers().MaskedAutoencoder("ImagePath", mae).Fit(data);

        float[][] scores = classifier.Transform(data).GetColumn<float[]>("Score").ToArray();
        uint[] predicted = classifier.Transform(data).GetColumn<uint>("PredictedLabel").ToArray();
        float[][] classifierEmbeddings = classifier.Transform(data).GetColumn<float[]>("Embedding").ToArray();
        float[][] embeddings = autoencoder.Transform(data).GetColumn<float[]>("Embedding").ToArray();
        Assert.AreEqual(files.Count, embeddings.Length);
        for (int i = 0; i < files.Count; i++)
        {
            bool missing = i == 1;
            Assert.AreEqual(missing, scores[i].All(float.IsNaN), $"scores of row {i}");
            Assert.AreEqual(missing, predicted[i] == 0, $"predicted label of row {i}");
            Assert.AreEqual(missing, classifierEmbeddings[i].All(float.IsNaN), $"classifier embedding of row {i}");
            Assert.AreEqual(16, embeddings[i].Length);
            Assert.IsTrue(missing ? embeddings[i].All(float.IsNaN) : embeddings[i].All(float.IsFinite), $"autoencoder embedding of row {i}");
        }
        // Every other row is its own image's: the embedding of the image alone.
        for (int i = 0; i < files.Count; i++)
        {
            if (i != 1)
            {
                float[] alone = autoencoder.Transform(ml.Data.LoadFromEnumerable(files.Skip(i).Take(1))).GetColumn<float[]>("Embedding").Single();
                Assert.IsLessThan(1e-4f, alone.Zip(embeddings[i], (a, b) => Math.Abs(a - b)).Max(), $"row {i}");
            }
        }
        lock (logged)
        {
            Assert.IsTrue(logged.Any(m => m.Contains("1 image(s) could not be read: NaN scores and a missing PredictedLabel", StringComparison.Ordinal)), string.Join("\n", logged));
            Assert.IsTrue(logged.Any(m => m.Contains("1 image(s) could not be read: NaN embeddings", StringComparison.Ordinal)), string.Join("\n", logged));
        }

        var refusal = Assert.ThrowsExactly<NotSupportedException>(() => ((ICanSaveModel)classifier).Save(null!));
        StringAssert.StartsWith(refusal.Message, "An ImageClassificationTransformer cannot be written by mlContext.Model.Save");
        StringAssert.Contains(refusal.Message, "mlContext.Transformers().LoadImageClassification(path), or export to ONNX");
        refusal = Assert.ThrowsExactly<NotSupportedException>(() => ((ICanSaveModel)autoencoder).Save(null!));
        StringAssert.StartsWith(refusal.Message, "A MaskedAutoencoderTransformer cannot be written by mlContext.Model.Save");
        StringAssert.Contains(refusal.Message, "mlContext.Transformers().LoadMaskedAutoencoder(path).");

        // Their own Save: the same file layout (ImageModelFile). What Transform needs survives the round trip, and a damaged
        // shared entry is refused naming the file and the entry.
        string classifierFile = TestUtil.TempPath(), autoencoderFile = TestUtil.TempPath();
        classifier.Save(classifierFile);
        autoencoder.Save(autoencoderFile);
        using (ImageClassificationTransformer loaded = ml.Transformers().LoadImageClassification(classifierFile))
        using (MaskedAutoencoderTransformer loadedAutoencoder = ml.Transformers().LoadMaskedAutoencoder(autoencoderFile))
        {
            foreach (ImageModelOptions o in new ImageModelOptions[] { loaded.Options, loadedAutoencoder.Options })
            {
                Assert.AreEqual(("ImagePath", "Embedding", true, 5), (o.ImageColumnName, o.EmbeddingColumnName, o.SkipUnreadableImages, o.TransformBatchSize), o.GetType().Name);
            }
            CollectionAssert.AreEqual(embeddings[2], loadedAutoencoder.Transform(data).GetColumn<float[]>("Embedding").ElementAt(2));
            CollectionAssert.AreEqual(scores[2], loaded.Transform(data).GetColumn<float[]>("Score").ElementAt(2));
            Assert.IsTrue(loaded.Transform(data).GetColumn<float[]>("Score").ElementAt(1).All(float.IsNaN), "the loaded classifier skips the unreadable row too");
        }
        foreach ((string file, string columnsKey, Func<string, IDisposable> load) in new (string, string, Func<string, IDisposable>)[]
        {
            (classifierFile, "options", f => ml.Transformers().LoadImageClassification(f)),
            (autoencoderFile, "columns", f => ml.Transformers().LoadMaskedAutoencoder(f)),
        })
        {
            foreach ((string key, string value, string expected) in new[]
            {
                ("normalization", "{\"mean\":[0.5,0.5],\"std\":[0.2,0.2]}", "expected 1 finite means and positive standard deviations"),
                ("normalization", "{\"mean\":[0.5],\"std\":[0]}", "expected 1 finite means and positive standard deviations"),
                ("preprocessing", "{\"BandHeight\":2}", "BandHeight"),
                (columnsKey, "{\"Image\":\"ImagePath\",\"TransformBatchSize\":0}", "transform batch size must be at least 1; found 0"),
            })
            {
                string damaged = WithMetadata(file, key, value);
                var e = Assert.ThrowsExactly<InvalidDataException>(() => load(damaged).Dispose(), $"{key} = {value}");
                StringAssert.Contains(e.Message, damaged);
                StringAssert.Contains(e.Message, key);
                StringAssert.Contains(e.Message, expected);
            }
        }
        var oneClass = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadImageClassification(WithMetadata(classifierFile, "classes", "[\"NORMAL\"]")));
        StringAssert.Contains(oneClass.Message, "1 classes");
        // Finite weights that overflow (every matrix times 1e30) load, but the probe's forward pass is not finite: refused.
        TestUtil.AssertOverflowingWeightsAreRefused(classifierFile, f => ml.Transformers().LoadImageClassification(f));
        TestUtil.AssertOverflowingWeightsAreRefused(autoencoderFile, f => ml.Transformers().LoadMaskedAutoencoder(f));
    }

    /// <summary>A copy of a model file with one metadata entry replaced.</summary>
    private static string WithMetadata(string file, string key, string value)
    {
        SafeTensorsReader reader = SafeTensors.Open(file);
        var metadata = new Dictionary<string, string>(reader.Metadata) { [key] = value };
        string copy = TestUtil.TempPath();
        Dictionary<string, TorchSharp.torch.Tensor> weights = reader.ReadAll();
        SafeTensors.Write(copy, weights, metadata);
        foreach (TorchSharp.torch.Tensor t in weights.Values)
        {
            t.Dispose();
        }
        return copy;
    }

    public sealed class Tiny
    {
        [VectorType(9)]
        public float[] Pixels { get; set; } = Array.Empty<float>();

        public bool Abnormal { get; set; }
    }

    [TestMethod]
    public void OneClassTextLabelsAndAnotherCapabilitysFileAreRefusedClearly()
    {
        var ml = new MLContext(seed: 1);
        List<Scan> normal = Scans(4, 1, OctClass.Normal);
        IDataView oneClass = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(ml.Data.LoadFromEnumerable(normal)).Transform(ml.Data.LoadFromEnumerable(normal));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transformers().ImageClassification("Label", "Pixels", Quick("Pixels")).Fit(oneClass));
        StringAssert.Contains(e.Message, "one class only ('NORMAL'");

        var text = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transformers().ImageClassification("Diagnosis", "Pixels", Quick("Pixels")).Fit(ml.Data.LoadFromEnumerable(normal)));
        StringAssert.Contains(text.Message, "MapValueToKey");
        // In a pipeline, the estimator chain's schema check says the same before any training.
        var shape = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.Conversion.MapValueToKey("Diagnosis2", "Diagnosis").Append(ml.Transformers().ImageClassification("Diagnosis", "Pixels", Quick("Pixels")))
                .Fit(ml.Data.LoadFromEnumerable(normal)));
        StringAssert.Contains(shape.Message, "Label column 'Diagnosis'");

        string other = TestUtil.TempPath();
        using (var module = TorchSharp.torch.nn.Linear(2, 2))
        {
            ModelFile.Save(other, "text-generation", "{}", null, module);
        }
        var wrong = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().LoadImageClassification(other, "cpu"));
        StringAssert.Contains(wrong.Message, "holds a model of kind 'text-generation'; expected kind 'image-classification'");
    }

    [TestMethod]
    public void VectorShapesAreInferredOrRefused()
    {
        Assert.AreEqual((1, 28, 28), ImageInput.VectorShape("P", 784, 1, null, null));
        Assert.AreEqual((3, 32, 32), ImageInput.VectorShape("P", 3 * 32 * 32, 1, null, null)); // RGB pixels for a grayscale model: converted to luma
        Assert.AreEqual((1, 20, 30), ImageInput.VectorShape("P", 600, 1, 20, 30));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ImageInput.VectorShape("P", 600, 1, null, null));
        StringAssert.Contains(e.Message, "Set VectorImageHeight and VectorImageWidth");
    }

    [TestMethod]
    public void AugmentationFlipsOrKeepsEachImageAndBrightnessShiftsWholeImages()
    {
        manual_seed(5);
        using Tensor images = rand(64, 1, 8, 8);
        var flipOnly = new ImageAugmenter(new ImageAugmentation { HorizontalFlip = true, RotationDegrees = 0, TranslationFraction = 0, CropMinScale = 1, Brightness = 0, Contrast = 0 }, 1);
        using Tensor flipped = flipOnly.Apply(images);
        int mirrored = 0;
        for (int i = 0; i < 64; i++)
        {
            double same = TestUtil.MaxAbsDiff(flipped[i], images[i]);
            double mirror = TestUtil.MaxAbsDiff(flipped[i], images[i].flip(2));
            Assert.IsLessThan(1e-5, Math.Min(same, mirror), $"image {i}");
            mirrored += mirror < 1e-5 ? 1 : 0;
        }
        Assert.IsTrue(mirrored is > 16 and < 48, $"{mirrored} of 64 mirrored");

        using Tensor none = new ImageAugmenter(ImageAugmentation.None, 1).Apply(images);
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(none, images));

        var brightness = new ImageAugmenter(new ImageAugmentation { HorizontalFlip = false, RotationDegrees = 0, TranslationFraction = 0, CropMinScale = 1, Brightness = 0.1, Contrast = 0 }, 255);
        using Tensor shift = brightness.Apply(images).sub(images);
        for (int i = 0; i < 64; i++)
        {
            double low = shift[i].min().item<float>(), high = shift[i].max().item<float>();
            Assert.AreEqual(low, high, 1e-3, "one shift per image");
            Assert.IsTrue(Math.Abs(low) <= 25.5 + 1e-3);
        }

        var everything = new ImageAugmenter(new ImageAugmentation(), 1);
        using Tensor changed = everything.Apply(images);
        CollectionAssert.AreEqual(images.shape, changed.shape);
        Assert.IsGreaterThan(0.01, TestUtil.MaxAbsDiff(changed, images));
    }

    [TestMethod]
    public void ClassWeightsAverageOneAndBalancedSamplingEvensTheClasses()
    {
        float[] weights = ImageClassificationTask.ClassWeights(new long[] { 0, 0, 0, 1 }, 3);
        Assert.AreEqual(4 / 6.0, weights[0], 1e-6);
        Assert.AreEqual(2.0, weights[1], 1e-6);
        Assert.AreEqual(0f, weights[2]);

        // The weighted loss: each target's (smoothed) loss times its weight; the count stays the number of targets.
        using (Tensor logits = tensor(new float[] { 2f, -1f, 0.5f, 0.25f }, new long[] { 2, 2 }))
        using (Tensor targets = tensor(new long[] { 0, 1 }))
        {
            using var plain = Transformers.ML.Core.Training.LabelSmoothedCrossEntropy.Sum(logits, targets, 0.1);
            using var first = Transformers.ML.Core.Training.LabelSmoothedCrossEntropy.Sum(logits.narrow(0, 0, 1), targets.narrow(0, 0, 1), 0.1);
            using var weighted = Transformers.ML.Core.Training.LabelSmoothedCrossEntropy.Sum(logits, targets, 0.1, weights: tensor(new float[] { 2f, 0f }));
            Assert.AreEqual(2 * first.Sum.item<float>(), weighted.Sum.item<float>(), 1e-5);
            Assert.AreEqual(2L, weighted.Count.item<long>());
            Assert.IsGreaterThan(first.Sum.item<float>() + 1e-3, plain.Sum.item<float>());
        }

        var model = new VitModel(new VitConfig { ImageSize = 8, PatchSize = 4, Width = 8, Depth = 1, Heads = 2 }, 2);
        using var classifier = new VitClassifier(model, CPU, new[] { "a", "b" }, false, new[] { 0f }, new[] { 1f });
        long[] labels = Enumerable.Range(0, 1000).Select(i => i < 900 ? 0L : 1L).ToArray();
        using var set = new ImageSet(zeros(1000, 1, 8, 8), labels);
        var task = new ImageClassificationTask(classifier, set, null, 100, 0, ClassBalance.BalancedSampling, null);
        int[] drawn = task.PlanEpoch(0, new Random(1)).SelectMany(b => b).ToArray();
        Assert.AreEqual(1000, drawn.Length);
        double minority = drawn.Count(i => labels[i] == 1) / 1000.0;
        Assert.AreEqual(0.5, minority, 0.06);
    }

    [TestMethod]
    public void RolloutOfUniformAttentionIsUniformAndFollowsAFocusedToken()
    {
        using Tensor uniform = full(new long[] { 1, 3, 2, 5, 5 }, 0.2f);
        float[] map = VitClassifier.AttentionRollout(uniform).data<float>().ToArray();
        foreach (float v in map)
        {
            Assert.AreEqual(0.25, v, 1e-6);
        }
        using Tensor focused = zeros(new long[] { 1, 2, 1, 5, 5 });
        focused[.., .., .., .., 3] = tensor(1f); // every token attends to token 3 (patch 2)
        float[] peak = VitClassifier.AttentionRollout(focused).data<float>().ToArray();
        Assert.AreEqual(2, Array.IndexOf(peak, peak.Max()));
    }

    [TestMethod]
    public void FineTuningAtAnotherImageSizeInterpolatesPositionsAndKeepsWeights()
    {
        var ml = new MLContext(seed: 1);
        List<Scan> scans = Scans(10, 1);
        IDataView data = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(ml.Data.LoadFromEnumerable(scans)).Transform(ml.Data.LoadFromEnumerable(scans));
        using ImageClassificationTransformer baseModel = ml.Transformers().ImageClassification("Label", "Pixels", Quick("Pixels", 32, 8, 1)).Fit(data);
        ImageClassificationOptions fine = Quick("Pixels", 32, 8, 1);
        fine.Model!.ImageSize = 48;
        fine.LearningRate = 1e-9; // nearly frozen: the weights must come from the base model
        using ImageClassificationTransformer tuned = ml.Transformers().ImageClassification(baseModel, fine).Fit(data);
        Assert.AreEqual(48, tuned.Config.ImageSize);
        var before = baseModel.Classifier.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in tuned.Classifier.Model.named_parameters())
        {
            if (name == "pos_embed")
            {
                CollectionAssert.AreEqual(new long[] { 1, 37, 16 }, p.shape); // 6 x 6 patches + [CLS]
                continue;
            }
            Assert.IsLessThan(1e-4, TestUtil.MaxAbsDiff(p, before[name]), name);
        }
        Assert.AreEqual(40, tuned.Transform(data).GetColumn<uint>("PredictedLabel").Count());
    }
}

internal static class DataViewTestExtensions
{
    public static IDataView Apply(this IDataView data, Func<IDataView, IDataView> f) => f(data);

    public static IDataView Take(this IDataView data, MLContext ml, int rows) => ml.Data.TakeRows(data, rows);
}

[TestClass]
public sealed class ImageClassificationResumeTests
{
    [TestMethod]
    public void AnInterruptedFitResumesFromItsCheckpointToTheSameWeightsWithAugmentationOn()
    {
        var ml = new MLContext(seed: 1);
        List<Scan> scans = Scans(12, 1);
        IDataView data = ml.Transforms.Conversion.MapValueToKey("Label", "Diagnosis").Fit(ml.Data.LoadFromEnumerable(scans)).Transform(ml.Data.LoadFromEnumerable(scans));
        ImageClassificationOptions Options(string? checkpoint, long? maxSteps)
        {
            ImageClassificationOptions o = SmallOptions(epochs: 3);
            o.Model!.Width = 16;
            o.BatchSize = 8;
            o.CheckpointPath = checkpoint;
            o.MaxSteps = maxSteps;
            o.Augmentation = new ImageAugmentation(); // random per step: must be replayed identically
            return o;
        }
        using ImageClassificationTransformer straight = ml.Transformers().ImageClassification("Label", "Pixels", Options(null, null)).Fit(data);
        string checkpoint = TestUtil.TempPath(".ckpt");
        ml.Transformers().ImageClassification("Label", "Pixels", Options(checkpoint, 7)).Fit(data).Dispose();
        using ImageClassificationTransformer resumed = ml.Transformers().ImageClassification("Label", "Pixels", Options(checkpoint, null)).Fit(data);
        var expected = straight.Classifier.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in resumed.Classifier.Model.named_parameters())
        {
            Assert.IsLessThan(1e-5, TestUtil.MaxAbsDiff(p, expected[name]), name);
        }
    }
}

// Real retinal OCT scans: patient-grouped 5-fold cross-validation of the recipes a clinic with a few hundred labelled
// scans can use (input handling, augmentation, the convolutional stem, pretraining on synthetic scans, masked-autoencoder
// pretraining on the unlabelled scans), each under the same time budget per fold.
//
//   --only image.oct          the default recipe (ImageClassificationOptions.RetinalOct), 5 folds
//   --only image.oct.options  every recipe below, 5 folds each (the table in BENCHMARKS.md)
//   --recipes a,b             only these recipes;  --folds N, --fold-minutes M  other folds and budgets
using System.Globalization;
using Transformers.ML.ImageClassification;
using Transformers.ML.Datasets;
using Transformers.ML.Examples;
using Microsoft.ML;

namespace Transformers.ML.Benchmarks;

internal static class OctBenchmark
{
    /// <summary>
    /// A picture of what the model sees: for 8 scans (two per class), the scan, then the preprocessed input of
    /// <see cref="ImagePreprocessing.RetinalOct"/> at 128 x 128 next to it.
    /// </summary>
    private static void Preview(IReadOnlyList<OctScan> scans, string path)
    {
        var chosen = ImageDatasets.Oct2017Classes.SelectMany(c => scans.Where(s => s.Diagnosis == c).Take(2)).ToList();
        var config = new VitConfig { ImageSize = 128, PatchSize = 8, Channels = 1 };
        var schema = new Microsoft.ML.DataViewSchema.Builder();
        schema.AddColumn("Image", new Microsoft.ML.Transforms.Image.ImageDataViewType());
        ImagePreprocessing preprocessing = ImagePreprocessing.RetinalOct;
        preprocessing.PerImageNormalization = false; // shown as pixels
        if (Environment.GetEnvironmentVariable("OCT_PREVIEW_BAND") is string band)
        {
            preprocessing.BandHeight = double.Parse(band, CultureInfo.InvariantCulture);
        }
        var input = new ImageInput(schema.ToSchema(), "Image", config, null, null, null, preprocessing);
        const int cell = 160;
        using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(4 * cell * 2, 2 * cell + 20));
        SkiaSharp.SKCanvas canvas = surface.Canvas;
        canvas.Clear(SkiaSharp.SKColors.White);
        for (int i = 0; i < chosen.Count; i++)
        {
            using var image = Microsoft.ML.Data.MLImage.CreateFromFile(chosen[i].ImagePath);
            using var original = SkiaSharp.SKBitmap.Decode(chosen[i].ImagePath);
            float x = (i % 4) * 2 * cell, y = (i / 4) * (cell + 10);
            canvas.DrawBitmap(original, new SkiaSharp.SKRect(x, y, x + cell - 4, y + cell - 4));
            using TorchSharp.torch.Tensor pixels = input.ToTensor(image, i);
            float[] values = pixels.contiguous().data<float>().ToArray();
            using var processed = new SkiaSharp.SKBitmap(128, 128);
            processed.Pixels = values.Select(v => { byte b = (byte)Math.Clamp(v * 255, 0, 255); return new SkiaSharp.SKColor(b, b, b); }).ToArray();
            canvas.DrawBitmap(processed, new SkiaSharp.SKRect(x + cell, y, x + 2 * cell - 4, y + cell - 4));
        }
        using SkiaSharp.SKImage snapshot = surface.Snapshot();
        using SkiaSharp.SKData png = snapshot.Encode(SkiaSharp.SKEncodedImageFormat.Png, 90);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, png.ToArray());
        Console.WriteLine($"  image.oct.preview: {path}");
    }

    /// <summary>The recipes compared, by name; the first is the default of --only image.oct.</summary>
    public static IReadOnlyList<OctRecipe> Recipes { get; } = new OctRecipe[]
    {
        new("retinal-oct", budget => Oct(budget, ImagePreprocessing.RetinalOct),
            Notes: "the default: wedges masked, retina band 0.6, per-image normalisation, 64 x 64 / 8, flips, 5 degrees, 5 % shifts, crops, brightness and contrast"),
        new("defaults-64", budget => new ImageClassificationOptions { MaxTrainingTime = budget, Augmentation = new ImageAugmentation(), LogEverySteps = 1_000_000 },
            Notes: "the library's defaults: Small preset 64 x 64, whole scan stretched, dataset normalisation, default augmentation"),
        new("no-band", budget => Oct(budget, Prep(band: 1)), Notes: "as the default but the whole scan stretched to the square (no band crop)"),
        new("pad", budget => Oct(budget, new ImagePreprocessing { MaskWedges = true, BandHeight = 1, Fit = ImageFit.Pad, PerImageNormalization = true }),
            Notes: "as the default but the whole scan padded to a square, keeping its aspect ratio"),
        new("no-per-image-normalisation", budget => Oct(budget, Prep(band: 0.6, perImage: false)), Notes: "as the default, normalised by the training set's mean and deviation only"),
        new("size-96", budget => Oct(budget, ImagePreprocessing.RetinalOct, size: 96), Notes: "as the default at 96 x 96 (patch 8: 144 tokens)"),
        new("no-wedge-mask", budget => Oct(budget, Prep(band: 0.6, wedges: false)), Notes: "as the default but the white wedges left in"),
        new("no-augmentation", budget => Oct(budget, Prep(band: 0.6), augmentation: ImageAugmentation.None), Notes: "as the default without augmentation"),
        new("oct-augmentation", budget => Oct(budget, Prep(band: 0.6), augmentation: new ImageAugmentation { RotationDegrees = 8, TranslationFraction = 0.08, Noise = 0.05 }),
            Notes: "as the default with stronger OCT augmentation: 8 degrees, 8 % shifts, speckle-like noise up to 5 % of the range"),
        new("bfloat16", budget => { ImageClassificationOptions o = Oct(budget, ImagePreprocessing.RetinalOct); o.Precision = TrainingPrecision.BFloat16; return o; },
            Notes: "as the default in bfloat16 mixed precision (faster where the CPU multiplies bfloat16 natively: more steps in the same time)"),
        new("conv-stem", budget => Oct(budget, Prep(band: 0.6), stem: 32), Notes: "as the default with a 32-channel 3x3 convolutional stem (the paper's hybrid)"),
        new("mae", budget => Oct(budget, Prep(band: 0.6)), Pretrain: (ml, images, budget) => MaePretrain(ml, images, budget),
            Notes: "masked-autoencoder pretraining on the fold's training scans (labels unused) for a third of the budget, then the default fine-tuned for the rest"),
        new("synthetic", budget => Oct(budget, Prep(band: 0.6)), Pretrain: (ml, images, budget) => SyntheticPretrain(ml, budget),
            Notes: "the default pretrained on synthetic OCT scans (SyntheticOct, 4 classes) for a third of the budget, then fine-tuned on the real ones"),
    };

    private static (ImageClassificationEstimator, double, IDisposable?) MaePretrain(Microsoft.ML.MLContext ml, Microsoft.ML.IDataView images, TimeSpan budget)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var mae = new MaskedAutoencoderOptions
        {
            Model = Oct(budget, Prep(band: 0.6)).Model, Preprocessing = Prep(band: 0.6), MaxTrainingTime = budget / 3, ValidationFraction = 0.1, LogEverySteps = 1_000_000,
        };
        MaskedAutoencoderTransformer pretrained = ml.Transformers().MaskedAutoencoder("Image", mae).Fit(images);
        double minutes = clock.Elapsed.TotalMinutes;
        return (ml.Transformers().ImageClassification(pretrained, Oct(budget - clock.Elapsed, Prep(band: 0.6))), minutes, pretrained);
    }

    private static (ImageClassificationEstimator, double, IDisposable?) SyntheticPretrain(Microsoft.ML.MLContext ml, TimeSpan budget)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var synthetic = Enumerable.Range(0, 1000).SelectMany(i => Enum.GetValues<OctClass>().Select(c => new SyntheticScan
        {
            Pixels = SyntheticOct.Generate(c, 64, 31 * i + (int)c + 7),
            Diagnosis = c.ToString().ToUpperInvariant(),
        })).ToList();
        Microsoft.ML.IDataView data = ml.Transforms.Conversion.MapValueToKey("Label", nameof(SyntheticScan.Diagnosis),
                keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
            .Fit(ml.Data.LoadFromEnumerable(synthetic)).Transform(ml.Data.LoadFromEnumerable(synthetic));
        ImageClassificationOptions pre = Oct(budget / 3, new ImagePreprocessing { PerImageNormalization = true });
        pre.ImageColumnName = nameof(SyntheticScan.Pixels);
        ImageClassificationTransformer pretrained = ml.Transformers().ImageClassification(pre).Fit(data);
        double minutes = clock.Elapsed.TotalMinutes;
        return (ml.Transformers().ImageClassification(pretrained, Oct(budget - clock.Elapsed, Prep(band: 0.6))), minutes, pretrained);
    }

    private sealed class SyntheticScan
    {
        [Microsoft.ML.Data.VectorType(64 * 64)]
        public float[] Pixels { get; set; } = Array.Empty<float>();

        public string Diagnosis { get; set; } = "";
    }

    private static ImagePreprocessing Prep(double band, bool wedges = true, bool perImage = true) =>
        new() { MaskWedges = wedges, BandHeight = band, PerImageNormalization = perImage };

    /// <summary>The library's OCT recipe (ImageClassificationOptions.RetinalOct) for the budget, changed where a recipe says so.</summary>
    private static ImageClassificationOptions Oct(TimeSpan budget, ImagePreprocessing preprocessing, int size = 64, int patch = 8, int stem = 0,
        ImageAugmentation? augmentation = null)
    {
        ImageClassificationOptions options = ImageClassificationOptions.RetinalOct(budget);
        options.Model!.ImageSize = size;
        options.Model.PatchSize = patch;
        options.Model.StemChannels = stem;
        options.Preprocessing = preprocessing;
        options.Augmentation = augmentation ?? options.Augmentation;
        options.LogEverySteps = 1_000_000;
        return options;
    }

    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        // The 600 scans of oct-real (downloaded when no data folder has them) and, when the data folder has it, the 48 of oct-samples.
        string? real = DataLocator.Folder(options.Data, "oct-real");
        string? samples = DataLocator.Find(options.Data) is string data && Directory.Exists(Path.Combine(data, "oct-samples")) ? Path.Combine(data, "oct-samples") : null;
        var scans = OctCrossValidation.RealScans(new[] { real, samples }.OfType<string>());
        if (scans.Count == 0)
        {
            Console.WriteLine("  image.oct: no real OCT scans (oct-real); skipped.");
            return;
        }
        if (options.Only.Contains("image.oct.preview"))
        {
            Preview(scans, Path.Combine(options.ResultsFolder, "oct-preview.png"));
            return;
        }
        int folds = options.Folds ?? 5;
        double minutes = options.FoldMinutes ?? (options.Quick ? 0.5 : 6.5); // 5 folds of 6.5 minutes and their evaluation: the row ends within 40 minutes
        IEnumerable<OctRecipe> recipes = options.Recipes.Length > 0
            ? options.Recipes.Select(name => Recipes.FirstOrDefault(r => r.Name == name) ?? throw new ArgumentException($"Unknown OCT recipe '{name}'; known: {string.Join(", ", Recipes.Select(r => r.Name))}."))
            : options.Only.Contains("image.oct.options") ? Recipes : Recipes.Take(1);
        Console.WriteLine($"  image.oct: {scans.Count} real scans of {scans.Select(s => s.Patient).Distinct().Count()} patients, {folds} patient-grouped folds, {minutes:F1} min of training per fold");
        foreach (OctRecipe recipe in recipes)
        {
            OctCvResult cv = OctCrossValidation.Run(recipe, scans, folds, TimeSpan.FromMinutes(minutes), seed: 1, log: Console.WriteLine, options.FoldsToRun);
            string Pm((double Mean, double Std) s) => string.Create(CultureInfo.InvariantCulture, $"{s.Mean:F3} +- {s.Std:F3}");
            var accuracy = cv.Stat(f => f.Accuracy);
            string recalls = string.Join(", ", cv.Classes.Select((c, i) => $"{c} {cv.Stat(f => f.Recall[i]).Mean:F2}"));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: 4-class accuracy, {folds}-fold CV by patient", accuracy.Mean, "accuracy", ">= 0.85",
                $"{Pm(accuracy)} over folds; macro {Pm(cv.Stat(f => f.MacroAccuracy))}; recall {recalls}; {cv.Stat(f => f.TrainingMinutes).Mean:F1} min per fold; {recipe.Notes}"));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: normal vs. abnormal AUC", cv.Stat(f => f.Auc).Mean, "AUC", ">= 0.95", Pm(cv.Stat(f => f.Auc))));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: 4-class accuracy with test-time flip", cv.Stat(f => f.FlipAccuracy).Mean, "accuracy", "-",
                $"{Pm(cv.Stat(f => f.FlipAccuracy))}; AUC {Pm(cv.Stat(f => f.FlipAuc))}; the same models, each scan's probabilities averaged with its mirror's"));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: one-class AUC (RandomizedPca on NORMAL embeddings)", cv.Stat(f => f.OneClassAuc).Mean, "AUC", ">= 0.85", Pm(cv.Stat(f => f.OneClassAuc))));
            if (cv.Folds.All(f => f.PretrainedOneClassAuc is not null))
            {
                table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: one-class AUC on the masked autoencoder's embeddings alone", cv.Stat(f => f.PretrainedOneClassAuc!.Value).Mean, "AUC", "-",
                    $"{Pm(cv.Stat(f => f.PretrainedOneClassAuc!.Value))}; no label used before the detector, which sees NORMAL scans only"));
            }
        }
    }
}

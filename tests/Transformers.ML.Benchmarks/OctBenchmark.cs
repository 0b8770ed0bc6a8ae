// Real retinal OCT scans: patient-grouped 5-fold cross-validation of the recipes a clinic with a few hundred labelled
// scans can use (input handling, augmentation, the convolutional stem, pretraining on synthetic scans, masked-autoencoder
// pretraining on the unlabelled scans), each under the same time budget per fold.
//
//   --only image.oct          the default recipe (ImageClassificationOptions.RetinalOct), 5 folds
//   --only image.oct.options  every recipe below, 5 folds each (the table in BENCHMARKS.md)
//   --recipes a,b             only these recipes;  --folds N, --fold-minutes M  other folds and budgets
using System.Globalization;
using Transformers.ML.ImageClassification;
using Transformers.ML.Examples;

namespace Transformers.ML.Benchmarks;

internal static class OctBenchmark
{
    /// <summary>The recipes compared, by name.</summary>
    public static IReadOnlyList<OctRecipe> Recipes { get; } = new OctRecipe[]
    {
        new("defaults-64", budget => new ImageClassificationOptions { MaxTrainingTime = budget, Augmentation = new ImageAugmentation() },
            Notes: "the library's defaults before this work: Small preset 64 x 64, default augmentation, dataset normalisation"),
        new("defaults-64-noaug", budget => new ImageClassificationOptions { MaxTrainingTime = budget, Augmentation = ImageAugmentation.None },
            Notes: "no augmentation"),
    };

    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        string? data = DataLocator.Find(options.Data);
        var scans = data is null ? new List<OctScan>() : OctCrossValidation.RealScans(data);
        if (scans.Count == 0)
        {
            Console.WriteLine("  image.oct: no real OCT scans (oct-real, oct-samples) in the data folder; skipped.");
            return;
        }
        int folds = options.Folds ?? 5;
        double minutes = options.FoldMinutes ?? (options.Quick ? 0.5 : 6);
        IEnumerable<OctRecipe> recipes = options.Recipes.Length > 0
            ? options.Recipes.Select(name => Recipes.FirstOrDefault(r => r.Name == name) ?? throw new ArgumentException($"Unknown OCT recipe '{name}'; known: {string.Join(", ", Recipes.Select(r => r.Name))}."))
            : options.Only.Contains("image.oct.options") ? Recipes : Recipes.Take(1);
        Console.WriteLine($"  image.oct: {scans.Count} real scans of {scans.Select(s => s.Patient).Distinct().Count()} patients, {folds} patient-grouped folds, {minutes:F1} min of training per fold");
        foreach (OctRecipe recipe in recipes)
        {
            OctCvResult cv = OctCrossValidation.Run(recipe, scans, folds, TimeSpan.FromMinutes(minutes), seed: 1, log: Console.WriteLine);
            string Pm((double Mean, double Std) s) => string.Create(CultureInfo.InvariantCulture, $"{s.Mean:F3} +- {s.Std:F3}");
            var accuracy = cv.Stat(f => f.Accuracy);
            string recalls = string.Join(", ", cv.Classes.Select((c, i) => $"{c} {cv.Stat(f => f.Recall[i]).Mean:F2}"));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: 4-class accuracy, {folds}-fold CV by patient", accuracy.Mean, "accuracy", ">= 0.85",
                $"{Pm(accuracy)} over folds; macro {Pm(cv.Stat(f => f.MacroAccuracy))}; recall {recalls}; {cv.Stat(f => f.TrainingMinutes).Mean:F1} min per fold; {recipe.Notes}"));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: normal vs. abnormal AUC", cv.Stat(f => f.Auc).Mean, "AUC", ">= 0.95", Pm(cv.Stat(f => f.Auc))));
            table.Add(new BenchmarkRow("image.oct", $"{recipe.Name}: one-class AUC (RandomizedPca on NORMAL embeddings)", cv.Stat(f => f.OneClassAuc).Mean, "AUC", ">= 0.85", Pm(cv.Stat(f => f.OneClassAuc))));
        }
    }
}

// ONNX export, Model Builder style: take the models the other examples saved (or, when an example has not been run,
// train one with its recipe for a few minutes), export each to ONNX, run them through ONNX Runtime, compare with TorchSharp, and ship the ViT the standard ML.NET
// way: LoadImages -> ResizeImages -> ExtractPixels -> ApplyOnnxModel, saved and reloaded as an ML.NET .zip.
// A second mode runs the exports with ONNX Runtime only, as a deployed application would: no libtorch is loaded.
//
//   dotnet run -c Release --project examples/OnnxExport -- [options]   (--help lists the options: Settings.Usage at the end of this file)
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML;
using Transformers.ML.Examples;
using Transformers.ML.ImageClassification;
using Transformers.ML.TextGeneration;
using Transformers.ML.Translation;
using Transformers.ML.Datasets;

var settings = CommandLine.Parse(args, Settings.Usage, Settings.Parse);
var ml = new MLContext(seed: 1);
Directory.CreateDirectory(settings.Output);
if (settings.OnnxOnly is string exports)
{
    await Deployed.Run(ml, exports);
    return;
}
var clock = Stopwatch.StartNew();

// ---------------------------------------------------------------- text generation
TextGenerationTransformer gpt = settings.Gpt is string g ? Saved.Load(g, p => ml.Transformers().LoadTextGeneration(p)) : Train.Gpt(ml, settings.Data);
string gptPath = Path.Combine(settings.Output, "gpt.onnx");
gpt.ExportToOnnx(gptPath);
using (OnnxTextGenerator generator = OnnxTextGenerator.Load(gptPath))
{
    // Greedy decoding checks that both runtimes pick the same tokens (a small character model's greedy text loops, so it
    // is compared, not shown); the text shown is sampled, as the model's own settings would.
    var greedy = new GenerationOptions { MaxNewTokens = 120, Temperature = 0 };
    string torch = gpt.Generate("ROMEO:", greedy), onnx = generator.Generate("ROMEO:", greedy);
    Console.WriteLine($"GPT -> {gptPath} ({new FileInfo(gptPath).Length / 1e6:F1} MB). 120 greedy tokens identical in TorchSharp and ONNX Runtime: {torch == onnx}");
    // The export carries the model's own generation settings: given none, the deployed generator writes the model's text.
    Console.WriteLine($"  the model's own settings, read from the export ({generator.Generation}), give TorchSharp's text: {generator.Generate("JULIET:") == gpt.Generate("JULIET:")}");
    Console.WriteLine($"  sampled through ONNX Runtime ({Deployed.Sampling(160)}):\n  JULIET:{generator.Generate("JULIET:", Deployed.Sampling(160)).Replace("\n", "\n  ")}");

    // The int8 export of the same model and what it gives up: the perplexity of both exports, through ONNX Runtime, on
    // the last tenth of Tiny Shakespeare (which the text example and the fallback training below hold out).
    string int8Path = Path.Combine(settings.Output, "gpt-int8.onnx");
    gpt.ExportToOnnx(int8Path, new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
    using OnnxTextGenerator int8 = OnnxTextGenerator.Load(int8Path);
    string[] heldOut = { TextRecipe.Split(Books.Read(settings.Data, "tinyshakespeare.txt")).HeldOut };
    TextGenerationMetrics full = generator.Evaluate(heldOut), quantized = int8.Evaluate(heldOut);
    Console.WriteLine($"  int8 -> {int8Path} ({new FileInfo(int8Path).Length / 1e6:F1} MB, {(double)new FileInfo(gptPath).Length / new FileInfo(int8Path).Length:F1}x smaller): " +
        $"perplexity on the held-out tenth of Tiny Shakespeare {full.Perplexity:F2} -> {quantized.Perplexity:F2} per token ({(quantized.Perplexity / full.Perplexity - 1) * 100:+0.00;-0.00} %), " +
        $"{full.BitsPerCharacter:F3} -> {quantized.BitsPerCharacter:F3} bits per character, {full.Tokens:N0} tokens");
}
gpt.Dispose();

// ---------------------------------------------------------------- translation
TranslationTransformer translation = settings.Translation is string t ? Saved.Load(t, p => ml.Transformers().LoadTranslation(p)) : Train.Translation(ml, settings.Data);
string translationFolder = Path.Combine(settings.Output, "translation");
translation.ExportToOnnx(translationFolder);
using (OnnxTranslator translator = OnnxTranslator.Load(translationFolder))
{
    string[] sentences = { "Soy un estudiante", "Gracias", "¿Dónde está la biblioteca?", "Hace mucho frío hoy." };
    // Both decode with the model's beam size and length penalty, which the export carries.
    IReadOnlyList<string> torch = translation.Translate(sentences), onnx = translator.Translate(sentences);
    Console.WriteLine($"Translation -> {translationFolder} (encoder.onnx, decoder.onnx). Translations with beam {translator.BeamSize} and length penalty {translator.LengthPenalty} identical: {torch.SequenceEqual(onnx)}");
    for (int i = 0; i < sentences.Length; i++)
    {
        Console.WriteLine($"  {sentences[i],-28} -> {onnx[i]}");
    }
}
translation.Dispose();

// ---------------------------------------------------------------- image classification through ML.NET's ApplyOnnxModel
// The real-scan model of examples/OctAnomalyDetection is tried on 40 real scans (it has seen them all: this checks the
// export, not the model); the fallback, trained on four fifths of the real scans' patients, on the scans of the others.
(ImageClassificationTransformer vit, List<Scan> testScans, string? unseen) = settings.Vit is string v
    ? (Saved.Load(v, p => ml.Transformers().LoadImageClassification(p)), Train.RealScans(settings.Data, 40), null)
    : Train.Vit(ml, settings.Data);
// The graph takes the scans at their most common size and does the model's own preprocessing from there (resampling,
// wedges, band, averaging): ResizeImages leaves scans of that size as they are (its own resampling differs from the
// model's) and brings the others to it.
(int height, int width) = ImageSizes.MostCommon(testScans.Select(s => s.ImagePath));
string vitPath = Path.Combine(settings.Output, "vit.onnx");
vit.ExportToOnnx(vitPath, new OnnxExportOptions { InputHeight = height, InputWidth = width });
IDataView scans = ml.Data.LoadFromEnumerable(testScans);
var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(Scan.ImagePath))
    // Fill: stretch the whole scan as the model does (ResizeImages' default, IsoCrop, would cut the sides of a wide scan)
    .Append(ml.Transforms.ResizeImages("Image", width, height, resizing: Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.Fill))
    .Append(ml.Transforms.ExtractPixels("pixels", "Image", scaleImage: 1 / 255f))     // RGB planes in [0, 1]: the export's input
    .Append(ml.Transforms.ApplyOnnxModel(new[] { "probabilities" }, new[] { "pixels" }, vitPath));
ITransformer onnxModel = pipeline.Fit(scans);
string zip = Path.Combine(settings.Output, "oct-vit-mlnet.zip");
ml.Model.Save(onnxModel, scans.Schema, zip);
ITransformer reloaded = ml.Model.Load(zip, out _);
float[][] fromZip = reloaded.Transform(scans).GetColumn<float[]>("probabilities").ToArray();
IDataView loaded = ml.Transforms.LoadImages("Image", null, nameof(Scan.ImagePath)).Fit(scans).Transform(scans);
float[][] fromTorch = vit.Transform(loaded).GetColumn<float[]>("Score").ToArray();
int agree = fromZip.Zip(fromTorch).Count(p => ArgMax(p.First) == ArgMax(p.Second));
Console.WriteLine($"ViT -> {vitPath}; ML.NET pipeline with ApplyOnnxModel saved to {zip} ({new FileInfo(zip).Length / 1e6:F1} MB) and reloaded:");
bool[] atSize = testScans.Select(s => ImageSizes.Of(s.ImagePath) == (height, width)).ToArray();
string Largest(bool at) => fromZip.Zip(fromTorch).Where((_, i) => atSize[i] == at)
    .Select(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second))).DefaultIfEmpty().Max().ToString("E1");
// The largest difference on the scans of the graph's input size, and on the others, each said only where there are such scans.
string?[] parts =
{
    atSize.Any(a => a) ? $"{Largest(true)} on the {atSize.Count(a => a)} scans of {width} x {height}, the graph's input (ResizeImages leaves them as they are)" : null,
    atSize.Any(a => !a) ? $"{Largest(false)} on the {atSize.Count(a => !a)} scans of other sizes (resized by ResizeImages)" : null,
};
Console.WriteLine($"  {agree} of {fromZip.Length} scans get the TorchSharp model's class; largest probability difference {string.Join(", ", parts.OfType<string>())}.");
if (unseen is not null)
{
    int right = fromZip.Zip(testScans).Count(p => vit.ClassNames[ArgMax(p.First)] == p.Second.Diagnosis);
    Console.WriteLine($"  accuracy of the reloaded .zip on {unseen}: {(double)right / testScans.Count:P1} ({right} of {testScans.Count})");
}
var engine = ml.Model.CreatePredictionEngine<Scan, Probabilities>(reloaded);
Scan first = ml.Data.CreateEnumerable<Scan>(scans, false).First();
float[] p = engine.Predict(first).Values;
Console.WriteLine($"  PredictionEngine on the reloaded .zip: {Path.GetFileName(first.ImagePath)} ({first.Diagnosis}) -> {vit.ClassNames[ArgMax(p)]} ({p.Max():P0})");
File.WriteAllText(Path.Combine(settings.Output, "vit-sample-scan.txt"), first.ImagePath); // for --onnx-only
vit.Dispose();

// ---------------------------------------------------------------- latency: ONNX Runtime against TorchSharp
Console.WriteLine($"Exports written to {settings.Output} in {clock.Elapsed:mm\\:ss}. Run them with ONNX Runtime alone:");
Console.WriteLine($"  dotnet run -c Release --project examples/OnnxExport -- --onnx-only {settings.Output}");

static int ArgMax(float[] values) => Array.IndexOf(values, values.Max());

/// <summary>An OCT scan file and its diagnosis.</summary>
public sealed class Scan
{
    public string ImagePath { get; set; } = "";

    public string Diagnosis { get; set; } = "";

    /// <summary>The scan of an OCT2017 folder's (path, label) pair.</summary>
    public static Scan Of((string Path, string Label) file) => new() { ImagePath = file.Path, Diagnosis = file.Label };
}

/// <summary>The ONNX model's output column.</summary>
public sealed class Probabilities
{
    [ColumnName("probabilities")]
    public float[] Values { get; set; } = Array.Empty<float>();
}

/// <summary>What a deployed application does: load the exports and run them, with ONNX Runtime only.</summary>
internal static class Deployed
{
    /// <summary>How the examples show a GPT's text: sampled (a small model's greedy text loops), seeded so that runs repeat.</summary>
    public static GenerationOptions Sampling(int maxNewTokens) => new() { MaxNewTokens = maxNewTokens, Temperature = 0.8, TopK = 40, MinP = 0.1, Seed = 1 };

    public static async Task Run(MLContext ml, string folder)
    {
        var clock = Stopwatch.StartNew();
        using (OnnxTextGenerator generator = OnnxTextGenerator.Load(Path.Combine(folder, "gpt.onnx")))
        {
            // Streamed as it is sampled, as a chat window or a web page (server-sent events) would show it.
            Console.Write($"GPT (ONNX Runtime, streamed as sampled with {Sampling(60)}): ROMEO:");
            await foreach (string piece in generator.GenerateStreaming("ROMEO:", Sampling(60)))
            {
                Console.Write(piece.Replace("\n", " / "));
            }
            Console.WriteLine();
        }
        using (OnnxTranslator translator = OnnxTranslator.Load(Path.Combine(folder, "translation")))
        {
            Console.WriteLine($"Translation (ONNX Runtime): Soy un estudiante -> {translator.Translate("Soy un estudiante")}");
        }
        ITransformer model = ml.Model.Load(Path.Combine(folder, "oct-vit-mlnet.zip"), out _);
        string image = File.ReadAllText(Path.Combine(folder, "vit-sample-scan.txt")).Trim();
        float[] p = ml.Model.CreatePredictionEngine<Scan, Probabilities>(model).Predict(new Scan { ImagePath = image }).Values;
        // The class names travel in the ONNX model's metadata.
        string[] classes;
        using (var session = new Microsoft.ML.OnnxRuntime.InferenceSession(Path.Combine(folder, "vit.onnx")))
        {
            classes = System.Text.Json.JsonSerializer.Deserialize<string[]>(session.ModelMetadata.CustomMetadataMap["classes"]) ?? Array.Empty<string>();
        }
        int best = Array.IndexOf(p, p.Max());
        Console.WriteLine($"ViT (ML.NET .zip with ApplyOnnxModel): {Path.GetFileName(image)} -> {(best < classes.Length ? classes[best] : $"class {best}")} ({p.Max():P0})");
        bool libtorch = File.ReadLines("/proc/self/maps").Any(l => l.Contains("libtorch", StringComparison.Ordinal));
        Console.WriteLine(OperatingSystem.IsLinux()
            ? $"libtorch loaded in this process: {(libtorch ? "yes" : "no")} ({clock.Elapsed.TotalSeconds:F1} s)"
            : $"Done in {clock.Elapsed.TotalSeconds:F1} s.");
    }
}

/// <summary>The model files the other examples save (in their default output folders), when they are there.</summary>
internal static class Saved
{
    private static readonly string Examples = Path.Combine(Path.GetTempPath(), "transformers-ml-example");

    public static string? Gpt => Existing(Path.Combine(Examples, "text", "text-generation.safetensors"));

    public static string? Translation => Existing(Path.Combine(Examples, "translation", "translation.safetensors"));

    public static string? Vit => Existing(Path.Combine(Examples, "oct", "oct-vit.safetensors"));

    private static string? Existing(string path) => File.Exists(path) ? path : null;

    public static T Load<T>(string path, Func<string, T> load)
    {
        Console.WriteLine($"Loading {path} ({File.GetLastWriteTime(path):yyyy-MM-dd HH:mm})...");
        return load(path);
    }
}

/// <summary>Models trained with the examples' recipes for a few minutes, when no saved model is there.</summary>
internal static class Train
{
    public static TextGenerationTransformer Gpt(MLContext ml, string? data)
    {
        Console.WriteLine("No saved text generator (run examples/TextGeneration for a better one): training the example's recipe on Tiny Shakespeare for 3 minutes...");
        TextGenerationOptions options = TextRecipe.Options(TokenizerKind.BytePairEncoding, TimeSpan.FromMinutes(3)); // the text example's recipe and tokenizer
        options.LogEverySteps = 1_000_000;
        string train = TextRecipe.Split(Books.Read(data, "tinyshakespeare.txt")).Train; // the tenth the text example holds out stays out
        return ml.Transformers().TextGeneration(options).Fit(ml.Data.LoadFromEnumerable(new[] { new BookText { Text = train } }));
    }

    public static TranslationTransformer Translation(MLContext ml, string? data)
    {
        string pairs = DataLocator.File(data, "translation/spa-eng.txt");
        Console.WriteLine("No saved translator (run examples/Translation for a better one): training the example's recipe for 6 minutes...");
        TranslationOptions options = TranslationRecipe.Options(TimeSpan.FromMinutes(6)); // about an epoch: right short sentences
        options.SourceColumnName = nameof(SentencePair.Spanish);
        options.TargetColumnName = nameof(SentencePair.English);
        options.SampleSentence = null;
        options.LogEverySteps = 1_000_000;
        return ml.Transformers().Translation(options).Fit(ml.Data.LoadFromTextFile<SentencePair>(pairs, separatorChar: '\t', hasHeader: false, allowQuoting: false));
    }

    /// <summary>
    /// The OCT example's recipe (ImageClassificationOptions.RetinalOct) for 3 minutes on the real scans of four fifths of the
    /// patients of the data setting's oct-real, and the scans of the other fifth to try it on; SYNTHETIC scans where there are
    /// no real ones.
    /// </summary>
    public static (ImageClassificationTransformer, List<Scan>, string Unseen) Vit(MLContext ml, string? data)
    {
        List<Scan> train, test;
        ImageClassificationOptions options;
        string unseen;
        if (DataLocator.Folder(data, "oct-real") is string real)
        {
            Console.WriteLine($"No saved OCT classifier (run examples/OctAnomalyDetection for a better one): training the OCT recipe for 3 minutes on the real scans of four fifths of the patients of '{real}'...");
            var scans = ImageDatasets.ReadOct2017Folder(real);
            // One patient's scans are near copies: the held-out fifth shares no patient with the training part (the OCT example's split).
            string[] patients = scans.Select(f => ImageDatasets.Oct2017Patient(f.Path)).ToArray();
            int[] fold = ImageDatasets.GroupedFolds(patients, scans.Select(f => f.Label).ToList(), folds: 5, seed: 1);
            train = scans.Where((_, i) => fold[i] != 0).Select(Scan.Of).ToList();
            test = scans.Where((_, i) => fold[i] == 0).Select(Scan.Of).ToList();
            options = ImageClassificationOptions.RetinalOct(TimeSpan.FromMinutes(3));
            unseen = $"the {test.Count} scans of the {patients.Where((_, i) => fold[i] == 0).Distinct().Count()} patients it was not trained on (real scans)";
        }
        else
        {
            string folder = SyntheticImages(64);
            Console.WriteLine("No saved OCT classifier and no real scans (set --data or TRANSFORMERS_ML_DATA): training a small ViT on SYNTHETIC OCT scans (not medical data) for about 2.5 minutes...");
            train = ImageDatasets.ReadOct2017Folder(folder, "train").Select(Scan.Of).ToList();
            test = ImageDatasets.ReadOct2017Folder(folder, "test").Select(Scan.Of).ToList();
            options = new ImageClassificationOptions { Epochs = 8, MaxTrainingTime = TimeSpan.FromMinutes(2.5) };
            unseen = "the synthetic test scans";
        }
        options.LogEverySteps = 1_000_000;
        IDataView rows = ml.Data.LoadFromEnumerable(train);
        var prepare = ml.Transforms.Conversion.MapValueToKey("Label", nameof(Scan.Diagnosis), keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
            .Append(ml.Transforms.LoadImages("Image", null, nameof(Scan.ImagePath))).Fit(rows);
        return (ml.Transformers().ImageClassification("Label", "Image", options).Fit(prepare.Transform(rows)), test, unseen);
    }

    /// <summary><paramref name="count"/> real scans of the data setting's oct-real (downloaded when missing), the classes in turn.</summary>
    public static List<Scan> RealScans(string? data, int count)
    {
        string folder = DataLocator.Folder(data, "oct-real")
            ?? throw new DirectoryNotFoundException("The saved OCT model is tried on real scans (oct-real): set --data or TRANSFORMERS_ML_DATA, or allow the download.");
        var byClass = ImageDatasets.ReadOct2017Folder(folder).GroupBy(f => f.Label).Select(g => g.ToList()).ToList();
        return Enumerable.Range(0, count).Select(i => byClass[i % byClass.Count][i / byClass.Count]).Select(Scan.Of).ToList();
    }

    /// <summary>A folder of SYNTHETIC OCT scans at the Small preset's 64 x 64 (so ResizeImages keeps them as they are).</summary>
    public static string SyntheticImages(int size)
    {
        string folder = Path.Combine(Path.GetTempPath(), "transformers-ml-example", $"synthetic-oct-onnx-{size}");
        if (!File.Exists(Path.Combine(folder, "complete")))
        {
            SyntheticOct.WriteOct2017Folder(folder, trainPerClass: 500, testPerClass: 50, size: size, seed: 2);
            File.WriteAllText(Path.Combine(folder, "complete"), "");
        }
        return folder;
    }
}

internal sealed record Settings(string Output, string? Gpt, string? Translation, string? Vit, string? OnnxOnly, string? Data)
{
    /// <summary>What --help prints.</summary>
    public const string Usage = """
        dotnet run -c Release --project examples/OnnxExport -- [options]
          --out DIR          export folder (default: a temp folder)
          --gpt FILE         a text generator (default: the one examples/TextGeneration saved, else train one for 3 minutes)
          --translation FILE a translator (default: the one examples/Translation saved, else train one for 6 minutes)
          --vit FILE         an OCT classifier (default: the one examples/OctAnomalyDetection saved, tried on real scans; else
                             train the OCT recipe for 3 minutes on real scans of four fifths of the patients and try it on
                             the others; SYNTHETIC scans where there are no real ones)
          --onnx-only DIR    run an export folder written earlier with ONNX Runtime alone and report whether libtorch was loaded
          --data DIR         data folder (else TRANSFORMERS_ML_DATA, else shared/data beside the repository)
        """;

    public static Settings Parse(string[] args)
    {
        var s = new Settings(Path.Combine(Path.GetTempPath(), "transformers-ml-example", "onnx"), Saved.Gpt, Saved.Translation, Saved.Vit, null, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            string Existing(string path) => File.Exists(path) ? path : throw new FileNotFoundException($"{args[i - 1]} '{path}' does not exist.");
            s = args[i] switch
            {
                "--out" => s with { Output = Next() },
                "--gpt" => s with { Gpt = Existing(Next()) },
                "--translation" => s with { Translation = Existing(Next()) },
                "--vit" => s with { Vit = Existing(Next()) },
                "--onnx-only" => s with { OnnxOnly = Directory.Exists(Next()) ? args[i] : throw new DirectoryNotFoundException($"--onnx-only '{args[i]}' does not exist.") },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'."),
            };
        }
        return s;
    }
}

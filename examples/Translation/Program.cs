// Translation, Model Builder style: train the Transformer of "Attention Is All You Need" on Spanish-English
// pairs for a time budget that plans its schedule (warmup and decay end with the budget), evaluate BLEU and chrF on
// held-out sentences with greedy decoding and beam search, save and reload, translate the seed's sentences (two of them
// typed in lower case or in capitals too, and list the 3 best translations of one, with their scores), and draw where
// the model looks: the alignment of a translation
// (the decoder's cross-attention) and the decoder's self-attention from "it" in a sentence whose Spanish has no
// pronoun. --evaluate FILE scores the model on pairs of your own (with --load, a model saved earlier, without training).
//
//   dotnet run -c Release --project examples/Translation -- [options]   (--help lists the options: Settings.Usage at the end of this file)
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML;
using Transformers.ML.Examples;
using Transformers.ML.Translation;

var settings = CommandLine.Parse(args, Settings.Usage, Settings.Parse);
var clock = Stopwatch.StartNew();
var ml = new MLContext(seed: 1);
// The trainer's decisions worth seeing (the rest of ML.NET's log is verbose): the plan of the time budget and the checkpoint averaging.
ml.Log += (_, e) =>
{
    if (e.RawMessage.StartsWith("Checkpoint averaging", StringComparison.Ordinal) || e.RawMessage.Contains("optimizer steps planned", StringComparison.Ordinal))
    {
        Console.WriteLine("  " + e.RawMessage);
    }
};
Directory.CreateDirectory(settings.Output);

string modelPath = settings.Load ?? Path.Combine(settings.Output, "translation.safetensors");
// Pairs to score the final model on (--evaluate), read first so that a wrong file fails before minutes of training.
IDataView? newPairs = settings.Evaluate is string evaluateFile ? ReadPairs(evaluateFile) : null;
HashSet<string>? trainingEnglish = null;
if (settings.Load is null)
{
    // ---------------------------------------------------------------- data
    string path = DataLocator.File(settings.Data, "translation/spa-eng.txt");
    IDataView all = ml.Data.LoadFromTextFile<ModelInput>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
    // The file holds many translations of one English sentence: split by unique English sentence, or the test set leaks.
    var split = ml.Data.TrainTestSplit(all, testFraction: 0.02, samplingKeyColumnName: nameof(ModelInput.English), seed: 1);
    var trainValidation = ml.Data.TrainTestSplit(split.TrainSet, testFraction: 0.01, samplingKeyColumnName: nameof(ModelInput.English), seed: 2);
    IDataView test = TranslationRecipe.HeldOut<ModelInput>(ml, split.TestSet, settings.TestSentences);
    Console.WriteLine($"Training on {Count(trainValidation.TrainSet):N0} pairs, validating on {Count(trainValidation.TestSet):N0}, testing on {Count(test):N0} (split by English sentence).");
    if (newPairs is not null)
    {
        trainingEnglish = trainValidation.TrainSet.GetColumn<string>(nameof(ModelInput.English)).ToHashSet(StringComparer.Ordinal);
    }

    // ---------------------------------------------------------------- training
    TranslationOptions options = TranslationRecipe.Options(TimeSpan.FromMinutes(settings.Minutes), settings.Seed, settings.Preset);
    options.Precision = settings.Precision ?? options.Precision;
    options.Progress = new ConsoleProgress();
    options.CurvesPath = Path.Combine(settings.Output, "training-curves.png");
    TranslationTransformer model = ml.Transformers().Translation(options).Fit(trainValidation.TrainSet, trainValidation.TestSet);
    TrainingProgress last = model.TrainingReports[^1];
    Console.WriteLine($"Trained {model.ParameterCount:N0} parameters for {last.Step:N0} steps in {last.Elapsed:mm\\:ss}. Curves: {options.CurvesPath}");

    // ---------------------------------------------------------------- evaluation: greedy and beam search
    Score(model, test);
    // What a user pastes: paragraphs of 2-4 held-out sentences, translated sentence by sentence (the default) and as one sequence.
    List<(string Spanish, string English)> paragraphs = TranslationRecipe.Paragraphs(PairsOf(test));
    var (bySentence, whole) = TranslationRecipe.ScoreParagraphs(model, paragraphs);
    Console.WriteLine($"Paragraphs, {paragraphs.Count} texts of 2-4 held-out sentences, beam 4: BLEU {bySentence.Bleu:F2} sentence by sentence (chrF2 {bySentence.ChrF:F2}); " +
        $"{whole.Bleu:F2} as one sequence, which drops sentences (output {whole.HypothesisLength / (double)whole.ReferenceLength:P0} of the reference's length)");
    // Numbers are copied, not spelled anew (CopyVerbatimSpans): the held-out sentences with a number on both sides, with other digits.
    var (carried, variants, numbered) = TranslationRecipe.ScoreNumbers(model, PairsOf(test));
    Console.WriteLine($"Numbers: {carried} of {variants} translations carry every number of their source ({numbered} held-out sentences with a number on both sides, each with other digits 10 times)");

    model.BeamSize = 4; // the saved model decodes with beam search
    model.Save(modelPath);
    model.Dispose();
}

// ---------------------------------------------------------------- consumption: the reloaded model, through a PredictionEngine
using TranslationTransformer reloaded = ml.Transformers().LoadTranslation(modelPath);
if (newPairs is not null)
{
    // ------------------------------------------------------------ --evaluate: the model on pairs of your own
    Console.WriteLine($"\n{Count(newPairs):N0} pairs of '{settings.Evaluate}':");
    if (trainingEnglish is not null)
    {
        int seen = newPairs.GetColumn<string>(nameof(ModelInput.English)).Count(trainingEnglish.Contains);
        Console.WriteLine(seen == 0
            ? "  none of their English sentences is among the training pairs"
            : $"  note: {seen:N0} of their English sentences are among the training pairs, so their scores are optimistic");
    }
    else
    {
        Console.WriteLine("  (a loaded model: they are not checked against the pairs it was trained on)");
    }
    Score(reloaded, newPairs);
}
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(reloaded);
Console.WriteLine($"\n{(settings.Load is null ? "Saved to" : "Loaded")} {modelPath}{(settings.Load is null ? " and reloaded" : "")} (beam {reloaded.BeamSize}, length penalty {reloaded.LengthPenalty}):");
foreach ((string sentence, string expected) in TranslationRecipe.Sentences)
{
    Console.WriteLine($"  {sentence,-52} -> {engine.Predict(new ModelInput { Spanish = sentence }).Translation,-50} (a right one: {expected})");
}
// Numbers, addresses and emoji are carried over as written (CopyVerbatimSpans, saved with the model).
Console.WriteLine($"  numbers, an address and an emoji (CopiesVerbatimSpans: {(reloaded.CopiesVerbatimSpans ? "on" : "off")}):");
foreach ((string sentence, string expected) in TranslationRecipe.Verbatim)
{
    Console.WriteLine($"  {sentence,-52} -> {engine.Predict(new ModelInput { Spanish = sentence }).Translation,-50} (a right one: {expected})");
}
// A text of several sentences: each is translated on its own (SplitSentences, saved with the model), then joined as spaced.
(string text, string right) = TranslationRecipe.Paragraph;
Console.WriteLine($"  {text,-52} -> {engine.Predict(new ModelInput { Spanish = text }).Translation,-50} (a right one: {right})");
// Sentences as people type them: the model learned from sentences that begin with a capital, so one typed in lower case
// gets its capital, and one in capitals is read in sentence case and answered in capitals (NormalizeSourceCase, saved with the model);
// a text typed all in lower case is cut into its sentences all the same.
Console.WriteLine($"  typed in lower case or in capitals (NormalizeSourceCase: {(reloaded.NormalizeSourceCase ? "on" : "off")}):");
foreach (string typed in new[] { "¿dónde está la biblioteca?", "HACE MUCHO FRÍO HOY.", text.ToLowerInvariant() })
{
    Console.WriteLine($"  {typed,-52} -> {engine.Predict(new ModelInput { Spanish = typed }).Translation}");
}
// Alternatives to offer a user or to rerank: the best distinct translations beam search found, with the scores it ranked them by.
const string night = "Me gusta leer libros por la noche.";
Console.WriteLine($"\nThe 3 best of beam {reloaded.BeamSize} for \"{night}\" (TranslateNBest; the score is the length-normalised log-probability):");
foreach (TranslationCandidate candidate in reloaded.TranslateNBest(night, 3)) // the model's beam size and length penalty
{
    Console.WriteLine($"  {candidate.Score,6:F3}  {candidate.Text}");
}

// ---------------------------------------------------------------- attention: the alignment, and where "it" looks
TranslationAttention student = reloaded.Attention("Soy un estudiante");
string alignment = Path.Combine(settings.Output, "alignment-soy-un-estudiante.png");
AttentionPictures.SaveLayerAverage(student.Cross, student.Cross.Layers - 1, alignment, $"\"Soy un estudiante\" -> \"{student.Translation}\": cross-attention, last layer, heads averaged",
    "English token written", "Spanish token");
Console.WriteLine($"\nAlignment of \"Soy un estudiante\" -> \"{student.Translation}\" (cross-attention, last layer): {alignment}");
Console.WriteLine("  " + AttentionPictures.Strongest(student.Cross, student.Cross.Layers - 1));

const string animal = "El animal no cruzó la calle porque estaba cansado.";
const string reference = "The animal didn't cross the street because it was tired.";
// Spanish drops the pronoun; the English side has one. When the model's own translation has no "it" (it may say "he"),
// the decoder is given the reference translation instead (teacher forcing), which is where "it" is.
TranslationAttention own = reloaded.Attention(animal);
TranslationAttention tired = FindIt(own.DecoderSelf) >= 0 ? own : reloaded.Attention(animal, reference);
int it = FindIt(tired.DecoderSelf);
string heads = Path.Combine(settings.Output, "decoder-self-attention-it.png");
AttentionPictures.SaveFrom(tired.DecoderSelf, it, heads, $"Where \"it\" looks in the decoder: \"{animal}\" -> \"{tired.Translation}\"");
string cross = Path.Combine(settings.Output, "alignment-animal.png");
AttentionPictures.SaveLayerAverage(tired.Cross, tired.Cross.Layers - 1, cross, $"\"{animal}\" -> \"{tired.Translation}\": cross-attention, last layer, heads averaged",
    "English token written", "Spanish token");
Console.WriteLine($"\n\"{animal}\" -> \"{own.Translation}\"" + (ReferenceEquals(tired, own) ? "" : $" (no \"it\": the decoder reads the reference \"{reference}\" for the pictures)"));
Console.WriteLine($"  decoder self-attention from \"it\", per layer and head: {heads}");
Console.WriteLine("  " + AttentionPictures.StrongestFrom(tired.DecoderSelf, it));
Console.WriteLine($"  alignment: {cross}");
Console.WriteLine("  " + AttentionPictures.Strongest(tired.Cross, tired.Cross.Layers - 1));
Console.WriteLine($"\nDone in {clock.Elapsed:mm\\:ss}.");

// BLEU and chrF2 of greedy decoding and of beam search (4 beams, GNMT's length penalty 0.6) through ML.NET's Transform;
// the model keeps the beam size it had.
void Score(TranslationTransformer model, IDataView pairs)
{
    int kept = model.BeamSize;
    long count = Count(pairs);
    foreach ((string name, int beam) in new[] { ("greedy", 1), (string.Create(System.Globalization.CultureInfo.InvariantCulture, $"beam 4, alpha {model.LengthPenalty}"), 4) })
    {
        model.BeamSize = beam;
        var decode = Stopwatch.StartNew();
        TranslationMetrics metrics = ml.Transformers().EvaluateTranslation(model.Transform(pairs), nameof(ModelInput.English), nameof(ModelOutput.Translation));
        Console.WriteLine($"{name,-18} {metrics}  ({count / decode.Elapsed.TotalSeconds:F1} sentences/s)");
    }
    model.BeamSize = kept;
}

// The pairs of a file in the training file's format (English TAB Spanish, further columns ignored).
IDataView ReadPairs(string path)
{
    IDataView pairs = ml.Data.LoadFromTextFile<ModelInput>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
    List<ModelInput> rows = ml.Data.CreateEnumerable<ModelInput>(pairs, reuseRowObject: false).ToList(); // one read of the file
    return rows.Any(p => !string.IsNullOrWhiteSpace(p.Spanish) && !string.IsNullOrWhiteSpace(p.English)) ? ml.Data.LoadFromEnumerable(rows) : throw new InvalidDataException(
        $"--evaluate '{path}' has no pair of an English and a Spanish sentence ({rows.Count} lines); expected English TAB Spanish on each line, as in manythings.org's spa-eng.");
}

static int FindIt(AttentionWeights decoder) => decoder.QueryTokens.ToList().FindIndex(t => t.Trim().Equals("it", StringComparison.OrdinalIgnoreCase));

long Count(IDataView data) => data.GetColumn<string>(nameof(ModelInput.English)).LongCount();

List<(string Spanish, string English)> PairsOf(IDataView data) =>
    ml.Data.CreateEnumerable<ModelInput>(data, reuseRowObject: false).Select(p => (p.Spanish, p.English)).ToList();

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

/// <summary>Heat maps of attention weights, and which token a query weighs most.</summary>
internal static class AttentionPictures
{
    /// <summary>
    /// The decoder's row i reads token i (its input) and writes token i + 1: the cross-attention rows are labelled with the
    /// token they write, so that the picture is the alignment of each English token with the Spanish ones.
    /// </summary>
    public static IReadOnlyList<string> Written(AttentionWeights cross) => cross.QueryTokens.Skip(1).Append("</s>").ToList();

    /// <summary>One layer of the cross-attention, its heads averaged: a row per English token written, over the Spanish tokens.</summary>
    public static void SaveLayerAverage(AttentionWeights attention, int layer, string path, string title, string rowAxis, string columnAxis) =>
        Charts.SaveHeatmap(attention.LayerAverage(layer), Written(attention), attention.KeyTokens, path, title, rowAxis, columnAxis);

    /// <summary>One query token's attention in every layer and head: a row per head.</summary>
    public static void SaveFrom(AttentionWeights attention, int query, string path, string title)
    {
        var rows = new List<string>();
        var weights = new List<float>();
        for (int layer = 0; layer < attention.Layers; layer++)
        {
            for (int head = 0; head < attention.Heads; head++)
            {
                rows.Add($"layer {layer + 1} head {head + 1}");
                weights.AddRange(attention.From(query, layer, head).Take(query + 1)); // causal: the keys up to the query
            }
        }
        Charts.SaveHeatmap(weights, rows, attention.KeyTokens.Take(query + 1).ToList(), path, title, "layer and head", "earlier English token");
    }

    /// <summary>For each query token, the key it weighs most in one layer (heads averaged).</summary>
    public static string Strongest(AttentionWeights attention, int layer)
    {
        float[] average = attention.LayerAverage(layer);
        int keys = attention.KeyTokens.Count;
        return string.Join(", ", Written(attention).Select((q, i) =>
        {
            int best = Enumerable.Range(0, keys).MaxBy(k => average[i * keys + k]);
            return $"{q.Trim()} -> {attention.KeyTokens[best].Trim()}";
        }));
    }

    /// <summary>For each layer, the earlier token (not the query itself) that the query weighs most, heads averaged.</summary>
    public static string StrongestFrom(AttentionWeights attention, int query) => string.Join("; ", Enumerable.Range(0, attention.Layers).Select(layer =>
    {
        float[] row = attention.LayerAverage(layer).AsSpan(query * attention.KeyTokens.Count, attention.KeyTokens.Count).ToArray();
        int best = Enumerable.Range(0, query).MaxBy(k => row[k]);
        return $"layer {layer + 1}: \"{attention.KeyTokens[best].Trim()}\" ({row[best]:P0})";
    }));
}

/// <summary>Loss, tokens/s and ETA while training (every 500 steps); validation loss and the sample translation after each epoch.</summary>
internal sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p)
    {
        if (p.Kind == TrainingProgressKind.EpochEnd)
        {
            Console.WriteLine($"Epoch {p.Epoch}: validation loss {p.ValidationValue:F3} | Soy un estudiante -> {p.Sample}");
        }
        else if (p.Kind == TrainingProgressKind.Step && p.Step % 500 == 0)
        {
            Console.WriteLine($"  step {p.Step}/{p.TotalSteps}  loss {p.Loss:F3}  lr {p.LearningRate:E2}  {p.Throughput:N0} tokens/s  elapsed {p.Elapsed:mm\\:ss}  eta {p.Remaining:mm\\:ss}");
        }
    }
}

internal sealed record Settings(double Minutes, TranslationPreset Preset, int TestSentences, int Seed, string Output, string? Data, TrainingPrecision? Precision = null, string? Load = null, string? Evaluate = null)
{
    /// <summary>What --help prints.</summary>
    public const string Usage = """
        dotnet run -c Release --project examples/Translation -- [options]
          --minutes M      training time budget (default 10)
          --preset NAME    compact | small | base | big (default compact: the recipe's)
          --test N         held-out sentences to score, drawn at random (default: all of them, about 2,300)
          --seed N         training seed (default 1)
          --precision P    auto | float32 | bfloat16 (default: the recipe's)
          --out DIR        model, training curves, attention pictures (default: a temp folder)
          --load FILE      skip training and evaluation: translate and draw the attention of a model saved earlier
          --evaluate FILE  pairs of your own (English TAB Spanish per line): BLEU and chrF2 of the
                           final model, or of --load's
          --data DIR       data folder (else TRANSFORMERS_ML_DATA, else shared/data beside the repository, else spa-eng is
                           downloaded once from manythings.org into ~/.cache/transformers-ml)
        """;

    public static Settings Parse(string[] args)
    {
        var s = new Settings(10, TranslationPreset.Compact, int.MaxValue, 1, Path.Combine(Path.GetTempPath(), "transformers-ml-example", "translation"), null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--minutes" => s with { Minutes = double.TryParse(Next(), System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 ? m : throw new ArgumentException("--minutes must be a positive number.") },
                "--preset" => s with { Preset = ParsePreset(Next()) },
                "--test" => s with { TestSentences = int.TryParse(Next(), out int n) && n > 0 ? n : throw new ArgumentException("--test must be a positive number.") },
                "--seed" => s with { Seed = int.TryParse(Next(), out int seed) ? seed : throw new ArgumentException("--seed must be a whole number.") },
                "--precision" => s with { Precision = Precisions.Parse(Next()) },
                "--out" => s with { Output = Next() },
                "--load" => s with { Load = File.Exists(Next()) ? args[i] : throw new FileNotFoundException($"--load '{args[i]}' does not exist.") },
                "--evaluate" => s with { Evaluate = File.Exists(Next()) ? args[i] : throw new FileNotFoundException($"--evaluate '{args[i]}' does not exist.") },
                "--data" => s with { Data = Next() },
                var unknown => throw new ArgumentException($"Unknown option '{unknown}'."),
            };
        }
        return s;
    }

    /// <summary>A preset by its name in any case (compact, small, base, big): the enum's names, so a new preset needs no edit here.</summary>
    private static TranslationPreset ParsePreset(string name) =>
        Enum.GetValues<TranslationPreset>().Where(p => p.ToString().Equals(name, StringComparison.OrdinalIgnoreCase)).Select(p => (TranslationPreset?)p).FirstOrDefault()
        ?? throw new ArgumentException($"--preset must be one of {string.Join(", ", Enum.GetNames<TranslationPreset>().Select(n => n.ToLowerInvariant()))}; found '{name}'.");
}

using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.Translation;

/// <summary>
/// Trains the encoder-decoder Transformer of Vaswani et al. (2017) on pairs of sentences and returns a
/// <see cref="TranslationTransformer"/>.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | source (<see cref="TranslationOptions.SourceColumnName"/>) | Text | the sentence to translate |
/// | target (<see cref="TranslationOptions.TargetColumnName"/>) | Text | its translation (training only) |
/// </remarks>
public sealed class TranslationEstimator : IEstimator<TranslationTransformer>
{
    private readonly MLContext _context;
    private readonly TranslationOptions _options;

    internal TranslationEstimator(MLContext context, TranslationOptions options)
    {
        _context = context;
        _options = options;
        options.Validate();
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        return TextColumns.WithTextOutput(_context, inputSchema, _options.SourceColumnName, _options.OutputColumnName);
    }

    /// <summary>Trains on the pairs of <paramref name="train"/>, without validation.</summary>
    public TranslationTransformer Fit(IDataView train) => Fit(train, null);

    /// <summary>Trains on <paramref name="train"/>; validation loss (and early stopping, when set) on <paramref name="validation"/>.</summary>
    public TranslationTransformer Fit(IDataView train, IDataView? validation)
    {
        var recorder = new EpochRecorder(_options.Progress, _options.CurvesPath, "Translation");
        using var reporter = new TrainingReporter(_context, "Translation", recorder);
        Action<string>? log = TrainingReporter.LogTo(_context, "Translation");
        Device device = TrainingSetup.Prepare(_options, reporter);

        List<(string Source, string Target)> trainPairs = ReadPairs(train, reporter, "training");
        List<(string Source, string Target)> validationPairs = validation is null ? new() : ReadPairs(validation, reporter, "validation");
        if (trainPairs.Count == 0)
        {
            throw new InvalidOperationException(
                $"Columns '{_options.SourceColumnName}' and '{_options.TargetColumnName}' hold no pair with text on both sides: nothing to train on.");
        }

        // The pairs as the model reads and writes them (CopyVerbatimSpans: a placeholder for each number, address, symbol or emoji).
        trainPairs = Prepare(_options.CopyVerbatimSpans, trainPairs, EndPlaceholderShare, _options.Seed, reporter);
        validationPairs = Prepare(_options.CopyVerbatimSpans, validationPairs, 0, _options.Seed, null);

        TranslationCodec codec;
        EncoderDecoderTransformer model;
        if (_options.BaseModelPath is not null)
        {
            using TranslationTransformer source = TranslationTransformer.Load(_options.BaseModelPath, "cpu", log);
            codec = new TranslationCodec(source.Codec.Tokenizer, source.Codec.MaxSentenceTokens, _options.CopyVerbatimSpans);
            model = TrainingSetup.Seeded(_options, () => new EncoderDecoderTransformer("transformer", source.Model.Config, codec.VocabularySize));
            ModelFile.LoadInto(model, ModuleState.Of(source.Model), _options.BaseModelPath);
        }
        else
        {
            // One BPE vocabulary for both languages, learned from both sides of the training pairs as the model reads them.
            IEnumerable<string> sentences = trainPairs.SelectMany(p => new[] { p.Source, p.Target }).CheckedAgainst(_options.Cancellation);
            codec = new TranslationCodec(TextTokenizer.Train(TokenizerKind.BytePairEncoding, sentences, _options.VocabularySize), _options.MaxSentenceTokens,
                _options.CopyVerbatimSpans);
            TransformerConfig config = _options.EffectiveModel;
            config.MaxSequenceLength = Math.Max(config.MaxSequenceLength, _options.MaxSentenceTokens + 51); // room for input + 50
            model = TrainingSetup.Seeded(_options, () => new EncoderDecoderTransformer("transformer", config, codec.VocabularySize));
        }
        model.to(device);

        _options.Cancellation.ThrowIfCancellationRequested();
        var (trainIds, truncated) = Encode(codec, trainPairs);
        var (validationIds, _) = Encode(codec, validationPairs);
        if (truncated > 0)
        {
            reporter.Info($"{truncated} training sentence(s) longer than MaxSentenceTokens ({_options.MaxSentenceTokens}) were truncated.");
        }

        bool normalizeCase = _options.NormalizeSourceCase ?? NormalizesCase(trainPairs, reporter);
        var transformer = new TranslationTransformer(model, codec, device, _options.SourceColumnName, _options.OutputColumnName,
            new TranslatorSettings(_options.BeamSize, _options.LengthPenalty, _options.SplitSentences, normalizeCase), _options.TransformBatchSize, log);
        int[]?[] unpunctuated = _options.SourcePunctuationDropout > 0
            ? trainPairs.Select(p => TranslationTask.Unpunctuated(p.Source) is string s ? codec.Encode(s).Ids : null).ToArray()
            : new int[]?[trainPairs.Count];
        var task = new TranslationTask(model, codec, trainIds, validationIds, unpunctuated, _options.SourcePunctuationDropout, _options.MaxTokensPerBatch, model.Config.LabelSmoothing, device,
            _ => _options.SampleSentence is null ? null : transformer.Translate(_options.SampleSentence));
        new TrainingLoop<int[]>(model, _options, task, reporter, model.Config.ModelDimension, model.Config.ToJson()).Run();
        transformer.EpochReports = recorder.Epochs;
        transformer.TrainingReports = recorder.All;
        return transformer;
    }

    /// <summary><see cref="TranslationOptions.NormalizeSourceCase"/>'s default: whether the training sources begin with a capital (said in the log).</summary>
    private static bool NormalizesCase(List<(string Source, string Target)> trainPairs, TrainingReporter reporter)
    {
        bool capitalised = SourceCase.IsCapitalised(trainPairs.Select(p => p.Source), out double share);
        string percent = (share * 100).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        reporter.Info(capitalised
            ? $"{percent} % of the training sources begin with a capital: sentences typed in lower case or in capitals are translated in that case (NormalizeSourceCase)."
            : $"{percent} % of the training sources begin with a capital (under {SourceCase.CapitalisedShare * 100:F0} %): sentences are translated as typed (NormalizeSourceCase).");
        return capitalised;
    }

    /// <summary>
    /// The pairs as the model learns them: with <paramref name="copyVerbatimSpans"/> the spans both sides hold are masked
    /// (<see cref="VerbatimSpans.MaskPair(string, string)"/>), and <paramref name="endShare"/> of the others, drawn with
    /// <paramref name="seed"/>, get a placeholder at their end (<see cref="VerbatimSpans.AppendPlaceholder"/>: the training
    /// pairs <see cref="EndPlaceholderShare"/>, the validation pairs none); the log of training (<paramref name="reporter"/>)
    /// says how many of each.
    /// </summary>
    private static List<(string Source, string Target)> Prepare(bool copyVerbatimSpans, List<(string Source, string Target)> pairs, double endShare, int seed,
        TrainingReporter? reporter)
    {
        if (!copyVerbatimSpans)
        {
            return pairs;
        }
        var random = new Random(seed);
        int masked = 0, appended = 0;
        var prepared = pairs.Select(p =>
        {
            (string source, string target) = VerbatimSpans.MaskPair(p.Source, p.Target);
            bool holds = VerbatimSpans.HasPlaceholder(source);
            masked += holds ? 1 : 0;
            if (holds || random.NextDouble() >= endShare)
            {
                return (source, target);
            }
            appended++;
            return VerbatimSpans.AppendPlaceholder(source, target);
        }).ToList();
        reporter?.Info($"{masked} of {pairs.Count} training pair(s) hold a number, address, symbol or emoji on both sides, which the model learns to copy, " +
            $"and {appended} more get one at their end (CopyVerbatimSpans).");
        return prepared;
    }

    /// <summary>The share of the training pairs without a span that <see cref="Prepare"/> gives a placeholder at their end.</summary>
    internal const double EndPlaceholderShare = 0.02;

    private static (List<(int[], int[])> Pairs, int Truncated) Encode(TranslationCodec codec, List<(string Source, string Target)> pairs)
    {
        int truncated = 0;
        var encoded = new List<(int[], int[])>(pairs.Count);
        foreach ((string source, string target) in pairs)
        {
            (int[] s, bool cutSource) = codec.Encode(source);
            (int[] t, bool cutTarget) = codec.Encode(target);
            truncated += (cutSource ? 1 : 0) + (cutTarget ? 1 : 0);
            encoded.Add((s, t));
        }
        return (encoded, truncated);
    }

    /// <summary>The (source, target) pairs; pairs with an empty or whitespace-only side are skipped and counted in the log.</summary>
    private List<(string, string)> ReadPairs(IDataView data, TrainingReporter reporter, string what)
    {
        List<string> sources = TextColumns.Read(data, _options.SourceColumnName);
        List<string> targets = TextColumns.Read(data, _options.TargetColumnName);
        var pairs = new List<(string, string)>(sources.Count);
        int skipped = 0;
        for (int i = 0; i < sources.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(sources[i]) || string.IsNullOrWhiteSpace(targets[i]))
            {
                skipped++;
                continue;
            }
            pairs.Add((sources[i], targets[i]));
        }
        if (skipped > 0)
        {
            reporter.Warning($"Skipped {skipped} {what} pair(s) with an empty or whitespace-only sentence.");
        }
        return pairs;
    }

    /// <summary>Reads the reference column: one Text reference, or a vector of Text references, per row.</summary>
    internal static List<IReadOnlyList<string>> ReadReferences(IDataView data, string name)
    {
        DataViewSchema.Column column = data.Schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(name), $"The data has no reference column '{name}'; it has: {string.Join(", ", data.Schema.Select(c => c.Name))}.");
        if (column.Type is TextDataViewType)
        {
            return TextColumns.Read(data, name).Select(r => (IReadOnlyList<string>)new[] { r }).ToList();
        }
        if (column.Type is VectorDataViewType { ItemType: TextDataViewType })
        {
            var values = new List<IReadOnlyList<string>>();
            using DataViewRowCursor cursor = data.GetRowCursor(new[] { column });
            ValueGetter<VBuffer<ReadOnlyMemory<char>>> getter = cursor.GetGetter<VBuffer<ReadOnlyMemory<char>>>(column);
            VBuffer<ReadOnlyMemory<char>> value = default;
            while (cursor.MoveNext())
            {
                getter(ref value);
                values.Add(value.DenseValues().Select(v => v.ToString()).ToList());
            }
            return values;
        }
        throw new ArgumentOutOfRangeException(nameof(name), $"Reference column '{name}' is {column.Type}; expected Text or a vector of Text (several references).");
    }
}

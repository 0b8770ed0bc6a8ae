using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.TextGeneration;

/// <summary>
/// Trains a GPT-style language model on a text column (from scratch, or fine-tuning a saved model) and returns a
/// <see cref="TextGenerationTransformer"/>.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | training text (<see cref="TextGenerationOptions.TextColumnName"/>) | Text | each row a document |
/// </remarks>
public sealed class TextGenerationEstimator : IEstimator<TextGenerationTransformer>
{
    private readonly MLContext _context;
    private readonly TextGenerationOptions _options;
    private readonly TextGenerationTransformer? _baseModel;

    internal TextGenerationEstimator(MLContext context, TextGenerationOptions options, TextGenerationTransformer? baseModel = null)
    {
        _context = context;
        _options = options;
        _baseModel = baseModel;
        options.Validate();
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        return TextColumns.WithTextOutput(_context, inputSchema, _options.PromptColumnName ?? _options.TextColumnName, _options.OutputColumnName);
    }

    /// <summary>Trains on the documents of the text column.</summary>
    public TextGenerationTransformer Fit(IDataView input) => Fit(input, validation: null);

    /// <summary>
    /// Trains on the documents of the text column; validation uses <paramref name="validation"/> when given,
    /// else the last <see cref="TextGenerationOptions.ValidationFraction"/> of the training text.
    /// </summary>
    public TextGenerationTransformer Fit(IDataView input, IDataView? validation)
    {
        string column = _options.TextColumnName;
        TextColumns.TextColumn(input, column); // the column is checked before anything is read
        if (validation is not null)
        {
            TextColumns.TextColumn(validation, column);
        }

        var recorder = new EpochRecorder(_options.Progress, _options.CurvesPath, "Text generation");
        using var reporter = new TrainingReporter(_context, "TextGeneration", recorder);
        Action<string>? log = TrainingReporter.LogTo(_context, "TextGeneration");
        Device device = TrainingSetup.Prepare(_options, reporter);
        bool warned = false;
        // The column row by row: one document in memory at a time, however large the corpus.
        IEnumerable<string> Rows(IDataView data) => TextColumns.Stream(data, column, row =>
        {
            if (!warned)
            {
                warned = true;
                reporter.Warning($"Row {row} of column '{column}' holds U+FFFD replacement characters: its text was probably not decoded as UTF-8 (read the files with their encoding).");
            }
        }).CheckedAgainst(_options.Cancellation);

        // Pass 1: the corpus's hash (the key of its token shards), and the tokenizer learned from it when it is learned.
        using var corpus = new CorpusHash();
        TextTokenizer tokenizer;
        GptModel model;
        if (_baseModel is not null || _options.BaseModelPath is not null)
        {
            // Fine-tuning: keep the base model's architecture and tokenizer.
            TextGenerationTransformer source = _baseModel ?? TextGenerationTransformer.Load(_options.BaseModelPath!, "cpu", log);
            tokenizer = source.Tokenizer;
            model = TrainingSetup.Seeded(_options, () => new GptModel(source.Model.Config, source.Model.VocabularySize));
            ModelFile.LoadInto(model, ModuleState.Of(source.Model), _options.BaseModelPath ?? "the base model");
            if (_baseModel is null)
            {
                source.Dispose();
            }
            reporter.Info($"Fine-tuning a {model.Config.NumLayers}-layer model with its {tokenizer.Kind} tokenizer ({tokenizer.VocabularySize} tokens).");
        }
        else
        {
            tokenizer = TextTokenizer.Train(_options.Tokenizer, corpus.Through(Rows(input)), _options.VocabularySize); // as the joined text, without joining it
            TransformerConfig config = (_options.Model ?? TextGenerationOptions.PresetConfig(_options.Preset)).Clone();
            config.Validate();
            model = TrainingSetup.Seeded(_options, () => new GptModel(config, tokenizer.VocabularySize));
        }
        if (!corpus.Completed)
        {
            corpus.Drain(Rows(input)); // a tokenizer that is not learned (fine-tuning, GPT-2's) read nothing yet
        }
        if (corpus.NonEmpty == 0)
        {
            throw new InvalidOperationException($"Column '{column}' holds no text ({corpus.Documents} rows, all empty): nothing to train on.");
        }
        model.to(device);

        // Pass 2 (skipped when this corpus was tokenized before with this tokenizer): the token shards.
        string root = _options.EffectiveTokenCacheFolder;
        using TokenStream stream = Shards(root, corpus.Hex(), tokenizer, () => Rows(input), reporter, log);
        using TokenStream? held = validation is null ? null : HeldOutShards(validation);
        TokenRange train = new(stream, 0, stream.Length);
        TokenRange? heldOut = null;
        if (held is not null)
        {
            heldOut = new TokenRange(held, 0, held.Length);
        }
        else if (_options.ValidationFraction > 0)
        {
            // The held-out tail of the token stream, never part of a training window.
            long split = (long)(stream.Length * (1 - _options.ValidationFraction));
            train = new TokenRange(stream, 0, split);
            heldOut = new TokenRange(stream, split, stream.Length - split);
        }
        int context = model.ContextLength;
        if (train.Length < context + 1)
        {
            throw new InvalidOperationException(
                $"Column '{column}' gives {train.Length} training tokens, fewer than one context window plus one ({context + 1}): " +
                "give more text, lower ValidationFraction, or choose a model with a shorter context (Preset or Model.MaxSequenceLength).");
        }
        if (heldOut is TokenRange h && h.Length <= context)
        {
            reporter.Warning($"The validation text has {h.Length} tokens, not more than the context ({context}): no validation loss.");
        }
        TokenRange? validationTokens = heldOut is { Length: > 0 } ? heldOut : null;

        TokenStream HeldOutShards(IDataView data)
        {
            using var hash = new CorpusHash();
            hash.Drain(Rows(data));
            return Shards(root, hash.Hex(), tokenizer, () => Rows(data), reporter, log);
        }

        var transformer = new TextGenerationTransformer(model, tokenizer, device, _options.PromptColumnName ?? _options.TextColumnName,
            _options.OutputColumnName, _options.Generation, _options.TransformBatchSize, log);
        var task = new LanguageModelTask(model, train, validationTokens, device, _options.BatchSize, _options.BatchesPerEpoch, _options.ValidationBatches,
            _ => _options.SamplePrompt is null ? null : transformer.Generate(_options.SamplePrompt, _options.Generation));
        new TrainingLoop<long[]>(model, _options, task, reporter, model.Config.ModelDimension, model.Config.ToJson()).Run();
        transformer.EpochReports = recorder.Epochs;
        transformer.TrainingReports = recorder.All;
        return transformer;
    }

    /// <summary>The token shards of the corpus with hash <paramref name="corpusSha256"/>: reused from the cache or built, then memory-mapped.</summary>
    private TokenStream Shards(string root, string corpusSha256, TextTokenizer tokenizer, Func<IEnumerable<string>> documents, TrainingReporter reporter, Action<string>? log)
    {
        (TokenCacheManifest manifest, string folder, bool reused) = TokenCache.Get(root, corpusSha256, tokenizer, documents, _options.TokensPerShard, log);
        if (reused)
        {
            reporter.Info($"Token shards of this corpus and tokenizer found in '{folder}': {manifest.Tokens:N0} tokens in {manifest.Shards.Count} shard(s), reused.");
        }
        return TokenStream.Open(manifest.Shards.Select(s => Path.Combine(folder, s.File)).ToList());
    }
}

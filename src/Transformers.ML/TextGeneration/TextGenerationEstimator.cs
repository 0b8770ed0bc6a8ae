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
        List<string> documents = TextColumns.Read(input, _options.TextColumnName);
        if (documents.All(string.IsNullOrEmpty))
        {
            throw new InvalidOperationException($"Column '{_options.TextColumnName}' holds no text ({documents.Count} rows, all empty): nothing to train on.");
        }
        List<string>? validationDocuments = validation is null ? null : TextColumns.Read(validation, _options.TextColumnName);

        var recorder = new EpochRecorder(_options.Progress, _options.CurvesPath, "Text generation");
        using var reporter = new TrainingReporter(_context, "TextGeneration", recorder);
        Action<string>? log = TrainingReporter.LogTo(_context, "TextGeneration");
        Device device = TrainingSetup.Prepare(_options, reporter);

        TextTokenizer tokenizer;
        GptModel model;
        if (_baseModel is not null || _options.BaseModelPath is not null)
        {
            // Fine-tuning: keep the base model's architecture and tokenizer.
            TextGenerationTransformer source = _baseModel ?? TextGenerationTransformer.Load(_options.BaseModelPath!, "cpu", log);
            tokenizer = source.Tokenizer;
            model = new GptModel(source.Model.Config, source.Model.VocabularySize);
            ModelFile.LoadInto(model, ModuleState.Of(source.Model), _options.BaseModelPath ?? "the base model");
            if (_baseModel is null)
            {
                source.Dispose();
            }
            reporter.Info($"Fine-tuning a {model.Config.NumLayers}-layer model with its {tokenizer.Kind} tokenizer ({tokenizer.VocabularySize} tokens).");
        }
        else
        {
            tokenizer = TextTokenizer.Train(_options.Tokenizer, string.Join("\n", documents), _options.VocabularySize);
            TransformerConfig config = (_options.Model ?? TextGenerationOptions.PresetConfig(_options.Preset)).Clone();
            config.Validate();
            model = new GptModel(config, tokenizer.VocabularySize);
        }
        model.to(device);

        (long[] train, long[]? held) = Tokens(tokenizer, documents, validationDocuments);
        int context = model.ContextLength;
        if (train.Length < context + 1)
        {
            throw new InvalidOperationException(
                $"Column '{_options.TextColumnName}' gives {train.Length} training tokens, fewer than one context window plus one ({context + 1}): " +
                "give more text, lower ValidationFraction, or choose a model with a shorter context (Preset or Model.MaxSequenceLength).");
        }
        using Tensor trainTokens = tensor(train, device: device);
        using Tensor? validationTokens = held is { Length: > 0 } ? tensor(held, device: device) : null;
        if (held is not null && held.Length <= context)
        {
            reporter.Warning($"The validation text has {held.Length} tokens, not more than the context ({context}): no validation loss.");
        }

        var transformer = new TextGenerationTransformer(model, tokenizer, device, _options.PromptColumnName ?? _options.TextColumnName,
            _options.OutputColumnName, _options.Generation, _options.TransformBatchSize, log);
        var task = new LanguageModelTask(model, trainTokens, validationTokens, _options.BatchSize, _options.BatchesPerEpoch, _options.ValidationBatches,
            _ => _options.SamplePrompt is null ? null : transformer.Generate(_options.SamplePrompt, _options.Generation));
        new TrainingLoop<long[]>(model, _options, task, reporter, model.Config.ModelDimension, model.Config.ToJson()).Run();
        transformer.EpochReports = recorder.Epochs;
        transformer.TrainingReports = recorder.All;
        return transformer;
    }

    /// <summary>Training tokens and validation tokens: documents joined with end-of-text; validation from <paramref name="validation"/> or the end of the text.</summary>
    private (long[] Train, long[]? Validation) Tokens(TextTokenizer tokenizer, List<string> documents, List<string>? validation)
    {
        long[] all = tokenizer.EncodeDocuments(documents);
        if (validation is not null)
        {
            return (all, tokenizer.EncodeDocuments(validation));
        }
        if (_options.ValidationFraction <= 0)
        {
            return (all, null);
        }
        int split = (int)(all.Length * (1 - _options.ValidationFraction));
        return (all[..split], all[split..]);
    }
}

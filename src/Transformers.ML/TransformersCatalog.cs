using Microsoft.ML;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.ImageClassification;
using Transformers.ML.TextGeneration;
using Transformers.ML.Translation;

namespace Transformers.ML;

/// <summary>The entry point of the library: <c>mlContext.Transformers()</c>.</summary>
public static class MLContextExtensions
{
    /// <summary>Trainers, loaders and evaluators of Transformer models.</summary>
    public static TransformersCatalog Transformers(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new TransformersCatalog(mlContext);
    }
}

/// <summary>Trainers, loaders and evaluators of Transformer models, for one <see cref="MLContext"/>.</summary>
public sealed class TransformersCatalog
{
    internal TransformersCatalog(MLContext context)
    {
        Context = context;
    }

    internal MLContext Context { get; }

    /// <summary>Trains a GPT-style text generator on a text column.</summary>
    /// <param name="textColumnName">Column of training text (and of prompts at Transform).</param>
    /// <param name="outputColumnName">Column Transform adds with the completions.</param>
    /// <param name="preset">Model size.</param>
    /// <param name="tokenizer">Tokenizer kind.</param>
    /// <param name="epochs">Passes over the text.</param>
    public TextGenerationEstimator TextGeneration(string textColumnName = "Text", string outputColumnName = "GeneratedText",
        GptPreset preset = GptPreset.Small, TokenizerKind tokenizer = TokenizerKind.Character, int epochs = 10) =>
        TextGeneration(new TextGenerationOptions { TextColumnName = textColumnName, OutputColumnName = outputColumnName, Preset = preset, Tokenizer = tokenizer, Epochs = epochs });

    /// <summary>Trains a GPT-style text generator with every option.</summary>
    public TextGenerationEstimator TextGeneration(TextGenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new TextGenerationEstimator(Context, options);
    }

    /// <summary>Fine-tunes <paramref name="baseModel"/> (architecture and tokenizer kept) on a text column.</summary>
    public TextGenerationEstimator TextGeneration(TextGenerationTransformer baseModel, TextGenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        ArgumentNullException.ThrowIfNull(options);
        return new TextGenerationEstimator(Context, options, baseModel);
    }

    /// <summary>Loads a text generator saved by <see cref="TextGenerationTransformer.Save(string)"/>.</summary>
    /// <param name="path">The model file.</param>
    /// <param name="device">"auto", "cpu", "cuda" or "cuda:N".</param>
    public TextGenerationTransformer LoadTextGeneration(string path, string device = "auto") =>
        TextGenerationTransformer.Load(path, device, Core.Training.TrainingReporter.LogTo(Context, "TextGeneration"));

    /// <summary>
    /// Imports a Hugging Face GPT-2 checkpoint (a folder with config.json and model.safetensors, e.g. GPT-2 from the
    /// hub downloaded beforehand): generate with it, or fine-tune it with <see cref="TextGeneration(TextGenerationTransformer, TextGenerationOptions)"/>.
    /// </summary>
    /// <param name="folder">The checkpoint folder.</param>
    /// <param name="device">"auto", "cpu", "cuda" or "cuda:N".</param>
    public TextGenerationTransformer ImportGpt2(string folder, string device = "auto") =>
        TextGenerationTransformer.ImportHuggingFace(folder, device, Core.Training.TrainingReporter.LogTo(Context, "TextGeneration"));

    /// <summary>Trains the encoder-decoder Transformer of "Attention Is All You Need" on pairs of sentences.</summary>
    /// <param name="sourceColumnName">Column of source sentences.</param>
    /// <param name="targetColumnName">Column of target sentences.</param>
    /// <param name="outputColumnName">Column Transform adds with the translations.</param>
    /// <param name="preset">Model size (the paper's Base and Big, or Small for CPUs).</param>
    /// <param name="epochs">Passes over the pairs.</param>
    public TranslationEstimator Translation(string sourceColumnName = "Spanish", string targetColumnName = "English", string outputColumnName = "Translation",
        TranslationPreset preset = TranslationPreset.Small, int epochs = 10) =>
        Translation(new TranslationOptions { SourceColumnName = sourceColumnName, TargetColumnName = targetColumnName, OutputColumnName = outputColumnName, Preset = preset, Epochs = epochs });

    /// <summary>Trains the encoder-decoder Transformer with every option.</summary>
    public TranslationEstimator Translation(TranslationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new TranslationEstimator(Context, options);
    }

    /// <summary>Loads a translation model saved by <see cref="TranslationTransformer.Save(string)"/>.</summary>
    /// <param name="path">The model file.</param>
    /// <param name="device">"auto", "cpu", "cuda" or "cuda:N".</param>
    public TranslationTransformer LoadTranslation(string path, string device = "auto") =>
        TranslationTransformer.Load(path, device, Core.Training.TrainingReporter.LogTo(Context, "Translation"));

    /// <summary>
    /// sacreBLEU's corpus BLEU and chrF2 of a translation column against a reference column (Text, or a vector of
    /// Text for several references per sentence), with the n-gram precisions, brevity penalty and lengths.
    /// </summary>
    public TranslationMetrics EvaluateTranslation(IDataView data, string referenceColumnName = "English", string translationColumnName = "Translation")
    {
        ArgumentNullException.ThrowIfNull(data);
        List<string> hypotheses = Core.DataView.TextColumns.Read(data, translationColumnName);
        var references = TranslationEstimator.ReadReferences(data, referenceColumnName);
        return SacreBleu.ScorePerSentence(hypotheses, references);
    }

    /// <summary>
    /// Cross-entropy per token (nats) and perplexity of <paramref name="model"/> on the text column of
    /// <paramref name="data"/>, in consecutive windows of the context length.
    /// </summary>
    public TextGenerationMetrics EvaluateTextGeneration(TextGenerationTransformer model, IDataView data, string textColumnName = "Text")
    {
        ArgumentNullException.ThrowIfNull(model);
        return TextGenerationMetrics.Compute(model, Core.DataView.TextColumns.Read(data, textColumnName));
    }

    /// <summary>
    /// The same metrics of an exported GPT run by ONNX Runtime (<see cref="OnnxTextGenerator.Evaluate"/>), over the same
    /// windows: e.g. the perplexity an int8 export gives up against its float32 model.
    /// </summary>
    public TextGenerationMetrics EvaluateTextGeneration(OnnxTextGenerator generator, IDataView data, string textColumnName = "Text")
    {
        ArgumentNullException.ThrowIfNull(generator);
        return generator.Evaluate(Core.DataView.TextColumns.Read(data, textColumnName));
    }

    /// <summary>
    /// Trains a Vision Transformer classifier on an image column and a label column (Key: multiclass; Boolean: binary). The
    /// column names given here override those of <paramref name="options"/>.
    /// </summary>
    /// <param name="labelColumnName">Label column: a Key (from MapValueToKey) or a Boolean.</param>
    /// <param name="imageColumnName">Image column: an image (LoadImages), a Text path, or a known-size vector of Single.</param>
    /// <param name="options">Every other option; null for the defaults.</param>
    public ImageClassificationEstimator ImageClassification(string labelColumnName = "Label", string imageColumnName = "Image",
        ImageClassificationOptions? options = null)
    {
        ImageClassificationOptions copy = options?.CloneKeepingProgress() ?? new ImageClassificationOptions();
        copy.LabelColumnName = labelColumnName;
        copy.ImageColumnName = imageColumnName;
        return new ImageClassificationEstimator(Context, copy);
    }

    /// <summary>Trains a Vision Transformer classifier with every option.</summary>
    public ImageClassificationEstimator ImageClassification(ImageClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new ImageClassificationEstimator(Context, options.CloneKeepingProgress());
    }

    /// <summary>
    /// Fine-tunes <paramref name="baseModel"/> (architecture kept; a new head when the classes differ; with
    /// <c>options.Model.ImageSize</c> set, the position embeddings are interpolated to that image size).
    /// </summary>
    public ImageClassificationEstimator ImageClassification(ImageClassificationTransformer baseModel, ImageClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        ArgumentNullException.ThrowIfNull(options);
        return new ImageClassificationEstimator(Context, options.CloneKeepingProgress(), baseModel.Classifier.Model);
    }

    /// <summary>
    /// Fine-tunes the encoder of a masked autoencoder (<paramref name="pretrained"/>) as a classifier: its architecture and
    /// weights, a new zero-initialised head (with <c>options.Model.ImageSize</c> set, positions are interpolated to that
    /// size). Give <paramref name="options"/> the autoencoder's <see cref="ImagePreprocessing"/>, so both see the same images.
    /// </summary>
    public ImageClassificationEstimator ImageClassification(MaskedAutoencoderTransformer pretrained, ImageClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(pretrained);
        ArgumentNullException.ThrowIfNull(options);
        return new ImageClassificationEstimator(Context, options.CloneKeepingProgress(), pretrained.Model.Encoder);
    }

    /// <summary>
    /// Pretrains a ViT encoder on unlabelled images as a masked autoencoder (He et al. 2022); its transformer adds an
    /// embedding column and can start a classifier (<see cref="ImageClassification(MaskedAutoencoderTransformer, ImageClassificationOptions)"/>).
    /// </summary>
    /// <param name="imageColumnName">Image column: an image (LoadImages), a Text path, or a known-size vector of Single.</param>
    /// <param name="options">Every other option; null for the defaults.</param>
    public MaskedAutoencoderEstimator MaskedAutoencoder(string imageColumnName = "Image", MaskedAutoencoderOptions? options = null)
    {
        MaskedAutoencoderOptions copy = options?.Clone(keepProgress: true) ?? new MaskedAutoencoderOptions();
        copy.ImageColumnName = imageColumnName;
        return new MaskedAutoencoderEstimator(Context, copy);
    }

    /// <summary>Loads a masked autoencoder saved by <see cref="MaskedAutoencoderTransformer.Save(string)"/>.</summary>
    /// <param name="path">The model file.</param>
    /// <param name="device">"auto", "cpu", "cuda" or "cuda:N".</param>
    public MaskedAutoencoderTransformer LoadMaskedAutoencoder(string path, string device = "auto") =>
        MaskedAutoencoderTransformer.Load(path, device, Core.Training.TrainingReporter.LogTo(Context, "MaskedAutoencoder"));

    /// <summary>Loads an image classifier saved by <see cref="ImageClassificationTransformer.Save(string)"/>.</summary>
    /// <param name="path">The model file.</param>
    /// <param name="device">"auto", "cpu", "cuda" or "cuda:N".</param>
    public ImageClassificationTransformer LoadImageClassification(string path, string device = "auto") =>
        ImageClassificationTransformer.Load(path, device, Core.Training.TrainingReporter.LogTo(Context, "ImageClassification"));
}

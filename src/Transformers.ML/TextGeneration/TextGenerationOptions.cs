using System.Text.Json.Serialization;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;

namespace Transformers.ML.TextGeneration;

/// <summary>Model sizes for text generation, from the tests' toy to GPT-2 small.</summary>
public enum GptPreset
{
    /// <summary>2 layers, 2 heads, width 32, context 64: tests and smoke runs.</summary>
    Tiny,

    /// <summary>4 layers, 4 heads, width 128, context 128: a few minutes on a 2-core CPU (default).</summary>
    Small,

    /// <summary>nanoGPT's "baby GPT" for Shakespeare: 6 layers, 6 heads, width 384, context 256 (10.7M parameters with 65 characters).</summary>
    Baby,

    /// <summary>GPT-2 small: 12 layers, 12 heads, width 768, context 1024 (124M parameters with GPT-2's vocabulary).</summary>
    Gpt2Small,
}

/// <summary>Options of the text generation trainer: data columns, tokenizer, model, training and generation.</summary>
public sealed class TextGenerationOptions : TrainingOptions
{
    /// <summary>Creates the options with the defaults of a language model (warmup + cosine from 1e-3, no label smoothing).</summary>
    public TextGenerationOptions()
    {
        LearningRate = 1e-3;
        Beta2 = 0.99;
        AdamEpsilon = 1e-8;
        WeightDecay = 0.1;
        WarmupSteps = 50;
        Epochs = 10;
        LogEverySteps = 25;
    }

    /// <summary>Column of training text (each row a document; documents are joined with the end-of-text token). Default "Text".</summary>
    public string TextColumnName { get; set; } = "Text";

    /// <summary>Column of prompts read by Transform and PredictionEngine; null means <see cref="TextColumnName"/> (default).</summary>
    public string? PromptColumnName { get; set; }

    /// <summary>Column Transform adds with each prompt's completion. Default "GeneratedText".</summary>
    public string OutputColumnName { get; set; } = "GeneratedText";

    /// <summary>Tokenizer, learned from the training text when it is learned. Default <see cref="TokenizerKind.Character"/>.</summary>
    public TokenizerKind Tokenizer { get; set; } = TokenizerKind.Character;

    /// <summary>Vocabulary size of a learned BPE tokenizer. Range 257..200000; default 2000.</summary>
    public int VocabularySize { get; set; } = 2000;

    /// <summary>Model size. Default <see cref="GptPreset.Small"/>; <see cref="Model"/> overrides it.</summary>
    public GptPreset Preset { get; set; } = GptPreset.Small;

    /// <summary>A full architecture instead of <see cref="Preset"/>; null uses the preset (default).</summary>
    public TransformerConfig? Model { get; set; }

    /// <summary>Continue training this saved model (fine-tuning): its architecture and tokenizer are kept. Null trains from scratch (default).</summary>
    public string? BaseModelPath { get; set; }

    /// <summary>Sequences (windows of the context length) per batch. Range 1..4096; default 32.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Batches of random windows per epoch; null means enough to cover the training tokens once (default).</summary>
    public int? BatchesPerEpoch { get; set; }

    /// <summary>Fraction of the text, taken from its end (as nanoGPT), held out for validation. Range [0, 0.5]; default 0.1.</summary>
    public double ValidationFraction { get; set; } = 0.1;

    /// <summary>Most validation batches per evaluation (fixed windows, the same every epoch). Range 1..10000; default 20.</summary>
    public int ValidationBatches { get; set; } = 20;

    /// <summary>Prompt completed after every epoch and reported as the progress sample; null for none (default).</summary>
    public string? SamplePrompt { get; set; }

    /// <summary>
    /// How the per-epoch sample and Transform generate, saved with the model. Default: 100 new tokens, temperature 0.8,
    /// top-k 40, min-p 0.1, seed 1. Min-p halved the words of the text example's samples that its books never use
    /// ("surpront", "cheertainly": 5.8-9.3 % of the words without it, 3.1-4.9 % with it, on its Shakespeare model and
    /// the three genres fine-tuned from it) and kept 94-96 % of each sample's word pairs distinct (BENCHMARKS.md, "text generation").
    /// </summary>
    [JsonIgnore]
    public GenerationOptions Generation { get; set; } = new() { MaxNewTokens = 100, Temperature = 0.8, TopK = 40, MinP = 0.1, Seed = 1 };

    /// <summary>Rows generated together by Transform. Range 1..1024; default 16.</summary>
    public int TransformBatchSize { get; set; } = 16;

    /// <summary>
    /// Folder of the token shards Fit tokenizes the text column into (llm.c's .bin layout, uint16 or uint32), one subfolder
    /// per corpus and tokenizer: a later Fit on the same text with the same tokenizer reuses them, and training reads its
    /// windows from them through memory maps, so a corpus larger than memory trains in a few hundred megabytes. Null: a
    /// "transformers-ml/token-cache" folder in the system's temporary folder (default).
    /// </summary>
    public string? TokenCacheFolder { get; set; }

    /// <summary>Most tokens per shard file. Range 1024..2^31 - 1; default 100,000,000 (llm.c's shard size).</summary>
    public int TokensPerShard { get; set; } = 100_000_000;

    /// <summary>The folder the token shards go to: <see cref="TokenCacheFolder"/> or the default under the temporary folder.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string EffectiveTokenCacheFolder => TokenCacheFolder ?? Path.Combine(Path.GetTempPath(), "transformers-ml", "token-cache");

    /// <summary>The architecture of a preset for a vocabulary: decoder-only, pre-LN, GELU (tanh), learned positions, tied embeddings.</summary>
    public static TransformerConfig PresetConfig(GptPreset preset) => preset switch
    {
        GptPreset.Tiny => Gpt(layers: 2, heads: 2, width: 32, context: 64, dropout: 0.0),
        GptPreset.Small => Gpt(layers: 4, heads: 4, width: 128, context: 128, dropout: 0.1),
        GptPreset.Baby => Gpt(layers: 6, heads: 6, width: 384, context: 256, dropout: 0.2),
        GptPreset.Gpt2Small => Gpt(layers: 12, heads: 12, width: 768, context: 1024, dropout: 0.1),
        _ => throw new ArgumentOutOfRangeException(nameof(preset), preset, "Unknown GPT preset."),
    };

    /// <summary>
    /// The recipe for a book-sized corpus (about 1 MB of text) and a training budget of minutes on a CPU, found by
    /// measurement on Tiny Shakespeare (BENCHMARKS.md "text generation", docs/text-generation.md): the Small GPT (4
    /// layers, 4 heads, width 128) with a 64-token context and no dropout (it did not lower the held-out loss even
    /// where 5 minutes pass over the book 13 times), a learned byte-level BPE of 1,024 tokens (a window then covers
    /// about 2.5 times the characters), batches of 16 windows (on two cores many small steps learn more in a minute
    /// than few large ones: 1.99 nats per character after one minute against 2.40 with 32 windows of 128), a peak
    /// learning rate of 2e-3 with warmup over 100 steps and cosine decay to a tenth planned over
    /// <paramref name="trainingTime"/>, and float32 (bfloat16 is slower for a model this narrow without native bfloat16
    /// products: 178 against 203 steps in a minute). 5 minutes on two cores reach a held-out loss of 1.51-1.52 nats per
    /// character (characters instead of the BPE: 1.64). Columns, generation settings and the seed keep their defaults;
    /// set them on the result. To fine-tune a model trained so, see <see cref="ForFineTuning"/>.
    /// </summary>
    public static TextGenerationOptions ForTimeBudget(TimeSpan trainingTime, TokenizerKind tokenizer = TokenizerKind.BytePairEncoding)
    {
        TransformerConfig model = PresetConfig(GptPreset.Small);
        model.MaxSequenceLength = 64;
        model.Dropout = 0;
        model.AttentionDropout = 0;
        return new TextGenerationOptions
        {
            Tokenizer = tokenizer,
            VocabularySize = 1024,
            Preset = GptPreset.Small,
            Model = model,
            BatchSize = 16,
            BatchesPerEpoch = 100,
            LearningRate = 2e-3,
            MinLearningRateRatio = 0.1,
            WarmupSteps = 100,
            WeightDecay = 0.1,
            Beta2 = 0.99,
            Precision = TrainingPrecision.Float32,
            MaxTrainingTime = trainingTime,
        };
    }

    /// <summary>
    /// <see cref="ForTimeBudget"/> for fine-tuning a model on a genre (<c>ml.Transformers().TextGeneration(model, options)</c>):
    /// the same recipe with a lower peak learning rate (5e-4) and a short warmup (20 steps); the model keeps its own tokenizer
    /// and architecture. In the text example, 1.5 minutes on two cores lowered the bits per character of a held-out tenth
    /// of each genre from 3.0-3.3 to 1.7-2.1. Columns, generation settings and the seed keep their defaults; set them on
    /// the result (the model's own: <c>options.Generation = model.Generation</c>).
    /// </summary>
    public static TextGenerationOptions ForFineTuning(TimeSpan trainingTime)
    {
        TextGenerationOptions options = ForTimeBudget(trainingTime);
        options.LearningRate = 5e-4;
        options.WarmupSteps = 20;
        return options;
    }

    internal static TransformerConfig Gpt(int layers, int heads, int width, int context, double dropout) => new()
    {
        NumLayers = layers,
        NumHeads = heads,
        ModelDimension = width,
        FeedForwardDimension = 4 * width,
        MaxSequenceLength = context,
        Dropout = dropout,
        AttentionDropout = dropout,
        LabelSmoothing = 0,
        PositionalEncoding = PositionalEncodingKind.Learned,
        NormPosition = NormPosition.Pre,
        Activation = FeedForwardActivation.GeluTanh,
        ScaleEmbeddings = false,
        TieEmbeddings = true,
    };

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Check(!string.IsNullOrWhiteSpace(TextColumnName), nameof(TextColumnName), TextColumnName, "a column name");
        Check(!string.IsNullOrWhiteSpace(OutputColumnName), nameof(OutputColumnName), OutputColumnName, "a column name");
        Check(Enum.IsDefined(Tokenizer), nameof(Tokenizer), Tokenizer, string.Join(", ", Enum.GetNames<TokenizerKind>()));
        Check(VocabularySize is >= 257 and <= 200_000, nameof(VocabularySize), VocabularySize, "in [257, 200000] (256 byte tokens and the end-of-text token at least)");
        Check(Enum.IsDefined(Preset), nameof(Preset), Preset, string.Join(", ", Enum.GetNames<GptPreset>()));
        Check(BatchSize is >= 1 and <= 4096, nameof(BatchSize), BatchSize, "in [1, 4096]");
        Check(BatchesPerEpoch is null or >= 1, nameof(BatchesPerEpoch), BatchesPerEpoch, ">= 1 or null");
        Check(ValidationFraction is >= 0 and <= 0.5, nameof(ValidationFraction), ValidationFraction, "in [0, 0.5]");
        Check(ValidationBatches is >= 1 and <= 10000, nameof(ValidationBatches), ValidationBatches, "in [1, 10000]");
        Check(TokenCacheFolder is null || !string.IsNullOrWhiteSpace(TokenCacheFolder), nameof(TokenCacheFolder), TokenCacheFolder, "a folder path or null");
        Check(TokensPerShard >= 1024, nameof(TokensPerShard), TokensPerShard, "in [1024, 2147483647]");
        Check(TransformBatchSize is >= 1 and <= 1024, nameof(TransformBatchSize), TransformBatchSize, "in [1, 1024]");
        Check(BaseModelPath is null || File.Exists(BaseModelPath), nameof(BaseModelPath), BaseModelPath, "an existing model file");
        Model?.Validate();
        Generation.Validate();
    }
}

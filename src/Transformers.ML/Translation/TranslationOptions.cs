using System.Text.Json.Serialization;
using Transformers.ML.Core.Training;

namespace Transformers.ML.Translation;

/// <summary>Model sizes for translation: the paper's two and two small ones for CPUs.</summary>
public enum TranslationPreset
{
    /// <summary>N=3, d_model=256, d_ff=1024, h=4, P_drop=0.1: trains in minutes on a 2-core CPU (the default of <see cref="TranslationOptions.Preset"/>).</summary>
    Small,

    /// <summary>The paper's base model: N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1.</summary>
    Base,

    /// <summary>The paper's big model: N=6, d_model=1024, d_ff=4096, h=16, P_drop=0.3.</summary>
    Big,

    /// <summary>
    /// N=3, d_model=192, d_ff=768, h=4, P_drop=0.1: Small's depth at three quarters of its width (0.6x its parameters, 1.7x
    /// its steps per second). The preset of <see cref="TranslationOptions.ForTimeBudget"/>: in a budget of minutes on a
    /// CPU the steps, not the width, limit the model.
    /// </summary>
    Compact,
}

/// <summary>Options of the translation trainer: columns, tokenizer, model (every Table 3 knob), batching, training and decoding.</summary>
public sealed class TranslationOptions : TrainingOptions
{
    /// <summary>Creates the options with the paper's optimiser: Adam (beta2 0.98, eps 1e-9) and the warmup schedule.</summary>
    public TranslationOptions()
    {
        Schedule = LearningRateScheduleKind.InverseSquareRoot;
        WarmupSteps = 400;
        LearningRateScale = 1.0;
        Beta1 = 0.9;
        Beta2 = 0.98;
        AdamEpsilon = 1e-9;
        WeightDecay = 0;
        GradientClipNorm = 1.0;
        Epochs = 10;
        LogEverySteps = 50;
    }

    /// <summary>Column of source sentences. Default "Spanish".</summary>
    public string SourceColumnName { get; set; } = "Spanish";

    /// <summary>Column of target sentences (training only). Default "English".</summary>
    public string TargetColumnName { get; set; } = "English";

    /// <summary>Column Transform adds with the translations. Default "Translation".</summary>
    public string OutputColumnName { get; set; } = "Translation";

    /// <summary>Size of the byte-level BPE vocabulary shared by source and target. Range 257..200000; default 8000.</summary>
    public int VocabularySize { get; set; } = 8000;

    /// <summary>Model size. Default <see cref="TranslationPreset.Small"/>; <see cref="Model"/> overrides it.</summary>
    public TranslationPreset Preset { get; set; } = TranslationPreset.Small;

    /// <summary>Every Table 3 knob (N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls, positional encoding); null uses <see cref="Preset"/>.</summary>
    public TransformerConfig? Model { get; set; }

    /// <summary>Most tokens of a sentence (source or target, end token included); longer ones are truncated (and counted in the log). Range 4..4096; default 64.</summary>
    public int MaxSentenceTokens { get; set; } = 64;

    /// <summary>Token budget of a batch: sentences of similar length are grouped until source or target tokens (padding included) reach it. Range 16..10^6; default 4096 (the paper: about 25000).</summary>
    public int MaxTokensPerBatch { get; set; } = 4096;

    /// <summary>
    /// Fraction of the training pairs, drawn afresh each epoch, whose source sentence is given as typed without
    /// punctuation: without its final marks (". ! ? ...") and an exclamation's opening "¡" ("¡Gracias!" -> "Gracias"; a
    /// question keeps its "¿", the target its own marks), so that a sentence typed so ("Gracias") is translated like the
    /// same sentence with them: corpora such as Tatoeba end nearly every sentence with punctuation, and a model that never
    /// saw one without it translates it as the start of a longer one. Range [0, 1]; default 0.1; 0 turns it off.
    /// </summary>
    public double SourcePunctuationDropout { get; set; } = 0.1;

    /// <summary>
    /// Whether numbers ("1987", "10:45", "3,50", "555-1234"), web and e-mail addresses, symbols and emoji are carried into
    /// the translation as they are written, as NMT systems tag numbers: the model reads and writes a placeholder in their
    /// place, one for numbers and addresses and one for symbols and emoji, learned from the training pairs that hold such
    /// a span on both sides and from 2 % of the others, given a symbol's at their end (where users put an emoji), and the
    /// spans are put back in their order; the log says how many. A sentence without a letter ("123") is its own translation.
    /// Without it a model trained on a corpus with few numbers spells them anew and often wrongly ("Nací en 1987." -> "I
    /// was born in 197."). Saved with the model and written into its ONNX export; a fine-tune (<see cref="BaseModelPath"/>)
    /// takes this value. Default true.
    /// </summary>
    public bool CopyVerbatimSpans { get; set; } = true;

    /// <summary>Prompt translated after every epoch and reported as the progress sample; null for none. Default "Soy un estudiante".</summary>
    public string? SampleSentence { get; set; } = "Soy un estudiante";

    /// <summary>
    /// Beam size of Transform, of Translate and TranslateNBest unless they are given one, and of the samples (1: greedy);
    /// the fitted model's <see cref="TranslationTransformer.BeamSize"/>. Range 1..64; default 4 (the paper).
    /// </summary>
    public int BeamSize { get; set; } = 4;

    /// <summary>
    /// Length penalty alpha of beam search, ((5 + |Y|) / 6)^alpha (Wu et al. 2016): the fitted model's
    /// <see cref="TranslationTransformer.LengthPenalty"/>, as <see cref="BeamSize"/>. Range [0, 10]; default 0.6 (the paper;
    /// <see cref="ForTimeBudget"/> sets 1.0).
    /// </summary>
    public double LengthPenalty { get; set; } = 0.6;

    /// <summary>
    /// Whether the fitted transformer translates a text of several sentences sentence by sentence
    /// (<see cref="TranslationTransformer.SplitSentences"/>). Default true.
    /// </summary>
    public bool SplitSentences { get; set; } = true;

    /// <summary>
    /// Whether the fitted transformer puts a sentence in the case of the training sources before translating it
    /// (<see cref="TranslationTransformer.NormalizeSourceCase"/>: a capital at a first word typed in lower case, sentence
    /// case for a sentence in capitals). Default null: on when at least 90 % of the training sources that begin with a
    /// letter begin with a capital (Tatoeba's: all), which Fit says in the log.
    /// </summary>
    public bool? NormalizeSourceCase { get; set; }

    /// <summary>Sentences translated together by Transform. Range 1..4096; default 32.</summary>
    public int TransformBatchSize { get; set; } = 32;

    /// <summary>Continue training this saved translation model (architecture and tokenizer kept); null trains from scratch.</summary>
    public string? BaseModelPath { get; set; }

    /// <summary>
    /// The recipe for a training budget of minutes on a CPU, found by measurement on Tatoeba's Spanish-English pairs
    /// (BENCHMARKS.md "translation", docs/translation.md): the preset's architecture, by default
    /// <see cref="TranslationPreset.Compact"/>, without dropout (minutes are a few epochs, in which the model underfits
    /// and dropout only slows it), a shared BPE of 4,000 tokens (8,000 scored the same over three seeds in about 13 % fewer
    /// steps), batches of about 1,024 tokens (a budget of minutes is
    /// one to four passes over the pairs, and more, smaller steps learn more from them than half as many of 2,048), linear
    /// warmup over 400 steps (at most a fifth of the planned steps) to a peak of 1e-3 and cosine decay to a twentieth of
    /// it planned over <paramref name="trainingTime"/> (the paper's inverse square root never decays within minutes), the
    /// final model the mean of 5 checkpoints over the last quarter of the steps (the paper's section 6.1), and mixed
    /// precision where the hardware multiplies bfloat16 natively. The budget buys steps, not a score; measured on two
    /// cores of an AMD EPYC Zen 3 (float32), BLEU with beam 4 on 2,320 held-out pairs, 10 minutes: Compact 2,136-2,265
    /// steps, BLEU 41.2-42.6 over three seeds; Small 1,099-1,404 steps, 36.0-39.8 (batches of 2,048: 692 steps, 33.2).
    /// 34 minutes there, what 10 minutes are on a Zen 5 with bfloat16: Compact 7,609 steps, BLEU 52.1; Small 4,136 steps,
    /// 51.2 (on that Zen 5 with batches of 2,048, about 2,300 steps, 48.0-49.6). Where a budget buys many times those
    /// steps (hours, a GPU) a wider preset may pay (not measured). This class's defaults (the paper's schedule, the
    /// preset's dropout) gave 31.1 with Small in the Zen 5's 10 minutes. For Base and Big a starting point. It decodes
    /// with beam 4 and a length penalty of 1.0 rather than the paper's 0.6: beam search's translations of these short
    /// sentences come out 5-8 % shorter than the references (greedy's 0-5 %), and on the validation pairs of five
    /// models (Compact and Small, 10 and 34 minutes) 1.0 scored 0.1-0.5 BLEU more than 0.6 for every one, 0.2-0.5 on the
    /// held-out pairs (the BLEU above was measured with 0.6). Columns and seed keep their defaults; set them on the result.
    /// </summary>
    public static TranslationOptions ForTimeBudget(TimeSpan trainingTime, TranslationPreset preset = TranslationPreset.Compact)
    {
        TransformerConfig model = PresetConfig(preset);
        model.Dropout = 0;
        return new TranslationOptions
        {
            Preset = preset,
            Model = model,
            VocabularySize = 4000,
            MaxTokensPerBatch = 1024,
            Schedule = LearningRateScheduleKind.WarmupCosine,
            LearningRate = 1e-3,
            WarmupSteps = 400,
            MinLearningRateRatio = 0.05,
            Precision = TrainingPrecision.Auto,
            AveragedCheckpoints = 5,
            AveragingSpan = 0.25,
            MaxTrainingTime = trainingTime,
            LengthPenalty = 1.0,
        };
    }

    /// <summary>The architecture of a preset: post-LN, sinusoidal positions, shared and tied embeddings scaled by sqrt(d_model), eps_ls 0.1.</summary>
    public static TransformerConfig PresetConfig(TranslationPreset preset) => preset switch
    {
        TranslationPreset.Small => new TransformerConfig { NumLayers = 3, ModelDimension = 256, FeedForwardDimension = 1024, NumHeads = 4, Dropout = 0.1, MaxSequenceLength = 256 },
        TranslationPreset.Base => TransformerConfig.Base(),
        TranslationPreset.Big => TransformerConfig.Big(),
        TranslationPreset.Compact => new TransformerConfig { NumLayers = 3, ModelDimension = 192, FeedForwardDimension = 768, NumHeads = 4, Dropout = 0.1, MaxSequenceLength = 256 },
        _ => throw new ArgumentOutOfRangeException(nameof(preset), preset, "Unknown translation preset."),
    };

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Check(!string.IsNullOrWhiteSpace(SourceColumnName), nameof(SourceColumnName), SourceColumnName, "a column name");
        Check(!string.IsNullOrWhiteSpace(TargetColumnName), nameof(TargetColumnName), TargetColumnName, "a column name");
        Check(!string.IsNullOrWhiteSpace(OutputColumnName), nameof(OutputColumnName), OutputColumnName, "a column name");
        Check(VocabularySize is >= 257 and <= 200_000, nameof(VocabularySize), VocabularySize, "in [257, 200000]");
        Check(Enum.IsDefined(Preset), nameof(Preset), Preset, string.Join(", ", Enum.GetNames<TranslationPreset>()));
        Check(MaxSentenceTokens is >= 4 and <= 4096, nameof(MaxSentenceTokens), MaxSentenceTokens, "in [4, 4096]");
        Check(MaxTokensPerBatch is >= 16 and <= 1_000_000, nameof(MaxTokensPerBatch), MaxTokensPerBatch, "in [16, 10^6]");
        Check(MaxTokensPerBatch >= MaxSentenceTokens, nameof(MaxTokensPerBatch), MaxTokensPerBatch, $">= MaxSentenceTokens ({MaxSentenceTokens})");
        Check(SourcePunctuationDropout is >= 0 and <= 1, nameof(SourcePunctuationDropout), SourcePunctuationDropout, "in [0, 1]");
        Check(BeamSize is >= 1 and <= 64, nameof(BeamSize), BeamSize, "in [1, 64]");
        Check(LengthPenalty is >= 0 and <= 10, nameof(LengthPenalty), LengthPenalty, "in [0, 10]");
        Check(TransformBatchSize is >= 1 and <= 4096, nameof(TransformBatchSize), TransformBatchSize, "in [1, 4096]");
        Check(BaseModelPath is null || File.Exists(BaseModelPath), nameof(BaseModelPath), BaseModelPath, "an existing model file");
        Model?.Validate();
    }

    [JsonIgnore]
    internal TransformerConfig EffectiveModel => (Model ?? PresetConfig(Preset)).Clone();
}

using System.Text.Json;
using TorchSharp;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.Translation;

/// <summary>
/// A trained encoder-decoder Transformer as an ML.NET transformer: Transform adds a column with the translation
/// of each source sentence (beam search, in batches); the model also translates, saves and loads directly.
/// </summary>
/// <remarks>
/// | column | type | |
/// |---|---|---|
/// | source (<see cref="SourceColumnName"/>) | Text | input |
/// | translation (<see cref="TextToTextTransformer.OutputColumnName"/>) | Text | output; empty for an empty or whitespace-only source |
/// </remarks>
public sealed class TranslationTransformer : TextToTextTransformer, IDisposable
{
    internal const string Capability = "translation";
    private readonly Action<string>? _log;

    internal TranslationTransformer(EncoderDecoderTransformer model, TranslationCodec codec, Device device, string sourceColumn, string outputColumn,
        TranslatorSettings settings, int batchSize, Action<string>? log)
        : base(sourceColumn, outputColumn, batchSize, "source", "LoadTranslation")
    {
        Model = model;
        Codec = codec;
        Device = device;
        BeamSize = settings.BeamSize;
        LengthPenalty = settings.LengthPenalty;
        SplitSentences = settings.SplitSentences;
        NormalizeSourceCase = settings.NormalizeSourceCase;
        _log = log;
    }

    internal EncoderDecoderTransformer Model { get; }

    internal TranslationCodec Codec { get; }

    internal Device Device { get; }

    /// <summary>The column of source sentences that Transform reads.</summary>
    public string SourceColumnName => InputColumnName;

    /// <summary>
    /// Beam size of Transform and PredictionEngine (1: greedy), and of Translate and TranslateNBest unless they are given
    /// one; saved with the model and written into its ONNX export (<see cref="OnnxTranslator.BeamSize"/>).
    /// </summary>
    public int BeamSize { get; set; }

    /// <summary>
    /// Length penalty alpha of Transform and PredictionEngine, and of Translate and TranslateNBest unless they are given
    /// one; saved with the model and written into its ONNX export (<see cref="OnnxTranslator.LengthPenalty"/>).
    /// </summary>
    public double LengthPenalty { get; set; }

    /// <summary>
    /// Whether a text of several sentences is translated sentence by sentence and joined as it was spaced (true), or as one
    /// sequence (false), by Transform, PredictionEngine and every Translate call. A model trained on sentence pairs drops
    /// whole sentences of a paragraph given at once. Sentences end at ". ! ?" or "..." before a capital or digit (not after
    /// an abbreviation such as "Sr." or an initial), in a paragraph that begins in lower case at ". ! ?" before any letter
    /// too (typed without capitals: "hola. ¿cómo estás?"), and at blank lines. Saved with the model; default true.
    /// </summary>
    public bool SplitSentences { get; set; }

    /// <summary>
    /// Whether a sentence is put in the case of the training sources before it is translated, by Transform,
    /// PredictionEngine and every Translate call: a capital at a first word typed in lower case ("hola, ¿cómo estás?"),
    /// and sentence case for a sentence typed in capitals, whose translation is then given in capitals. A model that
    /// learned from sentences that begin with a capital translates the others far worse (on 600 held-out pairs the
    /// example's model: BLEU 29.5 against 40.0 with the first letter in lower case, 0.6 in capitals; 40.2 and 37.7 so
    /// normalised). By default on when at least 90 % of the training sources begin with a capital
    /// (<see cref="TranslationOptions.NormalizeSourceCase"/>); saved with the model and written into its ONNX export. A
    /// model saved before the setting existed (2026-12-07) loads with it on: turn it off for one trained on text in lower case.
    /// </summary>
    public bool NormalizeSourceCase { get; set; }

    /// <summary>
    /// Whether the model was trained to carry numbers, web and e-mail addresses, symbols and emoji over as written
    /// (<see cref="TranslationOptions.CopyVerbatimSpans"/>): its sources' spans are replaced by a placeholder it copies,
    /// and put back into the translation. False for a model saved before the option existed (the night of 2026-12-07).
    /// </summary>
    public bool CopiesVerbatimSpans => Codec.CopyVerbatimSpans;

    /// <summary>The settings that travel with the model (its file and its export).</summary>
    internal TranslatorSettings Settings => new(BeamSize, LengthPenalty, SplitSentences, NormalizeSourceCase);

    /// <summary>The architecture.</summary>
    public TransformerConfig Config => Model.Config.Clone();

    /// <summary>Parameters of the model.</summary>
    public long ParameterCount => Model.parameters().Sum(p => p.numel());

    /// <summary>Per-epoch reports of training (loss, validation loss, sample translation), when trained in this process.</summary>
    public IReadOnlyList<TrainingProgress> EpochReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <summary>Every progress report of training (steps and epochs), when trained in this process: e.g. for <see cref="Charts.SaveTrainingCurves"/>.</summary>
    public IReadOnlyList<TrainingProgress> TrainingReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <summary>
    /// Translates one sentence with beam search of <paramref name="beamSize"/> beams (1: greedy) and length penalty
    /// <paramref name="lengthPenalty"/>, each by default the model's (<see cref="BeamSize"/>, <see cref="LengthPenalty"/>,
    /// what Transform uses); the output is at most 50 tokens longer than the input.
    /// </summary>
    public string Translate(string sentence, int? beamSize = null, double? lengthPenalty = null) => Translate(new[] { sentence }, beamSize, lengthPenalty)[0];

    /// <summary>Translates sentences in batches (sorted by length inside, returned in order); beam size and length penalty by default the model's.</summary>
    public IReadOnlyList<string> Translate(IReadOnlyList<string> sentences, int? beamSize = null, double? lengthPenalty = null) =>
        TranslateBatch(sentences, beamSize ?? BeamSize, lengthPenalty ?? LengthPenalty, useCache: true);

    /// <summary>
    /// The <paramref name="count"/> best distinct translations of a sentence that beam search finds, best first, with their
    /// scores: alternatives to offer a user, or to rerank. See <see cref="TranslateNBest(IReadOnlyList{string}, int, int?, double?)"/>.
    /// </summary>
    public IReadOnlyList<TranslationCandidate> TranslateNBest(string sentence, int count, int? beamSize = null, double? lengthPenalty = null) =>
        TranslateNBest(new[] { sentence }, count, beamSize, lengthPenalty)[0];

    /// <summary>
    /// For each sentence the <paramref name="count"/> best distinct translations that beam search with
    /// <paramref name="beamSize"/> beams finds, best first, with the scores it ranked them by
    /// (<see cref="TranslationCandidate.Score"/>: length-normalised log-probabilities); fewer where fewer distinct ones finish.
    /// The first is <see cref="Translate(IReadOnlyList{string}, int?, double?)"/>'s. <paramref name="count"/> is at most the beam
    /// size (Hugging Face's num_return_sequences, fairseq's nbest); beam size and length penalty are by default the model's
    /// (<see cref="BeamSize"/>, <see cref="LengthPenalty"/>). An exported model's <see cref="OnnxTranslator"/> gives the same.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<TranslationCandidate>> TranslateNBest(IReadOnlyList<string> sentences, int count, int? beamSize = null, double? lengthPenalty = null) =>
        Candidates(sentences, count, beamSize ?? BeamSize, lengthPenalty ?? LengthPenalty, useCache: true); // a null list: ArgumentNullException from the codec

    internal string[] TranslateBatch(IReadOnlyList<string> sentences, int beamSize, double lengthPenalty, bool useCache) =>
        Candidates(sentences, 1, beamSize, lengthPenalty, useCache).Select(c => c[0].Text).ToArray();

    private TranslationCandidate[][] Candidates(IReadOnlyList<string> sentences, int count, int beamSize, double lengthPenalty, bool useCache)
    {
        TranslationCodec.CheckArguments(beamSize, lengthPenalty, count);
        var decoder = new Seq2SeqDecoder(Model, Codec.EndOfSentence, Codec.Padding, Device);
        TranslationCandidate[][] results = Codec.Translate(sentences, count, TransformBatchSize, SplitSentences, NormalizeSourceCase,
            (sources, quota) => decoder.Decode(sources, beamSize, lengthPenalty, quota, useCache: useCache), out int truncated);
        if (truncated > 0)
        {
            _log?.Invoke($"{truncated} source sentence(s) longer than {Codec.MaxSentenceTokens} tokens were truncated before translation.");
        }
        return results;
    }

    /// <summary>
    /// The attention of the model when it translates <paramref name="source"/> into <paramref name="translation"/> (null: its
    /// own translation with <see cref="BeamSize"/> and <see cref="LengthPenalty"/>): the encoder's self-attention over the
    /// source, the decoder's causal self-attention over the translation and its cross-attention from the translation to
    /// the source (the alignment), per layer and head. The decoder's first position is its start token, shown as "&lt;s&gt;";
    /// the source ends with its end token, "&lt;/s&gt;". The source is the sentence as the model reads it: in the training
    /// sources' case when <see cref="NormalizeSourceCase"/> is on (so its own translation of one typed in capitals is
    /// in sentence case here). With <see cref="CopiesVerbatimSpans"/> the model reads and writes a placeholder for each
    /// number, address, symbol or emoji; its token is labelled with the span.
    /// </summary>
    public TranslationAttention Attention(string source, string? translation = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        // The source the model reads (in the training sources' case, NormalizeSourceCase), and its translation of it.
        source = NormalizeSourceCase ? SourceCase.Normalize(source, out _) : source;
        translation ??= Translate(source);
        (string read, string written, string[] sourceSpans, string[] targetSpans) = Codec.CopyVerbatimSpans
            ? VerbatimSpans.MaskPair(source, translation, everySourceSpan: true)
            : (source, translation, Array.Empty<string>(), Array.Empty<string>());
        (int[] sourceIds, _) = Codec.Encode(read);
        (int[] targetIds, _) = Codec.Encode(written);
        // The decoder reads the start token and then the translation: its inputs are the end token and the target's tokens.
        int[] decoderIds = new[] { Codec.EndOfSentence }.Concat(targetIds.Take(targetIds.Length - 1)).ToArray();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Model.eval();
        Tensor src = tensor(sourceIds.Select(i => (long)i).ToArray(), new long[] { 1, sourceIds.Length }, device: Device);
        Tensor tgt = tensor(decoderIds.Select(i => (long)i).ToArray(), new long[] { 1, decoderIds.Length }, device: Device);
        var (encoder, decoderSelf, cross) = Model.Attention(src, tgt);
        string[] sourceTokens = VerbatimSpans.Label(AttentionWeights.TokenTexts(Codec.Tokenizer, sourceIds.Take(sourceIds.Length - 1)), sourceSpans).Append("</s>").ToArray();
        string[] targetTokens = new[] { "<s>" }.Concat(VerbatimSpans.Label(AttentionWeights.TokenTexts(Codec.Tokenizer, decoderIds.Skip(1)), targetSpans)).ToArray();
        return new TranslationAttention(translation,
            AttentionWeights.From("encoder self-attention", sourceTokens, sourceTokens, encoder),
            AttentionWeights.From("decoder self-attention", targetTokens, targetTokens, decoderSelf),
            AttentionWeights.From("decoder cross-attention (target -> source)", targetTokens, sourceTokens, cross));
    }

    /// <summary>Writes the model (configuration, tokenizer, weights) to one safetensors file, atomically.</summary>
    public void Save(string path)
    {
        var settings = new Dictionary<string, string>
        {
            ["columns"] = JsonSerializer.Serialize(new[] { SourceColumnName, OutputColumnName }),
            ["max_sentence_tokens"] = JsonSerializer.Serialize(Codec.MaxSentenceTokens),
            ["transform_batch_size"] = JsonSerializer.Serialize(TransformBatchSize),
            [Codec.CopyVerbatimSpansEntry.Key] = Codec.CopyVerbatimSpansEntry.Value,
        };
        foreach ((string key, string value) in Settings.Metadata())
        {
            settings[key] = value;
        }
        ModelFile.Save(path, Capability, Model.Config.ToJson(), Codec.Tokenizer.Definition.ToJson(), Model, settings);
    }

    /// <summary>Reads a model written by <see cref="Save(string)"/>; a damaged file fails with an <see cref="InvalidDataException"/> that names it.</summary>
    internal static TranslationTransformer Load(string path, string device, Action<string>? log)
    {
        Device target = DeviceSelector.Resolve(device, allowCpuFallback: false, log);
        using ModelFileContents contents = ModelFile.Load(path, Capability);
        TransformerConfig config = contents.Parse("configuration", () => TransformerConfig.FromJson(contents.Config));
        TextTokenizer tokenizer = contents.Parse("tokenizer", () => TextTokenizer.FromModelFile(contents));
        int maxTokens = contents.Json("max_sentence_tokens", 64);
        string[] columns = contents.Json("columns", new[] { "Spanish", "Translation" });
        TranslatorSettings settings = TranslatorSettings.Read(contents.Metadata, path); // a file written before a setting existed: its default
        int batch = contents.Json("transform_batch_size", new TranslationOptions().TransformBatchSize);
        contents.Parse("settings", () =>
            columns.Length == 2 && columns.All(c => !string.IsNullOrEmpty(c)) && batch is >= 1 and <= 4096 && maxTokens is >= 4 and <= 4096
                ? true
                : throw new FormatException($"columns, batch size {batch} or sentence length {maxTokens} out of range"));
        var codec = new TranslationCodec(tokenizer, maxTokens, TranslationCodec.ReadCopyVerbatimSpans(contents.Metadata, path));
        var model = new EncoderDecoderTransformer("transformer", config, codec.VocabularySize);
        ModelFile.LoadForInference(contents, model, target, d =>
        {
            Tensor ids = tensor(new long[] { codec.EndOfSentence }, new long[] { 1, 1 }, device: d);
            return model.Forward(ids, ids);
        });
        return new TranslationTransformer(model, codec, target, columns[0], columns[1], settings, batch, log);
    }

    /// <summary>
    /// Exports the model to ONNX (opset 17) as two graphs in <paramref name="folder"/>: encoder.onnx (source ids and padding ->
    /// the decoder's cross-attention keys and values) and decoder.onnx (one step with its key/value cache -> log-probabilities).
    /// The tokenizer, configuration and decoding settings (<see cref="BeamSize"/>, <see cref="LengthPenalty"/>,
    /// <see cref="SplitSentences"/>, <see cref="NormalizeSourceCase"/>) are in both files' metadata: <see cref="OnnxTranslator.Load"/>
    /// needs nothing else.
    /// Each file is written atomically.
    /// </summary>
    public void ExportToOnnx(string folder) => ExportToOnnx(folder, new OnnxExportOptions());

    /// <summary>Exports the two graphs with <paramref name="options"/> (e.g. int8 weights, <see cref="OnnxExportOptions.Quantization"/>); see <see cref="ExportToOnnx(string)"/>.</summary>
    public void ExportToOnnx(string folder, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(options);
        (global::Onnx.ModelProto encoder, global::Onnx.ModelProto decoder) = TranslationOnnxExport.Build(Model, Codec, Settings, options); // checks the options first
        AtomicFile.CreateFolder(folder, "TranslationTransformer.ExportToOnnx");
        OnnxGraph.Save(encoder, Path.Combine(folder, TranslationOnnxExport.EncoderFile));
        OnnxGraph.Save(decoder, Path.Combine(folder, TranslationOnnxExport.DecoderFile));
    }

    /// <summary>Exports the two graphs into streams (see <see cref="ExportToOnnx(string)"/>).</summary>
    public void ExportToOnnx(Stream encoder, Stream decoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(decoder);
        (global::Onnx.ModelProto e, global::Onnx.ModelProto d) = TranslationOnnxExport.Build(Model, Codec, Settings);
        Google.Protobuf.MessageExtensions.WriteTo(e, encoder);
        Google.Protobuf.MessageExtensions.WriteTo(d, decoder);
    }

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose() => Model.Dispose();

    private protected override IReadOnlyList<string> MapBatch(IReadOnlyList<string> inputs) =>
        TranslateBatch(inputs, BeamSize, LengthPenalty, useCache: true);
}

/// <summary>Where a translation model looks for one sentence pair (<see cref="TranslationTransformer.Attention"/>).</summary>
/// <param name="Translation">The translation the weights are for.</param>
/// <param name="Encoder">The encoder's self-attention over the source.</param>
/// <param name="DecoderSelf">The decoder's causal self-attention over the translation.</param>
/// <param name="Cross">The decoder's cross-attention from the translation to the source: the alignment.</param>
public sealed record TranslationAttention(string Translation, AttentionWeights Encoder, AttentionWeights DecoderSelf, AttentionWeights Cross);

// Translation with ONNX Runtime alone (no libtorch): the exported encoder and decoder graphs, the tokenizer from their
// metadata, and the same search (Seq2SeqSearch: greedy or beam with the GNMT length penalty, output at most input + 50)
// as the TorchSharp model, so the translations are identical.
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Translation;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.Translation;

/// <summary>Translates with a model exported by <see cref="TranslationTransformer.ExportToOnnx(string)"/>, through ONNX Runtime.</summary>
public sealed class OnnxTranslator : IDisposable
{
    private readonly InferenceSession _encoder;
    private readonly InferenceSession _decoder;
    private readonly TransformerConfig _config;
    private readonly TranslationCodec _codec;
    private readonly bool _sharedBuffers;

    private OnnxTranslator(InferenceSession encoder, InferenceSession decoder, string source)
    {
        _encoder = encoder;
        _decoder = decoder;
        IReadOnlyDictionary<string, string> metadata = OnnxModels.Metadata(encoder, source, TranslationTransformer.Capability);
        OnnxModels.Metadata(decoder, source, TranslationTransformer.Capability);
        _config = TransformerConfig.FromJson(metadata["config"]);
        TextTokenizer tokenizer = TextTokenizer.FromDefinition(TokenizerDefinition.FromJson(metadata["tokenizer"], source), source);
        _codec = new TranslationCodec(tokenizer, int.Parse(metadata["max_sentence_tokens"], System.Globalization.CultureInfo.InvariantCulture),
            TranslationCodec.ReadCopyVerbatimSpans(metadata, source));
        _sharedBuffers = OnnxSharedCache.IsShared(metadata);
        TranslatorSettings settings = TranslatorSettings.Read(metadata, source);
        (BeamSize, LengthPenalty, SplitSentences, NormalizeSourceCase) = (settings.BeamSize, settings.LengthPenalty, settings.SplitSentences, settings.NormalizeSourceCase);
    }

    /// <summary><see cref="TranslationTransformer.CopiesVerbatimSpans"/> of the exported model.</summary>
    public bool CopiesVerbatimSpans => _codec.CopyVerbatimSpans;

    /// <summary>
    /// Whether a text of several sentences is translated sentence by sentence and joined as it was spaced, as
    /// <see cref="TranslationTransformer.SplitSentences"/>; initially the exported model's setting.
    /// </summary>
    public bool SplitSentences { get; set; }

    /// <summary>
    /// Whether a sentence is put in the case of the training sources before it is translated, as
    /// <see cref="TranslationTransformer.NormalizeSourceCase"/>; initially the exported model's setting (true for an
    /// export that does not record it).
    /// </summary>
    public bool NormalizeSourceCase { get; set; }

    /// <summary>
    /// Beam size (1: greedy) of Translate and TranslateNBest unless they are given one; initially the exported model's
    /// <see cref="TranslationTransformer.BeamSize"/> (4 for an export that does not record it).
    /// </summary>
    public int BeamSize { get; set; }

    /// <summary>
    /// Length penalty alpha of Translate and TranslateNBest unless they are given one; initially the exported model's
    /// <see cref="TranslationTransformer.LengthPenalty"/> (0.6 for an export that does not record it).
    /// </summary>
    public double LengthPenalty { get; set; }

    /// <summary>Loads the encoder.onnx and decoder.onnx of an export folder, with every ONNX Runtime graph optimisation on.</summary>
    public static OnnxTranslator Load(string folder, SessionOptions? sessionOptions = null)
    {
        if (File.Exists(folder))
        {
            throw new ArgumentException($"'{folder}' is a file; {nameof(OnnxTranslator)}.{nameof(Load)} takes the folder that TranslationTransformer.ExportToOnnx wrote ({TranslationOnnxExport.EncoderFile} and {TranslationOnnxExport.DecoderFile}).", nameof(folder));
        }
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"ONNX translation export folder '{folder}' does not exist.");
        }
        InferenceSession encoder = OnnxModels.Session(Path.Combine(folder, TranslationOnnxExport.EncoderFile), sessionOptions);
        InferenceSession? decoder = null;
        try
        {
            decoder = OnnxModels.Session(Path.Combine(folder, TranslationOnnxExport.DecoderFile), sessionOptions);
            return new OnnxTranslator(encoder, decoder, folder); // reads the metadata: a damaged export fails here
        }
        catch
        {
            decoder?.Dispose();
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Translates one sentence (beam 1: greedy); beam size and length penalty by default <see cref="BeamSize"/> and <see cref="LengthPenalty"/>.</summary>
    public string Translate(string sentence, int? beamSize = null, double? lengthPenalty = null) => Translate(new[] { sentence }, beamSize, lengthPenalty)[0];

    /// <summary>Translates sentences in batches of <paramref name="batchSize"/> (sorted by length inside, returned in order); beam size and length penalty by default the model's.</summary>
    public IReadOnlyList<string> Translate(IReadOnlyList<string> sentences, int? beamSize = null, double? lengthPenalty = null, int batchSize = 32) =>
        TranslateNBest(sentences, 1, beamSize, lengthPenalty, batchSize).Select(c => c[0].Text).ToArray();

    /// <summary>
    /// The <paramref name="count"/> best distinct translations of a sentence that beam search finds, best first, with their
    /// scores; as <see cref="TranslationTransformer.TranslateNBest(string, int, int?, double?)"/>, and the same ones.
    /// </summary>
    public IReadOnlyList<TranslationCandidate> TranslateNBest(string sentence, int count, int? beamSize = null, double? lengthPenalty = null) =>
        TranslateNBest(new[] { sentence }, count, beamSize, lengthPenalty)[0];

    /// <summary>
    /// For each sentence the <paramref name="count"/> (at most the beam size) best distinct translations that beam
    /// search finds, best first, with the scores it ranked them by (<see cref="TranslationCandidate.Score"/>); fewer where fewer
    /// distinct ones finish. The first is <see cref="Translate(IReadOnlyList{string}, int?, double?, int)"/>'s. Beam size
    /// and length penalty are by default <see cref="BeamSize"/> and <see cref="LengthPenalty"/>, the exported model's.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<TranslationCandidate>> TranslateNBest(IReadOnlyList<string> sentences, int count, int? beamSize = null, double? lengthPenalty = null, int batchSize = 32)
    {
        int beam = beamSize ?? BeamSize;
        double alpha = lengthPenalty ?? LengthPenalty;
        TranslationCodec.CheckArguments(beam, alpha, count, batchSize);
        return _codec.Translate(sentences, count, batchSize, SplitSentences, NormalizeSourceCase, (sources, quota) => Decode(sources, beam, alpha, quota), out _);
    }

    /// <summary>
    /// Each source's hypotheses, best first; <paramref name="beamSize"/> (checked by the caller) 1 is greedy decoding;
    /// <paramref name="quota"/>: the placeholders each must hold.
    /// </summary>
    private List<Seq2SeqHypothesis>[] Decode(IReadOnlyList<int[]> sources, int beamSize, double lengthPenalty, TokenQuota? quota)
    {
        int[] limits = sources.Select(s => s.Length + 50).ToArray();
        using var stepper = new Stepper(this, sources, beamSize, limits.Max() + 1); // the start token and the longest output allowed
        return beamSize == 1
            ? Seq2SeqSearch.Greedy(stepper, limits, lengthPenalty, _codec.EndOfSentence, _codec.Padding, quota)
            : Seq2SeqSearch.Beam(stepper, limits, beamSize, lengthPenalty, _codec.EndOfSentence, _codec.Padding, quota);
    }

    /// <summary>
    /// The ONNX decoder as a stepper: the encoder runs once (rows repeated per beam); the padding mask and the
    /// cross-attention keys/values become ONNX Runtime values once; the self-attention cache (the presents taken as the next
    /// pasts, or for a graph exported with SharedCacheBuffers buffers written in place) follows the beams.
    /// </summary>
    private sealed class Stepper : ISeq2SeqStepper, IDisposable
    {
        private readonly OnnxTranslator _owner;
        private readonly int _rows;
        private readonly List<string> _fixedNames = new();
        private readonly List<OrtValue> _fixedValues = new();
        private readonly OnnxKeyValueCache? _past;
        private readonly OnnxSharedCache? _buffers;

        public Stepper(OnnxTranslator owner, IReadOnlyList<int[]> sources, int k, int capacity)
        {
            _owner = owner;
            TransformerConfig config = owner._config;
            int batch = sources.Count, length = sources.Max(s => s.Length);
            _rows = batch * k;
            var ids = new DenseTensor<long>(new[] { batch, length });
            var padding = new DenseTensor<long>(new[] { batch, length });
            for (int b = 0; b < batch; b++)
            {
                for (int t = 0; t < length; t++)
                {
                    bool real = t < sources[b].Length;
                    ids[b, t] = real ? sources[b][t] : owner._codec.Padding;
                    padding[b, t] = real ? 0 : 1;
                }
            }
            using var results = owner._encoder.Run(new[]
            {
                NamedOnnxValue.CreateFromTensor(TranslationOnnxExport.SourceIds, ids),
                NamedOnnxValue.CreateFromTensor(TranslationOnnxExport.SourcePadding, padding),
            });
            var byName = results.ToDictionary(r => r.Name);
            int[] repeat = Enumerable.Range(0, _rows).Select(r => r / k).ToArray(); // row -> sentence
            Fixed(TranslationOnnxExport.SourcePadding, OnnxKeyValueCache.Rows(padding, repeat));
            for (int l = 0; l < config.NumLayers; l++)
            {
                Fixed(TranslationOnnxExport.CrossKey(l), OnnxKeyValueCache.Rows(byName[TranslationOnnxExport.CrossKey(l)].AsTensor<float>(), repeat));
                Fixed(TranslationOnnxExport.CrossValue(l), OnnxKeyValueCache.Rows(byName[TranslationOnnxExport.CrossValue(l)].AsTensor<float>(), repeat));
            }
            if (owner._sharedBuffers)
            {
                _buffers = new OnnxSharedCache(owner._decoder, config, _rows, capacity);
                for (int i = 0; i < _fixedNames.Count; i++)
                {
                    _buffers.BindFixed(_fixedNames[i], _fixedValues[i]); // bound once: they stay the same at every step
                }
            }
            else
            {
                _past = new OnnxKeyValueCache(config, _rows);
            }
        }

        private void Fixed<T>(string name, DenseTensor<T> value)
            where T : unmanaged
        {
            _fixedNames.Add(name);
            _fixedValues.Add(OrtValue.CreateTensorValueFromMemory(value.Buffer.ToArray(), value.Dimensions.ToArray().Select(d => (long)d).ToArray()));
        }

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> prefixes)
        {
            var last = new long[_rows];
            for (int r = 0; r < _rows; r++)
            {
                last[r] = prefixes[r][^1];
            }
            if (_buffers is not null)
            {
                return _buffers.Step(TranslationOnnxExport.TargetIds, last, 1, TranslationOnnxExport.LogProbabilities);
            }
            using OrtValue target = OrtValue.CreateTensorValueFromMemory(last, new long[] { _rows, 1 });
            return _past!.Step(_owner._decoder, new List<string>(_fixedNames) { TranslationOnnxExport.TargetIds },
                new List<OrtValue>(_fixedValues) { target }, TranslationOnnxExport.LogProbabilities);
        }

        public void Reorder(long[] rows)
        {
            int[] order = rows.Select(r => (int)r).ToArray();
            _past?.Reorder(order);
            _buffers?.Reorder(order);
        }

        public void Dispose()
        {
            _past?.Dispose();
            _buffers?.Dispose();
            foreach (OrtValue value in _fixedValues)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>Frees the ONNX Runtime sessions.</summary>
    public void Dispose()
    {
        _encoder.Dispose();
        _decoder.Dispose();
    }
}

// Decoding the TorchSharp encoder-decoder: the encoder runs once per batch; the decoder runs one token per step with
// its key/value cache (cross-attention keys and values computed once) or, without the cache, on every whole prefix.
// The search itself (greedy, beam) is Seq2SeqSearch, shared with the ONNX Runtime translator.
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Translation;

internal sealed class Seq2SeqDecoder
{
    private readonly EncoderDecoderTransformer _model;
    private readonly int _endOfSentence;
    private readonly int _padding;
    private readonly Device _device;

    public Seq2SeqDecoder(EncoderDecoderTransformer model, int endOfSentence, int padding, Device device)
    {
        _model = model;
        _endOfSentence = endOfSentence;
        _padding = padding;
        _device = device;
    }

    /// <summary>
    /// Each source's hypotheses (tokens without the end token), best first; beam 1 is greedy decoding, one hypothesis;
    /// <paramref name="quota"/>: the placeholders each must hold.
    /// </summary>
    public List<Seq2SeqHypothesis>[] Decode(IReadOnlyList<int[]> sources, int beamSize, double lengthPenalty, TokenQuota? quota = null, int extraLength = 50,
        bool useCache = true)
    {
        if (sources.Count == 0)
        {
            return Array.Empty<List<Seq2SeqHypothesis>>();
        }
        _model.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        (Tensor source, Tensor sourceMask) = Pad(sources);
        Tensor memory = _model.Encode(source, sourceMask);
        int[] limits = sources.Select(s => s.Length + extraLength).ToArray();
        int k = Math.Max(1, beamSize);
        if (k > 1)
        {
            // Each sentence's encoder output and mask, repeated for its K beams.
            Tensor expand = arange(sources.Count, device: _device).repeat_interleave(k);
            memory = memory.index_select(0, expand);
            sourceMask = sourceMask.index_select(0, expand);
        }
        using var stepper = new Stepper(_model, memory, sourceMask, useCache, _device);
        stepper.Reserve(limits.Max() + 1); // the start token and the longest output allowed: the cache is allocated once
        return k == 1
            ? Seq2SeqSearch.Greedy(stepper, limits, lengthPenalty, _endOfSentence, _padding, quota)
            : Seq2SeqSearch.Beam(stepper, limits, k, lengthPenalty, _endOfSentence, _padding, quota);
    }

    /// <summary>The TorchSharp decoder as a stepper: log-probabilities of the next token for each row.</summary>
    private sealed class Stepper(EncoderDecoderTransformer model, Tensor memory, Tensor sourceMask, bool useCache, Device device) : ISeq2SeqStepper, IDisposable
    {
        private readonly KeyValueCache? _cache = useCache ? model.Decoder.CreateCache() : null;
        private bool _started;

        public float[][] Step(IReadOnlyList<IReadOnlyList<int>> prefixes)
        {
            using var scope = NewDisposeScope();
            int rows = prefixes.Count;
            Tensor logits;
            if (_cache is not null)
            {
                Tensor last = tensor(prefixes.Select(p => (long)p[^1]).ToArray(), new long[] { rows, 1 }, device: device);
                logits = model.Decode(last, _started ? null : memory, sourceMask, cache: _cache);
            }
            else
            {
                int length = prefixes[0].Count;
                Tensor all = tensor(prefixes.SelectMany(p => p.Select(t => (long)t)).ToArray(), new long[] { rows, length }, device: device);
                logits = model.Decode(all, memory, sourceMask);
            }
            _started = true;
            Tensor logProbs = F.log_softmax(logits.select(1, -1), -1).to(ScalarType.Float32).cpu().contiguous();
            int vocabulary = (int)logProbs.shape[1];
            float[] flat = logProbs.data<float>().ToArray();
            return Enumerable.Range(0, rows).Select(r => flat.AsSpan(r * vocabulary, vocabulary).ToArray()).ToArray();
        }

        /// <summary>Sizes the self-attention buffers for <paramref name="positions"/> positions at their first allocation.</summary>
        public void Reserve(int positions) => _cache?.Reserve(positions);

        public void Reorder(long[] rows)
        {
            if (_cache is not null)
            {
                using Tensor index = tensor(rows, device: device);
                _cache.Reorder(index);
            }
        }

        public void Dispose() => _cache?.Dispose();
    }

    /// <summary>Sources right-padded into (B, S) with the mask that is true at padding.</summary>
    internal (Tensor Ids, Tensor Mask) Pad(IReadOnlyList<int[]> sources)
    {
        int length = sources.Max(s => s.Length);
        var ids = new long[sources.Count * length];
        var mask = new bool[sources.Count * length];
        for (int b = 0; b < sources.Count; b++)
        {
            for (int t = 0; t < length; t++)
            {
                bool real = t < sources[b].Length;
                ids[b * length + t] = real ? sources[b][t] : _padding;
                mask[b * length + t] = !real;
            }
        }
        return (tensor(ids, new long[] { sources.Count, length }, device: _device), tensor(mask, new long[] { sources.Count, length }, device: _device));
    }
}

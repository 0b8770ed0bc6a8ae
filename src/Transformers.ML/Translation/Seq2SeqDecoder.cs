// Decoding the encoder-decoder model (Vaswani et al. 2017, section 6.1: "beam search with a beam size of 4
// and length penalty alpha = 0.6 ... maximum output length to input length + 50, but terminate early when
// possible"). The encoder runs once per batch; the decoder runs one token per step with its key/value cache
// (cross-attention keys and values computed once); beam search keeps K hypotheses per sentence and reorders
// the cache to follow them.
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

    /// <summary>Output tokens (without the end token) for each source; beam 1 is greedy decoding.</summary>
    public List<int>[] Decode(IReadOnlyList<int[]> sources, int beamSize, double lengthPenalty, int extraLength = 50, bool useCache = true)
    {
        if (sources.Count == 0)
        {
            return Array.Empty<List<int>>();
        }
        _model.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        (Tensor source, Tensor sourceMask) = Pad(sources);
        Tensor memory = _model.Encode(source, sourceMask);
        int[] limits = sources.Select(s => s.Length + extraLength).ToArray();
        return beamSize <= 1
            ? Greedy(memory, sourceMask, limits, useCache)
            : Beam(memory, sourceMask, limits, beamSize, lengthPenalty, useCache);
    }

    private List<int>[] Greedy(Tensor memory, Tensor sourceMask, int[] limits, bool useCache)
    {
        int batch = limits.Length;
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var done = new bool[batch];
        using KeyValueCache? cache = useCache ? _model.Decoder.CreateCache() : null;
        var history = Enumerable.Range(0, batch).Select(_ => new List<long> { _endOfSentence }).ToArray();
        for (int step = 0; step < limits.Max() && !done.All(d => d); step++)
        {
            using var scope = NewDisposeScope();
            Tensor logits = cache is not null
                ? _model.Decode(Column(history.Select(h => h[^1])), step == 0 ? memory : null, sourceMask, cache: cache)
                : _model.Decode(tensor(history.SelectMany(h => h).ToArray(), new long[] { batch, step + 1 }, device: _device), memory, sourceMask);
            Tensor last = logits.select(1, -1);
            last.select(1, _padding).fill_(double.NegativeInfinity);
            long[] next = last.argmax(-1).cpu().data<long>().ToArray();
            for (int b = 0; b < batch; b++)
            {
                history[b].Add(done[b] ? _endOfSentence : next[b]);
                if (done[b])
                {
                    continue;
                }
                if (next[b] == _endOfSentence || outputs[b].Count + 1 >= limits[b])
                {
                    if (next[b] != _endOfSentence)
                    {
                        outputs[b].Add((int)next[b]);
                    }
                    done[b] = true;
                }
                else
                {
                    outputs[b].Add((int)next[b]);
                }
            }
        }
        return outputs;
    }

    /// <summary>Beam search over B sentences with K beams each, as B*K rows of the decoder.</summary>
    private List<int>[] Beam(Tensor memory, Tensor sourceMask, int[] limits, int k, double alpha, bool useCache)
    {
        int batch = limits.Length;
        int rows = batch * k;
        // Each sentence's encoder output and mask, repeated for its K beams.
        Tensor expand = arange(batch, device: _device).repeat_interleave(k);
        Tensor beamMemory = memory.index_select(0, expand);
        Tensor beamMask = sourceMask.index_select(0, expand);
        using KeyValueCache? cache = useCache ? _model.Decoder.CreateCache() : null;

        var tokens = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
        var scores = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            scores[r] = r % k == 0 ? 0 : double.NegativeInfinity; // at first only one live beam per sentence
        }
        var finished = Enumerable.Range(0, batch).Select(_ => new List<(double Score, List<int> Tokens)>()).ToArray();
        var done = new bool[batch];
        long[] input = Enumerable.Repeat((long)_endOfSentence, rows).ToArray();

        for (int step = 0; step < limits.Max() && !done.All(d => d); step++)
        {
            using var scope = NewDisposeScope();
            Tensor logits = (cache is not null
                ? _model.Decode(Column(input), step == 0 ? beamMemory : null, beamMask, cache: cache)
                // Without the cache: the whole prefix of every beam again (start token + its tokens).
                : _model.Decode(tensor(tokens.SelectMany(t => new long[] { _endOfSentence }.Concat(t.Select(x => (long)x))).ToArray(),
                    new long[] { rows, step + 1 }, device: _device), beamMemory, beamMask)).select(1, -1);
            Tensor logProbs = F.log_softmax(logits, -1);
            logProbs.select(1, _padding).fill_(double.NegativeInfinity);
            int vocabulary = (int)logProbs.shape[1];
            Tensor total = logProbs.add(tensor(scores, device: _device).to(logProbs.dtype).unsqueeze(1)).view(batch, k * vocabulary);
            (Tensor topValues, Tensor topIndices) = total.topk(2 * k, -1);
            float[] values = topValues.cpu().data<float>().ToArray();
            long[] indices = topIndices.cpu().data<long>().ToArray();

            var reorder = new long[rows];
            var nextTokens = new List<int>[rows];
            var nextScores = new double[rows];
            for (int b = 0; b < batch; b++)
            {
                int filled = 0;
                if (!done[b])
                {
                    for (int j = 0; j < 2 * k && filled < k; j++)
                    {
                        double score = values[b * 2 * k + j];
                        if (double.IsNegativeInfinity(score))
                        {
                            break;
                        }
                        int beam = (int)(indices[b * 2 * k + j] / vocabulary);
                        int token = (int)(indices[b * 2 * k + j] % vocabulary);
                        int row = b * k + beam;
                        bool atLimit = tokens[row].Count + 1 >= limits[b];
                        if (token == _endOfSentence || atLimit)
                        {
                            // A finished hypothesis, normalised by the length penalty (its end token counted).
                            // Only candidates within the top K may finish (as fairseq), so a weak ending cannot crowd out live beams.
                            if (j < k)
                            {
                                var hypothesis = new List<int>(tokens[row]);
                                if (token != _endOfSentence)
                                {
                                    hypothesis.Add(token);
                                }
                                finished[b].Add((score / Penalty(hypothesis.Count + 1, alpha), hypothesis));
                            }
                            continue;
                        }
                        int slot = b * k + filled++;
                        reorder[slot] = row;
                        nextTokens[slot] = new List<int>(tokens[row]) { token };
                        nextScores[slot] = score;
                    }
                    if (finished[b].Count >= k || filled == 0)
                    {
                        done[b] = true;
                    }
                }
                // Rows of finished sentences (and unfilled slots) keep running on a dead beam.
                for (int slot = b * k + filled; slot < (b + 1) * k; slot++)
                {
                    reorder[slot] = b * k;
                    nextTokens[slot] = Enumerable.Repeat(_endOfSentence, step + 1).ToList(); // same length as the live beams
                    nextScores[slot] = double.NegativeInfinity;
                }
            }
            cache?.Reorder(tensor(reorder, device: _device));
            tokens = nextTokens;
            scores = nextScores;
            for (int r = 0; r < rows; r++)
            {
                input[r] = tokens[r][^1];
            }
        }

        var outputs = new List<int>[batch];
        for (int b = 0; b < batch; b++)
        {
            // Sentences that ran out of steps also consider their live beams.
            var candidates = finished[b].ToList();
            for (int slot = b * k; slot < (b + 1) * k; slot++)
            {
                if (!double.IsNegativeInfinity(scores[slot]) && !done[b] && tokens[slot].All(t => t != _endOfSentence))
                {
                    candidates.Add((scores[slot] / Penalty(tokens[slot].Count + 1, alpha), tokens[slot]));
                }
            }
            outputs[b] = candidates.Count == 0 ? new List<int>() : candidates.MaxBy(c => c.Score).Tokens;
        }
        return outputs;
    }

    /// <summary>GNMT's length penalty (Wu et al. 2016): ((5 + |Y|) / 6)^alpha.</summary>
    internal static double Penalty(int length, double alpha) => Math.Pow((5.0 + length) / 6.0, alpha);

    private Tensor Column(IEnumerable<long> ids)
    {
        long[] values = ids.ToArray();
        return tensor(values, new long[] { values.Length, 1 }, device: _device);
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

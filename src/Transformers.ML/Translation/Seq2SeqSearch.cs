// The search of the encoder-decoder's output (Vaswani et al. 2017, section 6.1: "beam search with a beam size of 4
// and length penalty alpha = 0.6 ... maximum output length to input length + 50, but terminate early when possible"),
// written once over plain arrays so that the TorchSharp model and the ONNX Runtime export decode with the same code.
// A stepper runs the decoder: next-token log-probabilities for each row given its prefix, and reorders its
// key/value cache when beams move.
namespace Transformers.ML.Translation;

/// <summary>Runs a decoder one step at a time for rows of hypotheses (B sentences x K beams).</summary>
internal interface ISeq2SeqStepper
{
    /// <summary>
    /// Next-token log-probabilities (rows, V) given each row's prefix (the start token, then its tokens). A stepper with a
    /// key/value cache only reads the last token of each prefix.
    /// </summary>
    float[][] Step(IReadOnlyList<IReadOnlyList<int>> prefixes);

    /// <summary>Row r of the cache becomes the old row <paramref name="rows"/>[r] (beam search).</summary>
    void Reorder(long[] rows);
}

/// <summary>
/// An output of the search: its tokens (without the end token) and its score, the sum of its tokens' log-probabilities (the
/// end token's included when it ended with one) divided by the length penalty of its length counting the end token.
/// </summary>
internal readonly record struct Seq2SeqHypothesis(List<int> Tokens, double Score);

internal static class Seq2SeqSearch
{
    /// <summary>
    /// Greedy decoding of B rows (one per sentence): one hypothesis each, scored as beam search scores (<paramref name="alpha"/>);
    /// with <paramref name="quota"/> each step chooses among the tokens it allows.
    /// </summary>
    public static List<Seq2SeqHypothesis>[] Greedy(ISeq2SeqStepper stepper, int[] limits, double alpha, int endOfSentence, int padding,
        TokenQuota? quota = null)
    {
        int batch = limits.Length;
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var sums = new double[batch];
        var done = new bool[batch];
        var history = Enumerable.Range(0, batch).Select(_ => new List<int> { endOfSentence }).ToArray();
        for (int step = 0; step < limits.Max() && !done.All(d => d); step++)
        {
            float[][] logProbs = stepper.Step(history);
            for (int b = 0; b < batch; b++)
            {
                logProbs[b][padding] = float.NegativeInfinity;
                if (!done[b])
                {
                    quota?.Restrict(b, outputs[b], logProbs[b], endOfSentence);
                }
                int next = Core.Generation.Scores.ArgMax(logProbs[b]);
                history[b].Add(done[b] ? endOfSentence : next);
                if (done[b])
                {
                    continue;
                }
                sums[b] += logProbs[b][next];
                if (next == endOfSentence || outputs[b].Count + 1 >= limits[b])
                {
                    if (next != endOfSentence)
                    {
                        outputs[b].Add(next);
                    }
                    done[b] = true;
                }
                else
                {
                    outputs[b].Add(next);
                }
            }
        }
        // A row stopped by the last step without its end token is scored as beam search scores one at its limit.
        return Enumerable.Range(0, batch).Select(b => new List<Seq2SeqHypothesis> { new(outputs[b], sums[b] / Penalty(outputs[b].Count + 1, alpha)) }).ToArray();
    }

    /// <summary>
    /// Beam search over B sentences with K beams each, as B*K rows of the stepper (row b*K + j is beam j of sentence b). Each
    /// sentence's hypotheses, best first (among equal scores the one found first): those that finished, and where the
    /// sentence ran out of steps its live beams too; at least K of them unless fewer could finish. With
    /// <paramref name="quota"/> each beam continues only with the tokens it allows (the scores are the model's, not renormalised).
    /// </summary>
    public static List<Seq2SeqHypothesis>[] Beam(ISeq2SeqStepper stepper, int[] limits, int k, double alpha, int endOfSentence, int padding,
        TokenQuota? quota = null)
    {
        int batch = limits.Length;
        int rows = batch * k;
        var tokens = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
        var scores = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            scores[r] = r % k == 0 ? 0 : double.NegativeInfinity; // at first only one live beam per sentence
        }
        var finished = Enumerable.Range(0, batch).Select(_ => new List<Seq2SeqHypothesis>()).ToArray();
        var done = new bool[batch];

        for (int step = 0; step < limits.Max() && !done.All(d => d); step++)
        {
            float[][] logProbs = stepper.Step(tokens.Select(t => (IReadOnlyList<int>)new[] { endOfSentence }.Concat(t).ToList()).ToList());
            int vocabulary = logProbs[0].Length;
            var reorder = new long[rows];
            var nextTokens = new List<int>[rows];
            var nextScores = new double[rows];
            for (int b = 0; b < batch; b++)
            {
                int filled = 0;
                if (!done[b])
                {
                    // The 2K best (beam, token) continuations of the sentence, in float as the model's log-probabilities.
                    var best = new TopList(2 * k);
                    for (int j = 0; j < k; j++)
                    {
                        float[] row = logProbs[b * k + j];
                        row[padding] = float.NegativeInfinity;
                        quota?.Restrict(b, tokens[b * k + j], row, endOfSentence);
                        float beamScore = (float)scores[b * k + j];
                        for (int v = 0; v < vocabulary; v++)
                        {
                            best.Offer(row[v] + beamScore, j, v);
                        }
                    }
                    for (int j = 0; j < best.Count && filled < k; j++)
                    {
                        double score = best[j].Score;
                        if (double.IsNegativeInfinity(score))
                        {
                            break;
                        }
                        int row = b * k + best[j].Beam;
                        int token = best[j].Token;
                        bool atLimit = tokens[row].Count + 1 >= limits[b];
                        if (token == endOfSentence || atLimit)
                        {
                            // A finished hypothesis, normalised by the length penalty (its end token counted).
                            // Only candidates within the top K may finish (as fairseq), so a weak ending cannot crowd out live beams.
                            if (j < k)
                            {
                                var hypothesis = new List<int>(tokens[row]);
                                if (token != endOfSentence)
                                {
                                    hypothesis.Add(token);
                                }
                                finished[b].Add(new Seq2SeqHypothesis(hypothesis, score / Penalty(hypothesis.Count + 1, alpha)));
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
                    nextTokens[slot] = Enumerable.Repeat(endOfSentence, step + 1).ToList(); // same length as the live beams
                    nextScores[slot] = double.NegativeInfinity;
                }
            }
            stepper.Reorder(reorder);
            tokens = nextTokens;
            scores = nextScores;
        }

        var outputs = new List<Seq2SeqHypothesis>[batch];
        for (int b = 0; b < batch; b++)
        {
            // Sentences that ran out of steps also consider their live beams.
            var candidates = finished[b].ToList();
            for (int slot = b * k; slot < (b + 1) * k; slot++)
            {
                if (!double.IsNegativeInfinity(scores[slot]) && !done[b] && tokens[slot].All(t => t != endOfSentence))
                {
                    candidates.Add(new Seq2SeqHypothesis(tokens[slot], scores[slot] / Penalty(tokens[slot].Count + 1, alpha)));
                }
            }
            outputs[b] = candidates.OrderByDescending(c => c.Score).ToList(); // stable: among equal scores the one found first
        }
        return outputs;
    }

    /// <summary>The n largest (score, beam, token) offered, best first; among equal scores the one offered first.</summary>
    private sealed class TopList(int capacity)
    {
        private readonly List<(float Score, int Beam, int Token)> _items = new(capacity + 1);

        public int Count => _items.Count;

        public (float Score, int Beam, int Token) this[int index] => _items[index];

        public void Offer(float score, int beam, int token)
        {
            if (_items.Count == capacity && !(score > _items[^1].Score))
            {
                return;
            }
            int at = _items.Count;
            while (at > 0 && score > _items[at - 1].Score)
            {
                at--;
            }
            _items.Insert(at, (score, beam, token));
            if (_items.Count > capacity)
            {
                _items.RemoveAt(_items.Count - 1);
            }
        }
    }

    /// <summary>GNMT's length penalty (Wu et al. 2016): ((5 + |Y|) / 6)^alpha.</summary>
    internal static double Penalty(int length, double alpha) => Math.Pow((5.0 + length) / 6.0, alpha);
}

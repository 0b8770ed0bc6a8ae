// Teacher-forced training of the encoder-decoder (Vaswani et al. 2017, section 5.1): "sentence pairs were
// batched together by approximate sequence length", each batch holding about the same number of tokens.
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.Translation;

internal sealed class TranslationTask : ITrainingTask<int[]>
{
    private readonly EncoderDecoderTransformer _model;
    private readonly TranslationCodec _codec;
    private readonly Seq2SeqDecoder _decoder;
    private readonly List<(int[] Source, int[] Target)> _train;
    private readonly List<(int[] Source, int[] Target)> _validation;
    private readonly int[]?[] _unpunctuated;
    private readonly double _punctuationDropout;
    private readonly int _maxTokens;
    private readonly double _labelSmoothing;
    private readonly Device _device;
    private readonly Func<int, string?> _sample;

    /// <param name="unpunctuated">Per training pair, its source as typed without punctuation (<see cref="Unpunctuated"/>; null where it has none).</param>
    /// <param name="punctuationDropout">The fraction of pairs per epoch that are given that source instead.</param>
    public TranslationTask(EncoderDecoderTransformer model, TranslationCodec codec, List<(int[], int[])> train, List<(int[], int[])> validation,
        int[]?[] unpunctuated, double punctuationDropout, int maxTokensPerBatch, double labelSmoothing, Device device, Func<int, string?> sample)
    {
        if (unpunctuated.Length != train.Count)
        {
            throw new ArgumentException($"{unpunctuated.Length} unpunctuated sources for {train.Count} training pairs.", nameof(unpunctuated));
        }
        _unpunctuated = unpunctuated;
        _punctuationDropout = punctuationDropout;
        _model = model;
        _codec = codec;
        _train = train;
        _validation = validation;
        _maxTokens = maxTokensPerBatch;
        _labelSmoothing = labelSmoothing;
        _device = device;
        _sample = sample;
        _decoder = new Seq2SeqDecoder(model, codec.EndOfSentence, codec.Padding, device);
    }

    public string ThroughputUnit => "tokens";

    /// <summary>
    /// Batches of pair indices: sorted by length (ties broken at random), packed to the token budget, then shuffled. A pair
    /// whose source is given without its punctuation this epoch appears as the complement of its index (~i).
    /// </summary>
    public IReadOnlyList<int[]> PlanEpoch(int epoch, Random random)
    {
        List<int[]> batches = Batches(_train, random, _maxTokens);
        if (_punctuationDropout > 0)
        {
            foreach (int[] batch in batches)
            {
                for (int j = 0; j < batch.Length; j++)
                {
                    if (random.NextDouble() < _punctuationDropout && _unpunctuated[batch[j]] is not null)
                    {
                        batch[j] = ~batch[j];
                    }
                }
            }
        }
        return batches;
    }

    /// <summary>
    /// The source sentence <paramref name="text"/> as typed without punctuation: its final marks (". ! ? ...") gone, and
    /// an exclamation's opening "¡" with them ("¡Gracias!" -> "Gracias"); null when it has no final mark or nothing else.
    /// A question keeps its opening "¿": without both marks a Spanish question often reads as a statement ("Tienes
    /// hambre"), and a model taught to guess ended statements with "?" ("Gracias" -> "Thank you?", one seed of three).
    /// </summary>
    internal static string? Unpunctuated(string text)
    {
        string trimmed = text.Trim();
        string stripped = trimmed.TrimEnd('.', '!', '?', '…', ';', ':', '。', '！', '？').TrimEnd();
        if (stripped.Length == trimmed.Length)
        {
            return null;
        }
        stripped = stripped.TrimStart('¡').TrimStart();
        return stripped.Length == 0 ? null : stripped;
    }

    internal static List<int[]> Batches(List<(int[] Source, int[] Target)> pairs, Random? random, int maxTokens)
    {
        double[] noise = pairs.Select(_ => random?.NextDouble() ?? 0).ToArray();
        int[] order = Enumerable.Range(0, pairs.Count)
            .OrderBy(i => pairs[i].Source.Length).ThenBy(i => pairs[i].Target.Length).ThenBy(i => noise[i]).ThenBy(i => i).ToArray();
        var batches = new List<int[]>();
        var current = new List<int>();
        int maxSource = 0, maxTarget = 0;
        foreach (int i in order)
        {
            int source = Math.Max(maxSource, pairs[i].Source.Length);
            int target = Math.Max(maxTarget, pairs[i].Target.Length + 1); // the decoder input has the start token too
            if (current.Count > 0 && (current.Count + 1) * Math.Max(source, target) > maxTokens)
            {
                batches.Add(current.ToArray());
                current.Clear();
                source = pairs[i].Source.Length;
                target = pairs[i].Target.Length + 1;
            }
            current.Add(i);
            (maxSource, maxTarget) = (source, target);
        }
        if (current.Count > 0)
        {
            batches.Add(current.ToArray());
        }
        if (random is not null)
        {
            random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batches));
        }
        return batches;
    }

    public LossSum ComputeLoss(int[] batch) => Loss(_train, batch, _labelSmoothing);

    public ValidationResult? Validate()
    {
        if (_validation.Count == 0)
        {
            return null;
        }
        double sum = 0;
        long count = 0;
        foreach (int[] batch in Batches(_validation, null, _maxTokens))
        {
            using var scope = NewDisposeScope();
            LossSum loss = Loss(_validation, batch, 0.0); // plain cross-entropy: comparable across label smoothing settings
            sum += loss.Sum.item<float>();
            count += loss.Count.item<long>();
        }
        return new ValidationResult("loss", sum / Math.Max(1, count), HigherIsBetter: false);
    }

    public string? Sample(int epoch) => _sample(epoch);

    /// <summary>Summed label-smoothed loss over the non-padding target tokens of a batch.</summary>
    private LossSum Loss(List<(int[] Source, int[] Target)> pairs, int[] batch, double smoothing)
    {
        using var scope = NewDisposeScope();
        (Tensor source, Tensor sourceMask) = _decoder.Pad(batch.Select(i => i >= 0 ? pairs[i].Source : _unpunctuated[~i]!).ToList());
        // Decoder input: start token then the target; output: the target (which ends with the end token).
        int length = batch.Max(i => pairs[i < 0 ? ~i : i].Target.Length);
        var input = new long[batch.Length * length];
        var output = new long[batch.Length * length];
        var inputPadding = new bool[batch.Length * length];
        for (int b = 0; b < batch.Length; b++)
        {
            int[] target = pairs[batch[b] < 0 ? ~batch[b] : batch[b]].Target;
            for (int t = 0; t < length; t++)
            {
                bool real = t < target.Length;
                input[b * length + t] = !real ? _codec.Padding : t == 0 ? _codec.EndOfSentence : target[t - 1];
                output[b * length + t] = real ? target[t] : _codec.Padding;
                inputPadding[b * length + t] = !real;
            }
        }
        var shape = new long[] { batch.Length, length };
        Tensor logits = _model.Forward(source, tensor(input, shape, device: _device), sourceMask, tensor(inputPadding, shape, device: _device));
        LossSum loss = LabelSmoothedCrossEntropy.Sum(logits, tensor(output, shape, device: _device), smoothing, ignoreIndex: _codec.Padding);
        return new LossSum(loss.Sum.MoveToOuterDisposeScope(), loss.Count.MoveToOuterDisposeScope());
    }
}

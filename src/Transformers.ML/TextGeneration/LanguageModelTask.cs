// Next-token training on a token stream (nanoGPT's get_batch): each batch is random windows of
// context + 1 tokens; inputs are the first context tokens, targets the same shifted by one. The windows are read from
// the memory-mapped token shards (TokenStream), so the corpus never has to fit in memory.
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.TextGeneration;

internal sealed class LanguageModelTask : ITrainingTask<long[]>
{
    private readonly GptModel _model;
    private readonly TokenRange _train;
    private readonly TokenRange? _validation;
    private readonly Device _device;
    private readonly int _context;
    private readonly int _batchSize;
    private readonly int _batchesPerEpoch;
    private readonly List<long[]> _validationBatches = new();
    private readonly Func<int, string?> _sample;

    /// <param name="train">Training tokens.</param>
    /// <param name="validation">Validation tokens, or null.</param>
    /// <param name="device">The model's device, where the batches go.</param>
    public LanguageModelTask(GptModel model, TokenRange train, TokenRange? validation, Device device, int batchSize, int? batchesPerEpoch, int validationBatches, Func<int, string?> sample)
    {
        _model = model;
        _train = train;
        _validation = validation;
        _device = device;
        _context = model.ContextLength;
        _batchSize = batchSize;
        _sample = sample;
        // By default an epoch sees about as many tokens as the training text has.
        _batchesPerEpoch = batchesPerEpoch ?? (int)Math.Max(1, Math.Min(int.MaxValue, train.Length / ((long)batchSize * _context)));
        if (validation is TokenRange held && held.Length > _context)
        {
            // Fixed, evenly spaced validation windows: the same numbers every epoch.
            long available = held.Length - _context;
            long count = Math.Min((long)validationBatches * batchSize, available);
            long[] starts = Enumerable.Range(0, (int)count).Select(i => i * available / count).ToArray();
            _validationBatches.AddRange(starts.Chunk(batchSize));
        }
    }

    public string ThroughputUnit => "tokens";

    public IReadOnlyList<long[]> PlanEpoch(int epoch, Random random)
    {
        long limit = _train.Length - _context; // a window needs context + 1 tokens
        return Enumerable.Range(0, _batchesPerEpoch)
            .Select(_ => Enumerable.Range(0, _batchSize).Select(_ => random.NextInt64(0, limit)).ToArray())
            .ToList();
    }

    public LossSum ComputeLoss(long[] starts) => Loss(_train, starts);

    public ValidationResult? Validate()
    {
        if (_validationBatches.Count == 0)
        {
            return null;
        }
        double sum = 0;
        long count = 0;
        foreach (long[] starts in _validationBatches)
        {
            using var scope = NewDisposeScope();
            LossSum loss = Loss(_validation!.Value, starts);
            sum += loss.Sum.item<float>();
            count += loss.Count.item<long>();
        }
        return new ValidationResult("loss", sum / count, HigherIsBetter: false);
    }

    public string? Sample(int epoch) => _sample(epoch);

    /// <summary>Summed next-token cross-entropy of the windows starting at <paramref name="starts"/>.</summary>
    private LossSum Loss(TokenRange tokens, long[] starts)
    {
        using var scope = NewDisposeScope();
        int width = _context + 1;
        var ids = new long[starts.Length * width];
        for (int b = 0; b < starts.Length; b++)
        {
            tokens.Read(starts[b], ids.AsSpan(b * width, width));
        }
        Tensor windows = tensor(ids, new long[] { starts.Length, width }, device: _device); // (B, T + 1)
        Tensor input = windows.narrow(1, 0, _context);
        Tensor target = windows.narrow(1, 1, _context);
        Tensor logits = _model.Forward(input);                                        // (B, T, V)
        Tensor sum = F.cross_entropy(logits.view(-1, logits.shape[^1]), target.flatten(), reduction: nn.Reduction.Sum);
        return new LossSum(sum.MoveToOuterDisposeScope(), tensor((long)starts.Length * _context).MoveToOuterDisposeScope());
    }
}

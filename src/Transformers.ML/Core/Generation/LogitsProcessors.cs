// Decoding rules, one small component each (as Hugging Face's logits processors): each takes the
// next-token logits (B, V) and the ids so far (B, T) and returns adjusted logits. The generator
// composes them in order: repetition penalty, temperature, top-k, top-p.
using static TorchSharp.torch;
using Transformers.ML.Core.Modules;

namespace Transformers.ML.Core.Generation;

internal interface ILogitsProcessor
{
    /// <summary>Adjusted logits (B, V) for the next token, given the ids so far (B, T).</summary>
    Tensor Process(Tensor logits, Tensor ids);
}

/// <summary>Divides logits by the temperature: below 1 sharpens the distribution, above 1 flattens it.</summary>
internal sealed class TemperatureProcessor : ILogitsProcessor
{
    private readonly double _temperature;

    public TemperatureProcessor(double temperature)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, $"Temperature must be a positive finite number; found {temperature} (0 or less means greedy decoding, which needs no processor).");
        }
        _temperature = temperature;
    }

    public Tensor Process(Tensor logits, Tensor ids) => logits.Over(_temperature);
}

/// <summary>Keeps the k largest logits per row and sets the others to -inf (Fan et al. 2018).</summary>
internal sealed class TopKProcessor : ILogitsProcessor
{
    private readonly int _k;

    public TopKProcessor(int k)
    {
        if (k < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, $"Top-k must be at least 1; found {k}.");
        }
        _k = k;
    }

    public Tensor Process(Tensor logits, Tensor ids)
    {
        long k = Math.Min(_k, logits.shape[^1]);
        using var scope = NewDisposeScope();
        Tensor kth = logits.topk((int)k, -1).values.narrow(-1, k - 1, 1); // (B, 1): the k-th largest
        return logits.FillWhere(logits.lt(kth), double.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Nucleus sampling (Holtzman et al. 2020): keeps the smallest set of most likely tokens whose probability
/// reaches p, always at least the most likely one, and sets the others to -inf.
/// </summary>
internal sealed class TopPProcessor : ILogitsProcessor
{
    private readonly double _p;

    public TopPProcessor(double p)
    {
        if (!(p > 0 && p <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(p), p, $"Top-p must be in (0, 1]; found {p}.");
        }
        _p = p;
    }

    public Tensor Process(Tensor logits, Tensor ids)
    {
        using var scope = NewDisposeScope();
        (Tensor sorted, Tensor order) = logits.sort(-1, descending: true);
        Tensor cumulative = sorted.softmax(-1).cumsum(-1);
        // Drop a token when the tokens before it already reach p: shift the cumulative sum right by one.
        Tensor before = cumulative.sub(sorted.softmax(-1));
        Tensor dropSorted = before.AtLeast(_p);
        Tensor drop = zeros_like(dropSorted).scatter(-1, order, dropSorted);
        return logits.FillWhere(drop, double.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The repetition penalty of CTRL (Keskar et al. 2019): the logit of every token already in the sequence is
/// divided by the penalty when positive and multiplied by it when negative (penalty > 1 discourages repeats).
/// </summary>
internal sealed class RepetitionPenaltyProcessor : ILogitsProcessor
{
    private readonly double _penalty;

    public RepetitionPenaltyProcessor(double penalty)
    {
        if (!(penalty > 0) || double.IsInfinity(penalty))
        {
            throw new ArgumentOutOfRangeException(nameof(penalty), penalty, $"Repetition penalty must be a positive finite number; found {penalty}.");
        }
        _penalty = penalty;
    }

    public Tensor Process(Tensor logits, Tensor ids)
    {
        using var scope = NewDisposeScope();
        Tensor seen = logits.gather(-1, ids);
        Tensor penalised = where(seen.Above(0), seen.Over(_penalty), seen.Times(_penalty));
        return logits.scatter(-1, ids, penalised).MoveToOuterDisposeScope();
    }
}

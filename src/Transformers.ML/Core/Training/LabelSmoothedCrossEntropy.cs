// Label smoothing, Vaswani et al. (2017), section 5.4 (Szegedy et al. 2016): the target distribution
// puts 1 - eps_ls on the true token and spreads eps_ls uniformly over all K classes,
//   q(k) = (1 - eps) [k = y] + eps / K,   loss = -sum_k q(k) log p(k) = (1 - eps) NLL + eps * mean_k(-log p(k)),
// the definition PyTorch's cross_entropy(label_smoothing=eps) uses. Padding targets are ignored.
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Transformers.ML.Core.Modules;

namespace Transformers.ML.Core.Training;

/// <summary>A summed loss and the number of targets it sums over (the normaliser for a mean), both scalar tensors.</summary>
internal readonly record struct LossSum(Tensor Sum, Tensor Count) : IDisposable
{
    public void Dispose()
    {
        Sum.Dispose();
        Count.Dispose();
    }
}

internal static class LabelSmoothedCrossEntropy
{
    /// <summary>
    /// Logits (..., K) and integer targets (...) -> the summed smoothed loss over targets that are not
    /// <paramref name="ignoreIndex"/>, and how many there were.
    /// </summary>
    /// <param name="weights">Optional weight of each target (...), e.g. for class balancing; the count stays the number of targets.</param>
    public static LossSum Sum(Tensor logits, Tensor targets, double epsilon, long ignoreIndex = -100, Tensor? weights = null)
    {
        if (!(epsilon >= 0 && epsilon < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, $"Label smoothing must be in [0, 1); found {epsilon}.");
        }
        long classes = logits.shape[^1];
        if (!logits.shape[..^1].SequenceEqual(targets.shape))
        {
            throw new ArgumentException(
                $"Expected targets of shape ({string.Join(", ", logits.shape[..^1])}) for logits ({string.Join(", ", logits.shape)}); found ({string.Join(", ", targets.shape)}).");
        }

        using var scope = NewDisposeScope();
        Tensor logProbs = F.log_softmax(logits.reshape(-1, classes).to(ScalarType.Float32), -1); // (N, K)
        Tensor flat = targets.reshape(-1);                                                     // (N)
        Tensor keep = flat.ne(ignoreIndex);
        Tensor safeTargets = flat.mul(keep.to(flat.dtype)).unsqueeze(1); // ignored targets read class 0, then count 0
        Tensor nll = logProbs.gather(1, safeTargets).squeeze(1).neg();                         // (N)
        Tensor perToken = epsilon > 0 ? nll.Times(1 - epsilon).add(logProbs.mean(new long[] { -1 }).neg().Times(epsilon)) : nll;
        if (weights is not null)
        {
            perToken = perToken.mul(weights.reshape(-1).to(perToken.dtype));
        }
        Tensor sum = perToken.mul(keep.to(perToken.dtype)).sum();
        Tensor count = keep.sum();
        return new LossSum(sum.MoveToOuterDisposeScope(), count.MoveToOuterDisposeScope());
    }

    /// <summary>The mean smoothed loss over non-ignored targets (0 when every target is ignored).</summary>
    public static Tensor Mean(Tensor logits, Tensor targets, double epsilon, long ignoreIndex = -100)
    {
        using LossSum loss = Sum(logits, targets, epsilon, ignoreIndex);
        return loss.Sum.div(loss.Count.clamp_min(1));
    }
}

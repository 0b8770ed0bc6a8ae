// AdamW (Loshchilov and Hutter 2019): Adam (Kingma and Ba 2015) with weight decay decoupled from the
// gradient. The paper trains with Adam, beta1 = 0.9, beta2 = 0.98, eps = 1e-9 (section 5.3): AdamW with
// weight decay 0. Written here, not taken from TorchSharp, so that its state (step, first and second
// moments) is plain named tensors that checkpoints store next to the weights and restore exactly.
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Transformers.ML.Core.Modules;

namespace Transformers.ML.Core.Training;

internal sealed class AdamW : IDisposable
{
    private readonly List<Slot> _slots;
    private readonly double _beta1;
    private readonly double _beta2;
    private readonly double _eps;
    private readonly double _weightDecay;

    /// <param name="decays">Which parameters get weight decay; default: matrices (dim >= 2), not biases or LayerNorm gains.</param>
    public AdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.01, Func<string, Parameter, bool>? decays = null)
    {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), $"Adam betas must be in [0, 1); found beta1={beta1}, beta2={beta2}.");
        }
        if (!(eps > 0) || !(weightDecay >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), $"Adam epsilon must be > 0 and weight decay >= 0; found eps={eps}, weight decay={weightDecay}.");
        }
        decays ??= (_, p) => p.dim() >= 2;
        _beta1 = beta1;
        _beta2 = beta2;
        _eps = eps;
        _weightDecay = weightDecay;
        _slots = parameters
            .Where(p => p.Parameter.requires_grad)
            .Select(p => new Slot(p.Name, p.Parameter, decays(p.Name, p.Parameter),
                zeros_like(p.Parameter).DetachFromDisposeScope(), zeros_like(p.Parameter).DetachFromDisposeScope()))
            .ToList();
    }

    /// <summary>Optimizer steps taken so far (t in the bias corrections).</summary>
    public long StepCount { get; private set; }

    public IEnumerable<Parameter> Parameters => _slots.Select(s => s.Parameter);

    public void ZeroGrad()
    {
        foreach (Slot slot in _slots)
        {
            slot.Parameter.grad?.zero_();
        }
    }

    /// <summary>One update with learning rate <paramref name="learningRate"/>; parameters without a gradient are left alone.</summary>
    public void Step(double learningRate)
    {
        StepCount++;
        double correction1 = 1 - Math.Pow(_beta1, StepCount);
        double correction2 = 1 - Math.Pow(_beta2, StepCount);
        double stepSize = learningRate / correction1;
        double sqrtCorrection2 = Math.Sqrt(correction2);

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (Slot slot in _slots)
        {
            Tensor? grad = slot.Parameter.grad;
            if (grad is null)
            {
                continue;
            }
            if (slot.Decays && _weightDecay > 0)
            {
                slot.Parameter.TimesInPlace(1 - learningRate * _weightDecay);
            }
            slot.ExpAvg.TimesInPlace(_beta1).add_(grad, alpha: 1 - _beta1);              // m = b1 m + (1 - b1) g
            slot.ExpAvgSq.TimesInPlace(_beta2).addcmul_(grad, grad, value: 1 - _beta2);  // v = b2 v + (1 - b2) g^2
            Tensor denominator = slot.ExpAvgSq.sqrt().OverInPlace(sqrtCorrection2).PlusInPlace(_eps);
            slot.Parameter.addcdiv_(slot.ExpAvg, denominator, value: -stepSize);  // p -= lr m_hat / (sqrt(v_hat) + eps)
        }
    }

    /// <summary>The moments as named tensors, for checkpoints ("exp_avg.NAME", "exp_avg_sq.NAME").</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (Slot slot in _slots)
        {
            yield return new($"exp_avg.{slot.Name}", slot.ExpAvg);
            yield return new($"exp_avg_sq.{slot.Name}", slot.ExpAvgSq);
        }
    }

    /// <summary>Restores the moments and step count saved by <see cref="StateTensors"/>.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, long stepCount, string source)
    {
        using var noGrad = no_grad();
        foreach (Slot slot in _slots)
        {
            foreach ((string key, Tensor target) in new[] { ($"exp_avg.{slot.Name}", slot.ExpAvg), ($"exp_avg_sq.{slot.Name}", slot.ExpAvgSq) })
            {
                if (!state.TryGetValue(key, out Tensor? saved) || !saved.shape.SequenceEqual(target.shape))
                {
                    throw new InvalidDataException($"'{source}' has no optimizer state '{key}' of shape ({string.Join(", ", target.shape)}); it was written for another model.");
                }
                target.copy_(saved);
            }
        }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (Slot slot in _slots)
        {
            slot.ExpAvg.Dispose();
            slot.ExpAvgSq.Dispose();
        }
        _slots.Clear();
    }

    private sealed record Slot(string Name, Parameter Parameter, bool Decays, Tensor ExpAvg, Tensor ExpAvgSq);
}

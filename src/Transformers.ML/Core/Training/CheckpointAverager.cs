// Checkpoint averaging (Vaswani et al. 2017, section 6.1: "a single model obtained by averaging the last 5
// checkpoints, which were written at 10-minute intervals"). The snapshots are spaced evenly over the last part of the
// planned steps and kept as one running mean, so memory is one copy of the weights whatever their number.
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

internal sealed class CheckpointAverager : IDisposable
{
    private readonly int _count;
    private readonly double _span;
    private Dictionary<string, Tensor>? _mean;

    /// <param name="count">Snapshots to average (at least 2 for any effect).</param>
    /// <param name="span">The fraction of the planned steps, at their end, that the snapshots are spread over.</param>
    public CheckpointAverager(int count, double span)
    {
        _count = count;
        _span = span;
    }

    /// <summary>Whether the options ask for averaging at all.</summary>
    public bool Enabled => _count >= 2;

    /// <summary>Snapshots in the mean.</summary>
    public int Taken { get; private set; }

    /// <summary>Steps of the snapshots in the mean.</summary>
    public List<long> Steps { get; } = new();

    /// <summary>Steps between snapshots for a plan of <paramref name="total"/> steps.</summary>
    public long Spacing(long total) => Math.Max(1, (long)Math.Floor(_span * total / _count));

    /// <summary>
    /// Whether <paramref name="step"/> is a snapshot step of a plan of <paramref name="total"/> steps. Before the first
    /// snapshot: the last step and the <c>count - 1</c> before it, a <see cref="Spacing"/> apart. After it, the snapshots
    /// still to take are spread evenly from the last one taken to the plan's last step, so a time budget's plan that moves
    /// once the snapshots have begun still gets <c>count</c> of them (no more; fewer only when the plan shrinks to fewer
    /// steps than are left to take), the last one at the last step. Without a move both rules give the same steps.
    /// </summary>
    public bool IsSnapshotStep(long step, long total)
    {
        if (!Enabled || step > total)
        {
            return false;
        }
        long before = total - step;
        if (Taken == 0)
        {
            long spacing = Spacing(total);
            return before % spacing == 0 && before / spacing < _count;
        }
        int remaining = _count - Taken;
        long last = Steps.Count > 0 ? Steps[^1] : 0;
        if (remaining <= 0 || step <= last)
        {
            return false;
        }
        long rest = Math.Max(1, (total - last) / remaining);
        return before % rest == 0 && before / rest < remaining;
    }

    /// <summary>
    /// After a plan's move to <paramref name="total"/> steps: drops the mean when its first snapshot now lies more than a
    /// <see cref="Spacing"/> before the span of the plan's last steps that the snapshots belong to, and the snapshots start
    /// again (those of the new plan's grid still ahead, then the rest spread to its end). A time budget's plan grows when
    /// the machine speeds up after a busy spell; the snapshots taken for the shorter plan are then early weights, at a
    /// higher learning rate. Measured: an example run whose cores a test run shared for its first half moved its plan from
    /// 1,461 to 1,884 steps after its first snapshot; three of its five were taken before the last quarter of the final
    /// plan, and the mean validated 3.4 % worse than the last weights (1.5 % or less in undisturbed runs).
    /// </summary>
    /// <param name="dropped">The steps of the dropped snapshots, for the log.</param>
    /// <returns>Whether the mean was dropped.</returns>
    public bool DropIfStale(long total, out IReadOnlyList<long> dropped)
    {
        dropped = Array.Empty<long>();
        if (Taken == 0 || Steps.Count == 0 || Steps[0] >= total - (long)Math.Ceiling(_span * total) - Spacing(total))
        {
            return false;
        }
        dropped = Steps.ToArray();
        DisposeMean();
        Taken = 0;
        Steps.Clear();
        return true;
    }

    /// <summary>Adds the model's current weights to the running mean (floating-point tensors; others keep their last value).</summary>
    public void Add(nn.Module model, long step)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Dictionary<string, Tensor> state = ModuleState.Of(model);
        if (_mean is null)
        {
            _mean = state.ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().MoveToOuterDisposeScope());
        }
        else
        {
            // mean += (w - mean) / (n + 1)
            double weight = 1.0 / (Taken + 1);
            foreach ((string name, Tensor value) in state)
            {
                Tensor mean = _mean[name];
                if (mean.is_floating_point())
                {
                    mean.add_(value.detach().sub(mean).Times(weight), Scalars.One);
                }
                else
                {
                    mean.copy_(value);
                }
            }
        }
        Taken++;
        Steps.Add(step);
    }

    /// <summary>Puts the mean into the model.</summary>
    public void LoadInto(nn.Module model)
    {
        if (_mean is null)
        {
            throw new InvalidOperationException("No checkpoint was averaged.");
        }
        ModelFile.LoadInto(model, _mean, "the averaged checkpoints");
    }

    /// <summary>Writes the running mean beside a checkpoint (so that a resumed run continues the same average).</summary>
    public void Save(string path)
    {
        if (_mean is null)
        {
            if (File.Exists(path))
            {
                File.Delete(path);
            }
            return;
        }
        SafeTensors.Write(path, _mean, new Dictionary<string, string>
        {
            ["taken"] = Taken.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["steps"] = string.Join(",", Steps),
        });
    }

    /// <summary>Reads a running mean written by <see cref="Save"/>; nothing when the file does not exist.</summary>
    public void Load(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }
        SafeTensorsReader file = SafeTensors.Open(path);
        DisposeMean();
        _mean = file.ReadAll();
        IReadOnlyDictionary<string, string> metadata = file.Metadata;
        Taken = metadata.TryGetValue("taken", out string? taken) && int.TryParse(taken, out int n) && n > 0
            ? n
            : throw new InvalidDataException($"'{path}' holds averaged weights without a valid 'taken' count.");
        Steps.Clear();
        if (metadata.TryGetValue("steps", out string? steps) && steps.Length > 0)
        {
            Steps.AddRange(steps.Split(',').Select(long.Parse));
        }
    }

    public void Dispose() => DisposeMean();

    private void DisposeMean()
    {
        if (_mean is not null)
        {
            foreach (Tensor t in _mean.Values)
            {
                t.Dispose();
            }
            _mean = null;
        }
    }
}

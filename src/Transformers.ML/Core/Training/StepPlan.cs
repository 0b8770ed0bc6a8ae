// How many optimizer steps a run takes. Without a time budget: every step of the planned epochs. With one
// (TrainingOptions.MaxTrainingTime), the throughput is measured over the first steps and the total is set so that the
// last step, and with it the end of the warmup + decay schedule, falls at the budget; the plan is checked again as the
// run goes (validation and a busy machine cost time too) and moved when the end would miss the budget. The run then
// ends its schedule instead of being cut in the middle of it.
namespace Transformers.ML.Core.Training;

internal sealed class StepPlan
{
    /// <summary>The plan aims at this fraction of the budget, leaving room for the last epoch's validation and the final steps.</summary>
    private const double Aim = 0.95;

    private readonly TimeSpan? _budget;
    private readonly long _cap;
    private readonly long _probeSteps;
    private long _probeStartStep = -1;
    private TimeSpan _probeStartTime;
    private long _nextCheck;

    /// <param name="cap">The most steps the run may take: the planned epochs' steps (without a budget).</param>
    /// <param name="resumed">The total of the run this one resumes, when it had a budget.</param>
    public StepPlan(TimeSpan? budget, long cap, long? resumed)
    {
        _budget = budget;
        _cap = cap;
        Total = resumed is long total ? Math.Min(total, cap) : cap;
        Measured = resumed is not null;
        _probeSteps = 10;
    }

    /// <summary>The planned number of optimizer steps.</summary>
    public long Total { get; private set; }

    /// <summary>True once the total comes from a measured throughput (always true without a budget).</summary>
    public bool Measured { get; private set; }

    /// <summary>Whether the plan follows a time budget.</summary>
    public bool HasBudget => _budget is not null;

    /// <summary>
    /// After each step: measures the throughput (from the third step, so that one-time costs are not counted), sets the
    /// total once enough steps are timed, and afterwards moves it when the end would fall outside [0.9, 1] x the budget.
    /// Returns true when <see cref="Total"/> changed.
    /// </summary>
    public bool AfterStep(long step, TimeSpan elapsed, bool force = false)
    {
        if (_budget is not TimeSpan budget)
        {
            return false;
        }
        if (_probeStartStep < 0)
        {
            if (step >= 2 || force)
            {
                _probeStartStep = step;
                _probeStartTime = elapsed;
            }
            return false;
        }
        long timed = step - _probeStartStep;
        if (!Measured)
        {
            if (timed < _probeSteps && !force)
            {
                return false;
            }
            Measured = true;
            return Replan(step, elapsed, budget, timed, initial: true);
        }
        return (force || step >= _nextCheck) && Replan(step, elapsed, budget, timed, initial: false);
    }

    private bool Replan(long step, TimeSpan elapsed, TimeSpan budget, long timed, bool initial)
    {
        double seconds = (elapsed - _probeStartTime).TotalSeconds;
        if (timed <= 0 || seconds <= 0)
        {
            return false;
        }
        double stepsPerSecond = timed / seconds;
        if (!initial)
        {
            double projectedEnd = elapsed.TotalSeconds + (Total - step) / stepsPerSecond;
            bool onTime = projectedEnd <= budget.TotalSeconds && projectedEnd >= 0.9 * budget.TotalSeconds;
            bool epochsEndFirst = projectedEnd < 0.9 * budget.TotalSeconds && Total >= _cap;
            if (onTime || epochsEndFirst)
            {
                _nextCheck = step + Math.Max(_probeSteps, Total / 20); // look again after another twentieth of the run
                return false;
            }
        }
        long fits = (long)Math.Floor(stepsPerSecond * (Aim * budget.TotalSeconds - elapsed.TotalSeconds));
        // However late the run is, the decay gets a few more steps to reach its end (the budget's slack pays for them).
        long tail = Math.Max(3, (step + Math.Max(fits, 0)) / 50);
        long total = Math.Clamp(step + Math.Max(fits, tail), step + 1, Math.Max(_cap, step + 1));
        bool changed = total != Total;
        Total = total;
        _nextCheck = step + Math.Max(_probeSteps, Total / 20);
        return changed;
    }

    /// <summary>The total to show in progress reports: the plan, or before the throughput is measured a rough projection.</summary>
    public long Shown(long step, TimeSpan elapsed) => Measured || _budget is not TimeSpan budget
        ? Total
        : elapsed > TimeSpan.Zero ? Math.Max(step, (long)(step * Aim * budget.TotalSeconds / elapsed.TotalSeconds)) : step;

    /// <summary>
    /// Warmup steps of the plan: the option's, but at most a fifth of the planned steps when a budget sets them, so that the
    /// decay has room. Not for the inverse square root schedule: its peak, scale / sqrt(d_model * warmup), would rise as the
    /// warmup shrinks (a 2.5-minute budget cut 400 to 59 steps and the model collapsed to the unigram distribution), and it
    /// has no end for the plan to meet.
    /// </summary>
    public int Warmup(int warmupSteps, LearningRateScheduleKind schedule) =>
        HasBudget && schedule != LearningRateScheduleKind.InverseSquareRoot ? (int)Math.Min(warmupSteps, Math.Max(1, Total / 5)) : warmupSteps;
}

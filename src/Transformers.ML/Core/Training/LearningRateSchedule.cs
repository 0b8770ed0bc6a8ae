namespace Transformers.ML.Core.Training;

/// <summary>A learning rate per optimizer step; steps count from 1.</summary>
internal abstract class LearningRateSchedule
{
    public abstract double At(long step);

    /// <summary>
    /// Where a schedule of another length, set at <paramref name="step"/> (a time budget's plan moved), takes over from
    /// this one so that the learning rate goes on from where it is; null where the new schedule starts afresh (no plan to
    /// follow: the inverse square root).
    /// </summary>
    public virtual ScheduleAnchor? AnchorAt(long step) => null;

    public static LearningRateSchedule Create(TrainingOptions options, int modelDimension, long totalSteps) =>
        Create(options, modelDimension, totalSteps, options.WarmupSteps);

    /// <summary>
    /// The schedule of <paramref name="options"/> over <paramref name="totalSteps"/> steps with <paramref name="warmupSteps"/>
    /// of warmup; with an <paramref name="anchor"/>, from the anchor's step on it goes on from the anchor's progress.
    /// </summary>
    public static LearningRateSchedule Create(TrainingOptions options, int modelDimension, long totalSteps, int warmupSteps, ScheduleAnchor? anchor = null) => options.Schedule switch
    {
        LearningRateScheduleKind.InverseSquareRoot => new InverseSquareRootSchedule(modelDimension, warmupSteps, options.LearningRateScale),
        LearningRateScheduleKind.WarmupCosine => new WarmupCosineSchedule(options.LearningRate, warmupSteps, totalSteps, options.LearningRate * options.MinLearningRateRatio, anchor),
        LearningRateScheduleKind.Constant => new WarmupCosineSchedule(options.LearningRate, warmupSteps, long.MaxValue, options.LearningRate, anchor),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Schedule, $"Unknown {nameof(TrainingOptions.Schedule)}."),
    };
}

/// <summary>lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5) (Vaswani et al. 2017, eq. 3).</summary>
internal sealed class InverseSquareRootSchedule(int modelDimension, int warmupSteps, double scale = 1.0) : LearningRateSchedule
{
    public override double At(long step)
    {
        step = Math.Max(step, 1);
        return scale * Math.Pow(modelDimension, -0.5) * Math.Min(Math.Pow(step, -0.5), step * Math.Pow(Math.Max(warmupSteps, 1), -1.5));
    }
}

/// <summary>
/// Where a schedule whose plan moved goes on from. Past the warmup: at <see cref="Step"/> the decay had come
/// <see cref="Progress"/> of the way (0 at the warmup's end, 1 at the last step). In the warmup: the learning rate there
/// was <see cref="Ramp"/> of the peak (<see cref="Progress"/> is then 0).
/// </summary>
internal sealed record ScheduleAnchor(long Step, double Progress, double? Ramp = null);

/// <summary>
/// peak * step / warmup during warmup; then min + (peak - min) * (1 + cos(pi * progress)) / 2 until totalSteps; then min.
/// The progress runs linearly from 0 after the warmup to 1 at totalSteps. With an anchor (a time budget's plan moved at
/// the anchor's step: the machine slowed down or sped up) the learning rate goes on from where it was:
/// <list type="bullet">
/// <item>Past the warmup, the decay goes on from the anchor's progress and closes the gap to the new plan's own progress
/// linearly: over a twentieth of the plan (the plan is checked that often) where the run is behind the new plan (it shrank:
/// the decay runs faster for a while), and where it is ahead (the plan grew) over as many steps as the plan takes to come
/// level, so that the learning rate holds instead of rising. A fresh cosine over the new total took 15 % off the learning
/// rate in one step in the main example, when the plan was cut from 3,286 to 3,105 steps at step 2,250; kept at the
/// anchor's pace to the end, the decay of a translation run whose plan fell to 1,683 steps early and ended at 2,035 had
/// 17 % less learning rate at step 1,000 than the cosine over 2,035 steps.</item>
/// <item>In the warmup, the ramp goes on from the anchor's learning rate to the peak, at the new warmup's end or, where
/// that would be steeper than the new plan's own ramp (the plan shrank), at that ramp's slope; the decay starts where the
/// ramp ends. A fresh ramp over each new warmup cut the learning rate by 11 % at step 83 of the translation example, when
/// the warmup of its plan grew from 285 to 322 steps.</item>
/// </list>
/// </summary>
internal sealed class WarmupCosineSchedule : LearningRateSchedule
{
    private readonly double _peak;
    private readonly int _warmupSteps;
    private readonly long _totalSteps;
    private readonly double _minimum;
    private readonly ScheduleAnchor? _anchor;

    public WarmupCosineSchedule(double peak, int warmupSteps, long totalSteps, double minimum, ScheduleAnchor? anchor = null)
    {
        _peak = peak;
        _warmupSteps = warmupSteps;
        _totalSteps = totalSteps;
        _minimum = minimum;
        _anchor = anchor;
        WarmupEnd = warmupSteps;
        if (anchor?.Ramp is double ramp)
        {
            // The rest of the ramp, (1 - ramp) of the peak, at most as steep as the new plan's ramp of peak / warmup a step.
            long atPlansSlope = anchor.Step + (long)Math.Ceiling((1 - ramp) * Math.Max(warmupSteps, 1) - 1e-9);
            WarmupEnd = ramp >= 1 ? anchor.Step : Math.Max(Math.Max(warmupSteps, atPlansSlope), anchor.Step + 1);
        }
    }

    /// <summary>The step at which the learning rate reaches the peak: the plan's warmup, or where a ramp continued from an anchor in the warmup ends.</summary>
    public long WarmupEnd { get; }

    public override double At(long step)
    {
        if (step >= _totalSteps)
        {
            return _minimum;
        }
        if (!Anchored(step))
        {
            return _warmupSteps > 0 && step <= _warmupSteps ? _peak * step / _warmupSteps : Cosine(Progress(step));
        }
        // Past the anchor: the rest of a ramp that moved, else the decay (the warmup is over, whatever the new plan's).
        return _anchor!.Ramp is double ramp && step < WarmupEnd
            ? _peak * (ramp + (1 - ramp) * (step - _anchor.Step) / (WarmupEnd - _anchor.Step))
            : Cosine(Progress(step));
    }

    public override ScheduleAnchor? AnchorAt(long step)
    {
        bool inRamp = Anchored(step) ? _anchor!.Ramp is not null && step < WarmupEnd : step < _warmupSteps;
        return inRamp ? new ScheduleAnchor(step, 0, At(step) / _peak) : new ScheduleAnchor(step, Progress(step));
    }

    /// <summary>Whether <paramref name="step"/> follows the anchor (the plan moved at or before it).</summary>
    private bool Anchored(long step) => _anchor is not null && step >= _anchor.Step;

    /// <summary>How far the decay has come at <paramref name="step"/> (past the warmup): 0 to 1.</summary>
    private double Progress(long step)
    {
        if (step >= _totalSteps)
        {
            return 1;
        }
        if (!Anchored(step))
        {
            return Planned(step, _warmupSteps);
        }
        if (_anchor!.Ramp is not null)
        {
            return Planned(step, WarmupEnd);
        }
        // A warmup the new plan would end after the anchor has already ended for this run: the decay starts at the anchor.
        long decayStart = Math.Min(_warmupSteps, _anchor.Step);
        double gap = _anchor.Progress - Planned(_anchor.Step, decayStart);
        double span = Math.Max(_totalSteps / 20.0, gap > 0 ? gap * (_totalSteps - decayStart) : 0);
        span = Math.Clamp(Math.Ceiling(span), 1, Math.Max(_totalSteps - _anchor.Step, 1));
        return Planned(step, decayStart) + gap * Math.Max(0, 1 - (step - _anchor.Step) / span);
    }

    /// <summary>The plan's own progress at <paramref name="step"/> for a decay from <paramref name="decayStart"/> to the last step.</summary>
    private double Planned(long step, long decayStart) => Math.Clamp((double)(step - decayStart) / Math.Max(_totalSteps - decayStart, 1), 0, 1);

    private double Cosine(double progress) => _minimum + (_peak - _minimum) * 0.5 * (1 + Math.Cos(Math.PI * progress));
}

namespace Transformers.ML.Core.Training;

/// <summary>A learning rate per optimizer step; steps count from 1.</summary>
internal abstract class LearningRateSchedule
{
    public abstract double At(long step);

    /// <summary>
    /// Where a schedule of another length, set at <paramref name="step"/> (a time budget's plan moved), takes over from
    /// this one so that the learning rate goes on from where it is; null where the new schedule starts afresh (no end to
    /// move, or still in the warmup).
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
        LearningRateScheduleKind.Constant => new WarmupCosineSchedule(options.LearningRate, warmupSteps, long.MaxValue, options.LearningRate),
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
/// Where a decay whose plan moved goes on from: at <see cref="Step"/> it had come <see cref="Progress"/> of the way (0 at
/// the warmup's end, 1 at the last step).
/// </summary>
internal sealed record ScheduleAnchor(long Step, double Progress);

/// <summary>
/// peak * step / warmup during warmup; then min + (peak - min) * (1 + cos(pi * progress)) / 2 until totalSteps; then min.
/// The progress runs linearly from 0 after the warmup to 1 at totalSteps. With an anchor (a time budget's plan moved at
/// the anchor's step: the machine slowed down or sped up) it goes on from the anchor's progress and closes the gap to the
/// new plan's own progress linearly: over a twentieth of the plan (the plan is checked that often) where the run is
/// behind the new plan (it shrank: the decay runs faster for a while), and where it is ahead (the plan grew) over as
/// many steps as the plan takes to come level, so that the learning rate holds instead of rising. So a moved plan never
/// jumps the learning rate (a fresh cosine over the new total took 15 % off it in one step in the main example, when the
/// plan was cut from 3,286 to 3,105 steps at step 2,250), and a plan wrong early on is not followed to the end (kept at
/// the anchor's pace to the end, the decay of a translation run whose plan fell to 1,683 steps early and ended at 2,035
/// had 17 % less learning rate at step 1,000 than the cosine over 2,035 steps).
/// </summary>
internal sealed class WarmupCosineSchedule(double peak, int warmupSteps, long totalSteps, double minimum, ScheduleAnchor? anchor = null) : LearningRateSchedule
{
    public override double At(long step)
    {
        if (step >= totalSteps)
        {
            return minimum;
        }
        bool anchored = anchor is not null && step >= anchor.Step; // past the anchor the warmup is over, whatever the new plan's
        return !anchored && warmupSteps > 0 && step <= warmupSteps ? peak * step / warmupSteps : Cosine(Progress(step));
    }

    public override ScheduleAnchor? AnchorAt(long step) =>
        anchor is not null && step >= anchor.Step || step >= warmupSteps ? new ScheduleAnchor(step, Progress(step)) : null;

    /// <summary>How far the decay has come at <paramref name="step"/> (past the warmup): 0 to 1.</summary>
    private double Progress(long step)
    {
        if (step >= totalSteps)
        {
            return 1;
        }
        if (anchor is null || step < anchor.Step)
        {
            return Planned(step, warmupSteps);
        }
        // A warmup the new plan would end after the anchor has already ended for this run: the decay starts at the anchor.
        long decayStart = Math.Min(warmupSteps, anchor.Step);
        double gap = anchor.Progress - Planned(anchor.Step, decayStart);
        double span = Math.Max(totalSteps / 20.0, gap > 0 ? gap * (totalSteps - decayStart) : 0);
        span = Math.Clamp(Math.Ceiling(span), 1, Math.Max(totalSteps - anchor.Step, 1));
        return Planned(step, decayStart) + gap * Math.Max(0, 1 - (step - anchor.Step) / span);
    }

    /// <summary>The plan's own progress at <paramref name="step"/> for a decay from <paramref name="decayStart"/> to the last step.</summary>
    private double Planned(long step, long decayStart) => Math.Clamp((double)(step - decayStart) / Math.Max(totalSteps - decayStart, 1), 0, 1);

    private double Cosine(double progress) => minimum + (peak - minimum) * 0.5 * (1 + Math.Cos(Math.PI * progress));
}

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
/// Where a decay whose end moved goes on: at <see cref="Step"/> it had come <see cref="Progress"/> of the way (0 at the
/// warmup's end, 1 at the last step).
/// </summary>
internal sealed record ScheduleAnchor(long Step, double Progress);

/// <summary>
/// peak * step / warmup during warmup; then min + (peak - min) * (1 + cos(pi * progress)) / 2 until totalSteps; then min.
/// The progress runs linearly from 0 after the warmup to 1 at totalSteps, or, with an anchor, from the anchor's progress
/// at its step to 1 at totalSteps: a time budget whose plan moves mid-run (the machine slowed down) changes how fast the
/// rest decays, never the learning rate of the step (without the anchor a plan cut from 3,286 to 3,105 steps at step
/// 2,250 took 15 % off it in one step).
/// </summary>
internal sealed class WarmupCosineSchedule(double peak, int warmupSteps, long totalSteps, double minimum, ScheduleAnchor? anchor = null) : LearningRateSchedule
{
    public override double At(long step)
    {
        if (step >= totalSteps)
        {
            return minimum;
        }
        if (anchor is not null && step >= anchor.Step)
        {
            return Cosine(Progress(step));
        }
        if (warmupSteps > 0 && step <= warmupSteps)
        {
            return peak * step / warmupSteps;
        }
        return Cosine(Progress(step));
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
        return anchor is not null && step >= anchor.Step
            ? anchor.Progress + (1 - anchor.Progress) * (step - anchor.Step) / (totalSteps - anchor.Step)
            : Math.Max(0, (double)(step - warmupSteps) / Math.Max(totalSteps - warmupSteps, 1));
    }

    private double Cosine(double progress) => minimum + (peak - minimum) * 0.5 * (1 + Math.Cos(Math.PI * progress));
}

namespace Transformers.ML.Core.Training;

/// <summary>A learning rate per optimizer step; steps count from 1.</summary>
internal abstract class LearningRateSchedule
{
    public abstract double At(long step);

    public static LearningRateSchedule Create(TrainingOptions options, int modelDimension, long totalSteps) =>
        Create(options, modelDimension, totalSteps, options.WarmupSteps);

    /// <summary>The schedule of <paramref name="options"/> over <paramref name="totalSteps"/> steps with <paramref name="warmupSteps"/> of warmup.</summary>
    public static LearningRateSchedule Create(TrainingOptions options, int modelDimension, long totalSteps, int warmupSteps) => options.Schedule switch
    {
        LearningRateScheduleKind.InverseSquareRoot => new InverseSquareRootSchedule(modelDimension, warmupSteps, options.LearningRateScale),
        LearningRateScheduleKind.WarmupCosine => new WarmupCosineSchedule(options.LearningRate, warmupSteps, totalSteps, options.LearningRate * options.MinLearningRateRatio),
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

/// <summary>peak * step / warmup during warmup; then min + (peak - min) * (1 + cos(pi * progress)) / 2 until totalSteps; then min.</summary>
internal sealed class WarmupCosineSchedule(double peak, int warmupSteps, long totalSteps, double minimum) : LearningRateSchedule
{
    public override double At(long step)
    {
        if (warmupSteps > 0 && step <= warmupSteps)
        {
            return peak * step / warmupSteps;
        }
        if (step >= totalSteps)
        {
            return minimum;
        }
        double progress = (double)(step - warmupSteps) / Math.Max(totalSteps - warmupSteps, 1);
        return minimum + (peak - minimum) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}

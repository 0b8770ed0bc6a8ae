namespace Transformers.ML;

/// <summary>How the learning rate changes over the optimizer steps.</summary>
public enum LearningRateScheduleKind
{
    /// <summary>The paper's schedule (section 5.3): lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).</summary>
    InverseSquareRoot,

    /// <summary>Linear warmup from 0 to the peak learning rate, then cosine decay to the minimum at the last step.</summary>
    WarmupCosine,

    /// <summary>Linear warmup to the peak learning rate, then constant.</summary>
    Constant,
}

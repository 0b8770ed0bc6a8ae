namespace Transformers.ML;

/// <summary>What a progress report is about.</summary>
public enum TrainingProgressKind
{
    /// <summary>Every <see cref="TrainingOptions.LogEverySteps"/> optimizer steps, and the last step of a run that MaxSteps, the time budget or cancellation stopped.</summary>
    Step,

    /// <summary>After an epoch, with the validation metric and sample when the trainer has them.</summary>
    EpochEnd,
}

/// <summary>A snapshot of training, sent to <see cref="TrainingOptions.Progress"/> and to ML.NET's log.</summary>
public sealed record TrainingProgress
{
    /// <summary>Why this report was sent.</summary>
    public required TrainingProgressKind Kind { get; init; }

    /// <summary>Current epoch, 1-based.</summary>
    public required int Epoch { get; init; }

    /// <summary>Epochs planned.</summary>
    public required int Epochs { get; init; }

    /// <summary>Optimizer steps taken so far.</summary>
    public required long Step { get; init; }

    /// <summary>Optimizer steps planned for the whole run.</summary>
    public required long TotalSteps { get; init; }

    /// <summary>
    /// Mean training loss per target: of the steps since the previous step report (an epoch's end does not cut that window,
    /// so each step report covers <see cref="TrainingOptions.LogEverySteps"/> steps), or of the epoch for an epoch's report.
    /// </summary>
    public required double Loss { get; init; }

    /// <summary>Learning rate of the latest step.</summary>
    public required double LearningRate { get; init; }

    /// <summary>Training throughput over the same steps as <see cref="Loss"/>, in <see cref="ThroughputUnit"/> per second, validation's time left out.</summary>
    public required double Throughput { get; init; }

    /// <summary>What <see cref="Throughput"/> counts: "tokens" or "samples".</summary>
    public required string ThroughputUnit { get; init; }

    /// <summary>Wall-clock time since training started (this process).</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Estimated time to the end of the planned steps; null when unknown.</summary>
    public TimeSpan? Remaining { get; init; }

    /// <summary>Name of the validation metric (epoch reports only), e.g. "loss" or "accuracy".</summary>
    public string? ValidationMetric { get; init; }

    /// <summary>Value of the validation metric (epoch reports only).</summary>
    public double? ValidationValue { get; init; }

    /// <summary>A sample of the model's output (e.g. generated text) after the epoch, when the trainer makes one.</summary>
    public string? Sample { get; init; }

    /// <inheritdoc />
    public override string ToString()
    {
        string text = $"epoch {Epoch}/{Epochs} step {Step}/{TotalSteps} loss {Loss:F4} lr {LearningRate:E2} {Throughput:F0} {ThroughputUnit}/s elapsed {Elapsed:hh\\:mm\\:ss}";
        if (Remaining is TimeSpan remaining)
        {
            text += $" eta {remaining:hh\\:mm\\:ss}";
        }
        if (ValidationValue is double value)
        {
            text += $" validation {ValidationMetric} {value:F4}";
        }
        return text;
    }
}

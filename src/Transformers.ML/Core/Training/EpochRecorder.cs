namespace Transformers.ML.Core.Training;

/// <summary>Keeps the end-of-epoch reports (for a model's EpochReports) and passes every report on to the user's callback.</summary>
internal sealed class EpochRecorder(IProgress<TrainingProgress>? inner) : IProgress<TrainingProgress>
{
    public List<TrainingProgress> Epochs { get; } = new();

    public void Report(TrainingProgress value)
    {
        if (value.Kind == TrainingProgressKind.EpochEnd)
        {
            Epochs.Add(value);
        }
        inner?.Report(value);
    }
}

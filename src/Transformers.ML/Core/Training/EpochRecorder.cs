namespace Transformers.ML.Core.Training;

/// <summary>
/// Keeps the reports of a run (for a model's TrainingReports and EpochReports), passes every one on to the user's callback,
/// and, with <see cref="TrainingOptions.CurvesPath"/>, redraws the training curves after every epoch.
/// </summary>
internal sealed class EpochRecorder(IProgress<TrainingProgress>? inner, string? curvesPath = null, string? title = null) : IProgress<TrainingProgress>
{
    public List<TrainingProgress> Epochs { get; } = new();

    public List<TrainingProgress> All { get; } = new();

    public void Report(TrainingProgress value)
    {
        All.Add(value);
        if (value.Kind == TrainingProgressKind.EpochEnd)
        {
            Epochs.Add(value);
            if (curvesPath is not null)
            {
                Charts.SaveTrainingCurves(All, curvesPath, title);
            }
        }
        inner?.Report(value);
    }
}

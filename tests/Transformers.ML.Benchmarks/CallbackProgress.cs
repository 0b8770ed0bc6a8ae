using Transformers.ML.Core.Training;

namespace Transformers.ML.Benchmarks;

/// <summary>Reports progress synchronously to a callback (System.Progress posts to the thread pool, which would race the measurement).</summary>
internal sealed class CallbackProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value) => report(value);
}

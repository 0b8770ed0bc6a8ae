using Microsoft.ML.Runtime;

namespace Transformers.ML.Core.Training;

/// <summary>
/// Sends training progress where an ML.NET user looks for it: the <see cref="TrainingOptions.Progress"/> callback,
/// ML.NET's log (<c>MLContext.Log</c>, through a channel of the context) and ML.NET's progress channel.
/// </summary>
internal sealed class TrainingReporter : IDisposable
{
    private readonly IChannel? _channel;
    private readonly IProgressChannel? _progressChannel;
    private readonly IProgress<TrainingProgress>? _progress;
    private TrainingProgress? _latest;

    /// <param name="host">The MLContext (or any ML.NET host); null when training outside ML.NET.</param>
    public TrainingReporter(object? host, string name, IProgress<TrainingProgress>? progress)
    {
        _progress = progress;
        _channel = (host as IChannelProvider)?.Start(name);
        _progressChannel = (host as IProgressChannelProvider)?.StartProgressChannel(name);
        _progressChannel?.SetHeader(new ProgressHeader(new[] { "loss", "learning rate", "throughput" }, new[] { "step", "epoch" }), entry =>
        {
            if (_latest is { } p)
            {
                entry.SetProgress(0, p.Step, p.TotalSteps);
                entry.SetProgress(1, p.Epoch, p.Epochs);
                entry.SetMetric(0, p.Loss);
                entry.SetMetric(1, p.LearningRate);
                entry.SetMetric(2, p.Throughput);
            }
        });
    }

    public void Report(TrainingProgress progress)
    {
        _latest = progress;
        _progress?.Report(progress);
        _channel?.Info(MessageSensitivity.None, progress.ToString());
        if (progress.Sample is not null)
        {
            _channel?.Info(MessageSensitivity.None, $"sample after epoch {progress.Epoch}: {progress.Sample}");
        }
        _progressChannel?.Checkpoint(progress.Loss, progress.LearningRate, progress.Throughput);
    }

    /// <summary>
    /// A log for after training (a trained model's warnings, such as a cropped prompt): each message goes to
    /// ML.NET's log through a channel of its own, so it outlives this reporter.
    /// </summary>
    public static Action<string>? LogTo(object? host, string name)
    {
        if (host is not IChannelProvider provider)
        {
            return null;
        }
        return message =>
        {
            using IChannel channel = provider.Start(name);
            channel.Warning(MessageSensitivity.None, message);
        };
    }

    public void Info(string message) => _channel?.Info(MessageSensitivity.None, message);

    public void Warning(string message) => _channel?.Warning(MessageSensitivity.None, message);

    public void Dispose()
    {
        _progressChannel?.Dispose();
        _channel?.Dispose();
    }
}

using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

/// <summary>What every trainer does before it builds its model: threads, seed, device.</summary>
internal static class TrainingSetup
{
    /// <summary>
    /// Validates the options, applies <see cref="TrainingOptions.CpuThreads"/>, seeds libtorch with
    /// <see cref="TrainingOptions.Seed"/> (so that weight initialisation is reproducible; the training loop
    /// reseeds every step for dropout) and resolves <see cref="TrainingOptions.Device"/>.
    /// Build the model after this call, then move it to the returned device.
    /// </summary>
    public static Device Prepare(TrainingOptions options, TrainingReporter? reporter = null)
    {
        options.Validate();
        options.Cancellation.ThrowIfCancellationRequested();
        if (options.CpuThreads is int threads)
        {
            set_num_threads(threads);
        }
        manual_seed(options.Seed);
        Device device = DeviceSelector.Resolve(options.Device, options.AllowCpuFallback, message => reporter?.Warning(message));
        reporter?.Info($"Training on {device} with seed {options.Seed} and {get_num_threads()} CPU threads.");
        return device;
    }
}

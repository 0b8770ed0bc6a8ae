using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

/// <summary>What every trainer does before it builds its model: threads, device, and the seeding of libtorch's generator.</summary>
internal static class TrainingSetup
{
    /// <summary>
    /// Validates the options, applies <see cref="TrainingOptions.CpuThreads"/> and resolves <see cref="TrainingOptions.Device"/>.
    /// Then build the model with <see cref="Seeded"/> (which seeds libtorch with <see cref="TrainingOptions.Seed"/>, so that
    /// weight initialisation is reproducible; the training loop reseeds every step for dropout) and move it to the returned device.
    /// </summary>
    public static Device Prepare(TrainingOptions options, TrainingReporter? reporter = null)
    {
        options.Validate();
        options.Cancellation.ThrowIfCancellationRequested();
        if (options.CpuThreads is int threads)
        {
            set_num_threads(threads);
        }
        Device device = DeviceSelector.Resolve(options.Device, options.AllowCpuFallback, message => reporter?.Warning(message));
        reporter?.Info($"Training on {device} with seed {options.Seed} and {get_num_threads()} CPU threads.");
        return device;
    }

    /// <summary>Held while libtorch's one generator is seeded, and while a model is built from it.</summary>
    private static readonly object Seeding = new();

    /// <summary>
    /// Builds a model with libtorch's generator seeded by <see cref="TrainingOptions.Seed"/>, holding a process-wide lock
    /// that <see cref="Reseed"/> takes too, so that a Fit on another thread can neither build its model nor reseed the
    /// generator for its next step in between: Fits that run at the same time start from the weights that each would
    /// start from alone. (Their dropout and augmentation still draw from the one generator during their steps.)
    /// </summary>
    public static T Seeded<T>(TrainingOptions options, Func<T> build)
    {
        lock (Seeding)
        {
            manual_seed(options.Seed);
            return build();
        }
    }

    /// <summary>Seeds libtorch's generator, not while another thread builds a model (<see cref="Seeded"/>).</summary>
    public static void Reseed(long seed)
    {
        lock (Seeding)
        {
            manual_seed(seed);
        }
    }
}

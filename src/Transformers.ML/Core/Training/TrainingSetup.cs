using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

/// <summary>What every trainer does before it builds its model: threads, device, and the seeding of libtorch's generator.</summary>
internal static class TrainingSetup
{
    /// <summary>
    /// Validates the options, applies <see cref="TrainingOptions.CpuThreads"/> and resolves <see cref="TrainingOptions.Device"/>.
    /// Then build the model with <see cref="Seeded"/> (which seeds libtorch with <see cref="TrainingOptions.Seed"/>, so that
    /// weight initialisation is reproducible; the training loop's steps draw from a generator of their own) and move it to
    /// the returned device.
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

    /// <summary>Held while libtorch's one generator is seeded and a model is built from it.</summary>
    private static readonly object Seeding = new();

    /// <summary>
    /// Builds a model with libtorch's generator seeded by <see cref="TrainingOptions.Seed"/>, holding a process-wide lock,
    /// so that a Fit on another thread cannot build its model from the generator in between: Fits that run at the same
    /// time start from the weights that each would start from alone. Their steps draw from generators of their own
    /// (<see cref="Modules.StepRandom"/>), so they also take the steps each would take alone (on the CPU; on a CUDA
    /// device dropout still draws from libtorch's generator, <see cref="Reseed"/>).
    /// </summary>
    public static T Seeded<T>(TrainingOptions options, Func<T> build)
    {
        lock (Seeding)
        {
            manual_seed(options.Seed);
            return build();
        }
    }

    /// <summary>
    /// Seeds libtorch's generator, not while another thread builds a model (<see cref="Seeded"/>): the training loop's
    /// steps on a device other than the CPU, whose dropout draws from it.
    /// </summary>
    public static void Reseed(long seed)
    {
        lock (Seeding)
        {
            manual_seed(seed);
        }
    }
}

using System.Text.Json.Serialization;
using Transformers.ML.Core.Training;

namespace Transformers.ML;

/// <summary>
/// How a Transformer is trained: optimizer (AdamW), learning-rate schedule, gradient clipping and accumulation,
/// seeding, device, checkpoints, early stopping and progress. Every trainer of this library takes these.
/// </summary>
public class TrainingOptions
{
    /// <summary>Passes over the training data when there is no <see cref="MaxTrainingTime"/> (a time budget plans the passes itself). Range 1..100000; default 10.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Stop after this many optimizer steps (counted across epochs); null for no limit (default).</summary>
    public long? MaxSteps { get; set; }

    /// <summary>
    /// A time budget for training: the throughput is measured over the first steps and the number of optimizer steps (and
    /// so of epochs; <see cref="Epochs"/> is then not used) is planned so that the warmup and the decay of the schedule end
    /// when the budget does; the plan is checked as the run goes and moved when validation or a busy machine would make it
    /// miss; a moved plan changes how fast the rest of the decay goes, not the learning rate where it moved. Progress
    /// reports show the planned total. A run that overruns the budget by a tenth is stopped (with a
    /// checkpoint). With a budget, the warmup is at most a fifth of the planned steps (except with the inverse square root
    /// schedule, whose peak would rise as the warmup shrinks). Null: no budget (default).
    /// </summary>
    public TimeSpan? MaxTrainingTime { get; set; }

    /// <summary>Peak learning rate of <see cref="LearningRateScheduleKind.WarmupCosine"/> and <see cref="LearningRateScheduleKind.Constant"/>. Range (0, 10]; default 3e-4.</summary>
    public double LearningRate { get; set; } = 3e-4;

    /// <summary>Multiplier of the <see cref="LearningRateScheduleKind.InverseSquareRoot"/> formula (the paper uses 1). Range (0, 1000]; default 1.</summary>
    public double LearningRateScale { get; set; } = 1.0;

    /// <summary>Learning-rate schedule. Default <see cref="LearningRateScheduleKind.WarmupCosine"/>.</summary>
    public LearningRateScheduleKind Schedule { get; set; } = LearningRateScheduleKind.WarmupCosine;

    /// <summary>Warmup steps of every schedule (the paper: 4000). Range 0..10^9; default 100.</summary>
    public int WarmupSteps { get; set; } = 100;

    /// <summary>Learning rate at the end of the cosine decay, as a fraction of the peak. Range [0, 1]; default 0.1.</summary>
    public double MinLearningRateRatio { get; set; } = 0.1;

    /// <summary>
    /// The final weights are the mean of this many snapshots taken evenly over the last <see cref="AveragingSpan"/> of the
    /// planned steps, the last one at the last step (Vaswani et al. 2017, section 6.1: "averaging the last 5 checkpoints");
    /// with validation data the log gives the validation metric of the last weights and of the mean. When a time budget's
    /// plan moves after the first snapshot, the snapshots still to take are spread from the last one to the new last step,
    /// so the mean has this many (fewer only when the plan is cut to fewer steps than are left to take); when it grows so
    /// far that the first snapshot falls more than a snapshot's spacing before the new plan's span (a busy spell ended),
    /// the mean is dropped and the snapshots start again, which the log says. The running mean
    /// costs one copy of the weights; it is saved beside a checkpoint so that a resumed run continues it. 1: no averaging
    /// (default). Range 1..1000.
    /// </summary>
    public int AveragedCheckpoints { get; set; } = 1;

    /// <summary>The fraction of the planned steps, at their end, that <see cref="AveragedCheckpoints"/> spreads its snapshots over. Range (0, 1]; default 0.2.</summary>
    public double AveragingSpan { get; set; } = 0.2;

    /// <summary>Decoupled weight decay of AdamW, applied to weight matrices only. Range [0, 1); default 0.01.</summary>
    public double WeightDecay { get; set; } = 0.01;

    /// <summary>Adam beta1. Range [0, 1); default 0.9.</summary>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>Adam beta2 (the paper: 0.98). Range [0, 1); default 0.98.</summary>
    public double Beta2 { get; set; } = 0.98;

    /// <summary>Adam epsilon (the paper: 1e-9). Range (0, 1); default 1e-9.</summary>
    public double AdamEpsilon { get; set; } = 1e-9;

    /// <summary>Largest global L2 norm of the gradient; larger gradients are scaled down. 0 turns clipping off; default 1.</summary>
    public double GradientClipNorm { get; set; } = 1.0;

    /// <summary>Batches whose gradients are summed before each optimizer step. Range 1..10000; default 1.</summary>
    public int GradientAccumulationSteps { get; set; } = 1;

    /// <summary>
    /// Seed of weight initialisation, data order and every random draw of the steps (dropout, image augmentation,
    /// masked-autoencoder masks): the same seed gives the same run, also while other Fits run on other threads, since
    /// each step draws from its run's own generator. On a CUDA device dropout draws from libtorch's one generator
    /// (TorchSharp makes CPU generators only): there runs beside each other with dropout do not repeat exactly. Default 1.
    /// </summary>
    public int Seed { get; set; } = 1;

    /// <summary>"auto" (CUDA when available, else CPU; default), "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; set; } = "auto";

    /// <summary>When <see cref="Device"/> asks for CUDA and none is available: fall back to the CPU with a warning (true) or fail (false, default).</summary>
    public bool AllowCpuFallback { get; set; }

    /// <summary>
    /// Precision of the training passes: <see cref="TrainingPrecision.Float32"/> (default) or mixed
    /// <see cref="TrainingPrecision.BFloat16"/> (the Transformer blocks' linear layers and attention products multiply in
    /// bfloat16, as under torch.autocast; weights, optimizer state, softmax, normalisation and loss stay float32).
    /// Inference is always float32.
    /// </summary>
    public TrainingPrecision Precision { get; set; } = TrainingPrecision.Float32;

    /// <summary>
    /// CPU threads libtorch may use; null keeps libtorch's default (all cores). libtorch has one such setting per process:
    /// it applies to everything running in the process, and of Fits started at the same time the last to start sets it.
    /// </summary>
    public int? CpuThreads { get; set; }

    /// <summary>File to write checkpoints to (weights, optimizer state, position in the data); null for none (default).</summary>
    public string? CheckpointPath { get; set; }

    /// <summary>Also write a checkpoint every this many optimizer steps (a checkpoint is always written after each epoch). 0: epochs only (default).</summary>
    public int CheckpointEverySteps { get; set; }

    /// <summary>When <see cref="CheckpointPath"/> exists, continue from it instead of starting again. Default true.</summary>
    public bool ResumeFromCheckpoint { get; set; } = true;

    /// <summary>Stop after this many epochs without improvement of the validation metric; null turns early stopping off (default).</summary>
    public int? EarlyStoppingPatience { get; set; }

    /// <summary>Smallest change of the validation metric that counts as an improvement. Range [0, inf); default 0.</summary>
    public double EarlyStoppingMinDelta { get; set; }

    /// <summary>At the end of training, put back the weights of the best validation epoch. Default true.</summary>
    public bool RestoreBestWeights { get; set; } = true;

    /// <summary>Report progress every this many optimizer steps (and at the end of every epoch). Range 1..10^9; default 50.</summary>
    public int LogEverySteps { get; set; } = 50;

    /// <summary>
    /// A PNG file for the training curves (training loss and validation metric against steps and minutes, learning rate against
    /// steps), redrawn after every epoch, with the numbers in a CSV of the same name beside it; null: none (default).
    /// Points come every <see cref="LogEverySteps"/> steps.
    /// </summary>
    public string? CurvesPath { get; set; }

    /// <summary>Receives a <see cref="TrainingProgress"/> every <see cref="LogEverySteps"/> steps and after each epoch; null for none.</summary>
    [JsonIgnore]
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>
    /// Cancels Fit: checked after every optimizer step and while the data is read and prepared (rows, tokenizer, token
    /// shards, images). Fit then throws <see cref="OperationCanceledException"/>, after writing a checkpoint when
    /// <see cref="CheckpointPath"/> is set, so that a Fit with the same options and data continues where it stopped. To end
    /// early and keep the model, set <see cref="MaxTrainingTime"/> or <see cref="MaxSteps"/> instead. Default: none.
    /// </summary>
    [JsonIgnore]
    public CancellationToken Cancellation { get; set; }

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the first invalid one with the value found and the range expected.</summary>
    public virtual void Validate()
    {
        Check(Epochs is >= 1 and <= 100000, nameof(Epochs), Epochs, "[1, 100000]");
        Check(MaxSteps is null or >= 1, nameof(MaxSteps), MaxSteps, ">= 1 or null");
        Check(MaxTrainingTime is null || MaxTrainingTime > TimeSpan.Zero, nameof(MaxTrainingTime), MaxTrainingTime, "> 0 or null");
        Check(LearningRate > 0 && LearningRate <= 10, nameof(LearningRate), LearningRate, "(0, 10]");
        Check(LearningRateScale > 0 && LearningRateScale <= 1000, nameof(LearningRateScale), LearningRateScale, "(0, 1000]");
        Check(Enum.IsDefined(Schedule), nameof(Schedule), Schedule, string.Join(", ", Enum.GetNames<LearningRateScheduleKind>()));
        Check(Enum.IsDefined(Precision), nameof(Precision), Precision, string.Join(", ", Enum.GetNames<TrainingPrecision>()));
        Check(WarmupSteps is >= 0 and <= 1_000_000_000, nameof(WarmupSteps), WarmupSteps, "[0, 10^9]");
        Check(Schedule != LearningRateScheduleKind.InverseSquareRoot || WarmupSteps >= 1, nameof(WarmupSteps), WarmupSteps, ">= 1 with the inverse square root schedule");
        Check(MinLearningRateRatio is >= 0 and <= 1, nameof(MinLearningRateRatio), MinLearningRateRatio, "[0, 1]");
        Check(AveragedCheckpoints is >= 1 and <= 1000, nameof(AveragedCheckpoints), AveragedCheckpoints, "[1, 1000]");
        Check(AveragingSpan is > 0 and <= 1, nameof(AveragingSpan), AveragingSpan, "(0, 1]");
        Check(WeightDecay is >= 0 and < 1, nameof(WeightDecay), WeightDecay, "[0, 1)");
        Check(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "[0, 1)");
        Check(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "[0, 1)");
        Check(AdamEpsilon is > 0 and < 1, nameof(AdamEpsilon), AdamEpsilon, "(0, 1)");
        Check(GradientClipNorm >= 0 && !double.IsNaN(GradientClipNorm), nameof(GradientClipNorm), GradientClipNorm, ">= 0");
        Check(GradientAccumulationSteps is >= 1 and <= 10000, nameof(GradientAccumulationSteps), GradientAccumulationSteps, "[1, 10000]");
        Check(CpuThreads is null or >= 1, nameof(CpuThreads), CpuThreads, ">= 1 or null");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), CheckpointEverySteps, ">= 0");
        Check(EarlyStoppingPatience is null or >= 1, nameof(EarlyStoppingPatience), EarlyStoppingPatience, ">= 1 or null");
        Check(EarlyStoppingMinDelta >= 0, nameof(EarlyStoppingMinDelta), EarlyStoppingMinDelta, ">= 0");
        Check(LogEverySteps >= 1, nameof(LogEverySteps), LogEverySteps, ">= 1");
        DeviceSelector.Parse(Device);
    }

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the option when <paramref name="ok"/> is false.</summary>
    protected static void Check(bool ok, string option, object? found, string expected)
    {
        if (!ok)
        {
            throw new ArgumentOutOfRangeException(option, found, $"Option {option} must be {expected}; found {found?.ToString() ?? "null"}.");
        }
    }
}

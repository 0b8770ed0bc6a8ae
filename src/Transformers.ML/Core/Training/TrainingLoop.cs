// The training loop every trainer of the library runs: batches planned per epoch from a seeded
// random source, gradient accumulation, clipping, AdamW with a learning-rate schedule, validation
// with early stopping, progress reports, and checkpoints from which a run resumes exactly.
//
// Exact resumption rests on two rules: the batches of epoch e depend only on (seed, e), and the
// random state of step s (dropout, augmentation, masks) is set from (seed, s) before the step. So a
// checkpoint needs only the weights, the optimizer moments and (epoch, batch, step), not a generator's
// state. That random state is the run's own generator, set for the step on the loop's thread
// (StepRandom), so Fits on other threads neither change nor see it. (On a CUDA device dropout draws
// from libtorch's generator, seeded from (seed, s) too: TorchSharp makes CPU generators only.)
using TorchSharp;
using TorchSharp.Modules;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

/// <summary>What a capability supplies to the training loop.</summary>
internal interface ITrainingTask<TBatch>
{
    /// <summary>What the throughput counts: "tokens" or "samples".</summary>
    string ThroughputUnit { get; }

    /// <summary>The batches of one epoch, in order; cheap descriptions (e.g. indices), materialised by <see cref="ComputeLoss"/>.</summary>
    IReadOnlyList<TBatch> PlanEpoch(int epoch, Random random);

    /// <summary>Forward pass of one batch in training mode: the summed loss and the number of targets it covers.</summary>
    LossSum ComputeLoss(TBatch batch);

    /// <summary>The validation metric after an epoch (the model is in eval mode, gradients off); null when there is no validation data.</summary>
    ValidationResult? Validate();

    /// <summary>A sample of the model's output after an epoch (e.g. generated text); null for none.</summary>
    string? Sample(int epoch);
}

/// <summary>What a run did.</summary>
internal sealed record TrainingResult(
    long Steps,
    int EpochsCompleted,
    IReadOnlyList<double> StepLosses,
    IReadOnlyList<ValidationResult> Validations,
    bool StoppedEarly,
    bool Interrupted,
    TimeSpan Elapsed);

internal sealed class TrainingLoop<TBatch>
{
    private readonly nn.Module _model;
    private readonly TrainingOptions _options;
    private readonly ITrainingTask<TBatch> _task;
    private readonly TrainingReporter _reporter;
    private readonly int _modelDimension;
    private readonly string _modelConfigJson;
    private readonly ScalarType? _autocast;
    private readonly Device _device;

    /// <summary>The clock of the time budget, the throughputs and the ETA (tests set a clock of their own).</summary>
    internal TimeProvider Time { get; init; } = TimeProvider.System;

    /// <param name="modelDimension">d_model, for the inverse square root schedule.</param>
    /// <param name="modelConfigJson">The model's configuration; a checkpoint of another configuration is refused.</param>
    public TrainingLoop(nn.Module model, TrainingOptions options, ITrainingTask<TBatch> task, TrainingReporter reporter,
        int modelDimension, string modelConfigJson)
    {
        options.Validate();
        _model = model;
        _options = options;
        _task = task;
        _reporter = reporter;
        _modelDimension = modelDimension;
        _modelConfigJson = modelConfigJson;
        Device device = model.parameters().FirstOrDefault()?.device ?? CPU;
        _device = device;
        (_autocast, string? reason) = PrecisionSelector.Resolve(options.Precision, device);
        if (reason is not null)
        {
            reporter.Info(reason);
        }
    }

    /// <summary>
    /// Trains to the end of the plan, early stopping, MaxSteps or the time budget's hard limit. When the options'
    /// Cancellation is cancelled: writes the checkpoint (when there is a checkpoint path) after the step in progress and
    /// throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public TrainingResult Run()
    {
        CancellationToken cancellation = _options.Cancellation;
        long started = Time.GetTimestamp();
        TimeSpan Elapsed() => Time.GetElapsedTime(started);
        using var optimizer = new AdamW(_model.named_parameters(), _options.Beta1, _options.Beta2, _options.AdamEpsilon, _options.WeightDecay);
        using var random = new Generator(0); // a CPU generator: StepRandom moves its draws to another device
        var state = new TrainingState { Seed = _options.Seed };
        var stopping = new EarlyStopping(_options.EarlyStoppingPatience, _options.EarlyStoppingMinDelta);
        Dictionary<string, Tensor>? bestWeights = null;
        using var averager = new CheckpointAverager(_options.AveragedCheckpoints, _options.AveragingSpan);

        string? checkpoint = _options.CheckpointPath;
        if (checkpoint is not null && _options.ResumeFromCheckpoint && File.Exists(checkpoint))
        {
            state = Checkpoint.Load(checkpoint, _model, optimizer, _modelConfigJson);
            if (state.Seed != _options.Seed)
            {
                throw new InvalidOperationException(
                    $"Checkpoint '{checkpoint}' comes from a run with Seed {state.Seed}; this run has Seed {_options.Seed}. A resumed run must keep its seed.");
            }
            stopping.Best = state.BestMetric;
            stopping.BadEvaluations = state.BadEvaluations;
            bestWeights = LoadBestWeights(checkpoint);
            if (state.AveragedCheckpoints > 0)
            {
                averager.Load(AveragePath(checkpoint));
            }
            _reporter.Info($"Resuming from '{checkpoint}' at epoch {state.Epoch + 1}, batch {state.BatchInEpoch}, step {state.Step}.");
        }

        int accumulation = _options.GradientAccumulationSteps;
        int batchesPerEpoch = _task.PlanEpoch(0, EpochRandom(0)).Count;
        if (batchesPerEpoch == 0)
        {
            throw new InvalidOperationException("The training data gives no batch: nothing to train on.");
        }
        long stepsPerEpoch = (batchesPerEpoch + accumulation - 1) / accumulation;
        // The schedule spans the planned steps: the epochs' steps, or as many as the time budget holds. MaxSteps and
        // cancellation interrupt a run without changing its plan, so a resumed run follows the same learning-rate curve.
        long cap = _options.MaxTrainingTime is null ? stepsPerEpoch * _options.Epochs : long.MaxValue / 4;
        var plan = new StepPlan(_options.MaxTrainingTime, cap, state.PlannedSteps);
        LearningRateSchedule schedule = Schedule(plan, state.ScheduleAnchor);
        TimeSpan? hardLimit = _options.MaxTrainingTime * 1.1; // a run whose plan the machine cannot keep still ends

        var stepLosses = new List<double>();
        var validations = new List<ValidationResult>();
        var window = new Window(Elapsed());
        long startStep = state.Step;
        bool stoppedEarly = false;
        bool interrupted = false;
        double learningRate = 0;

        while (state.Step < plan.Total && !stoppedEarly && !interrupted)
        {
            IReadOnlyList<TBatch> batches = _task.PlanEpoch(state.Epoch, EpochRandom(state.Epoch));
            var epochWindow = new Window(Elapsed()); // the epoch report covers the whole epoch (of this run)
            _model.train();
            while (state.BatchInEpoch < batches.Count && state.Step < plan.Total)
            {
                int count = Math.Min(accumulation, batches.Count - state.BatchInEpoch);
                long step = state.Step + 1;
                learningRate = schedule.At(step);
                (double loss, long targets) = TrainStep(optimizer, random, batches, state.BatchInEpoch, count, step, learningRate);
                state.Step = step;
                state.BatchInEpoch += count;
                stepLosses.Add(loss);
                window.Add(loss, targets);
                epochWindow.Add(loss, targets);
                if (plan.AfterStep(state.Step, Elapsed()))
                {
                    schedule = Replanned(schedule, plan, state, stepsPerEpoch);
                    if (averager.DropIfStale(plan.Total, out IReadOnlyList<long> dropped))
                    {
                        _reporter.Info($"Checkpoint averaging: the plan grew to {plan.Total} steps, so the snapshots of steps {string.Join(", ", dropped)} " +
                            $"fall before its last {_options.AveragingSpan:P0}; they are dropped and the snapshots start again.");
                    }
                }

                if (averager.IsSnapshotStep(state.Step, plan.Total))
                {
                    averager.Add(_model, state.Step); // SaveCheckpoint records the count in the state
                }

                bool timeUp = hardLimit is TimeSpan limit && Elapsed() >= limit;
                bool stepLimit = _options.MaxSteps is long max && state.Step >= max;
                bool cancelled = cancellation.IsCancellationRequested;
                interrupted = cancelled || timeUp || stepLimit;

                // An interrupted run reports its last step too: it ends before its epoch's report, and a caller reads the
                // run's end from the last report (a budget cut by the machine's speed, before step LogEverySteps, had none).
                if (state.Step % _options.LogEverySteps == 0 || interrupted)
                {
                    _reporter.Report(Progress(TrainingProgressKind.Step, state, plan, stepsPerEpoch, learningRate, window, Elapsed(), startStep));
                    window = new Window(Elapsed());
                }
                if (checkpoint is not null && (interrupted || (_options.CheckpointEverySteps > 0 && state.Step % _options.CheckpointEverySteps == 0)))
                {
                    SaveCheckpoint(checkpoint, optimizer, state, stopping, averager);
                }
                if (cancelled)
                {
                    string message = $"Training cancelled at step {state.Step} of {plan.Total} (TrainingOptions.Cancellation); " + (checkpoint is null
                        ? "set CheckpointPath to be able to continue a cancelled run."
                        : $"the checkpoint '{checkpoint}' holds it: a Fit with the same options and data continues from there.");
                    _reporter.Info(message);
                    DisposeWeights(bestWeights);
                    throw new OperationCanceledException(message, cancellation);
                }
                if (interrupted)
                {
                    _reporter.Info(timeUp ? $"Stopping: the run took longer than its MaxTrainingTime {_options.MaxTrainingTime} allows (step {state.Step} of {plan.Total})."
                        : $"Stopping: MaxSteps {_options.MaxSteps} reached.");
                    break;
                }
            }
            if (interrupted)
            {
                break;
            }
            // The step reports' window runs on across the epoch's end, so each covers LogEverySteps steps (a window restarted
            // here gave the first report of an epoch a few steps' loss, a dip in the curves); validation's time is left out
            // of its throughput.
            TimeSpan epochEndStart = Elapsed();
            ValidationResult? averagedValidation = null; // the epoch's validation when averaging has just measured it
            if (state.Step >= plan.Total && averager.Taken >= 2)
            {
                averagedValidation = AverageCheckpoints(averager);
            }

            // End of epoch (or of the plan): validate, sample, report, checkpoint.
            int finished = state.Epoch;
            state.Epoch++;
            state.BatchInEpoch = 0;
            ValidationResult? validation;
            string? sample;
            _model.eval();
            using (no_grad())
            {
                validation = averagedValidation ?? _task.Validate();
                sample = _task.Sample(finished);
            }
            if (validation is not null)
            {
                validations.Add(validation);
                if (stopping.Update(validation) && (_options.RestoreBestWeights || _options.EarlyStoppingPatience is not null))
                {
                    bestWeights = SnapshotWeights(bestWeights, checkpoint);
                }
                stoppedEarly = stopping.ShouldStop;
            }
            state.BestMetric = stopping.Best;
            state.BadEvaluations = stopping.BadEvaluations;
            if (state.Step < plan.Total && plan.AfterStep(state.Step, Elapsed(), force: true))
            {
                // Validation costs time too: the plan is checked against the budget after each epoch.
                schedule = Replanned(schedule, plan, state, stepsPerEpoch);
            }
            epochWindow.LeaveOut(Elapsed() - epochEndStart);
            _reporter.Report(Progress(TrainingProgressKind.EpochEnd, state, plan, stepsPerEpoch, learningRate, epochWindow, Elapsed(), startStep) with
            {
                Epoch = finished + 1,
                ValidationMetric = validation?.Metric,
                ValidationValue = validation?.Value,
                Sample = sample,
            });
            if (checkpoint is not null)
            {
                SaveCheckpoint(checkpoint, optimizer, state, stopping, averager);
            }
            window.LeaveOut(Elapsed() - epochEndStart);
            if (stoppedEarly)
            {
                _reporter.Info($"Early stopping after epoch {finished + 1}: no improvement of validation {validation!.Metric} for {stopping.BadEvaluations} epochs (best {stopping.Best:F4}).");
            }
        }

        if (bestWeights is not null && _options.RestoreBestWeights && !interrupted)
        {
            ModelFile.LoadInto(_model, bestWeights, "the best validation epoch");
        }
        DisposeWeights(bestWeights);
        _model.eval();
        return new TrainingResult(state.Step, state.Epoch, stepLosses, validations, stoppedEarly, interrupted, Elapsed());
    }

    private static void DisposeWeights(Dictionary<string, Tensor>? weights)
    {
        foreach (Tensor t in weights?.Values ?? Enumerable.Empty<Tensor>())
        {
            t.Dispose();
        }
    }

    /// <summary>
    /// The plan's last step: the model becomes the mean of the snapshots, as the options ask. When the task validates, the
    /// log gives the validation metric of the last weights and of the mean (measured here: the mean validated a little
    /// worse than the last weights in one translation run, and translated the unpunctuated "Gracias" right where the last
    /// weights did not; it is kept either way, as in the paper).
    /// </summary>
    /// <returns>The validation of the mean (null without validation data), which is the epoch's: it is not measured again.</returns>
    private ValidationResult? AverageCheckpoints(CheckpointAverager averager)
    {
        string steps = string.Join(", ", averager.Steps);
        ValidationResult? last = ValidateNow();
        averager.LoadInto(_model);
        ValidationResult? averaged = last is null ? null : ValidateNow();
        _reporter.Info(last is null || averaged is null
            ? $"Checkpoint averaging: the mean of {averager.Taken} checkpoints (steps {steps})."
            : $"Checkpoint averaging: the mean of {averager.Taken} checkpoints (steps {steps}); validation {last.Metric} {last.Value:F4} with the last weights, {averaged.Value:F4} with the mean.");
        return averaged;
    }

    private ValidationResult? ValidateNow()
    {
        _model.eval();
        try
        {
            using (no_grad())
            {
                return _task.Validate();
            }
        }
        finally
        {
            _model.train();
        }
    }

    /// <summary>One optimizer step over <paramref name="count"/> batches; returns the mean loss per target and the targets seen.</summary>
    private (double Loss, long Targets) TrainStep(AdamW optimizer, Generator random, IReadOnlyList<TBatch> plan, int first, int count, long step, double learningRate)
    {
        // Step s draws (dropout, augmentation, masks) from the run's generator seeded by (seed, s): resumable without
        // saving generator state.
        long seed = StepSeed(_options.Seed, step);
        random.manual_seed(seed);
        if (_device.type != DeviceType.CPU)
        {
            TrainingSetup.Reseed(seed); // dropout there draws from libtorch's generator
        }
        optimizer.ZeroGrad();
        double lossSum = 0;
        long targets = 0;
        for (int i = first; i < first + count; i++)
        {
            using var scope = NewDisposeScope();
            LossSum loss;
            using (Autocast.Enable(_autocast))
            using (StepRandom.Use(random))
            {
                loss = _task.ComputeLoss(plan[i]);
            }
            loss.Sum.backward();
            lossSum += loss.Sum.item<float>();
            targets += loss.Count.item<long>();
        }
        if (targets == 0)
        {
            return (0, 0);
        }
        using (no_grad())
        {
            // The summed gradients become the gradient of the mean over every target of the step.
            foreach (Parameter p in optimizer.Parameters)
            {
                p.grad?.div_(targets);
            }
        }
        if (_options.GradientClipNorm > 0)
        {
            nn.utils.clip_grad_norm_(optimizer.Parameters, _options.GradientClipNorm);
        }
        optimizer.Step(learningRate);
        return (lossSum / targets, targets);
    }

    /// <summary>The learning-rate schedule of the plan's steps, going on from <paramref name="anchor"/> when the plan moved.</summary>
    private LearningRateSchedule Schedule(StepPlan plan, ScheduleAnchor? anchor) =>
        LearningRateSchedule.Create(_options, _modelDimension, plan.Total, Warmup(plan), anchor);

    /// <summary>
    /// The schedule of a plan that moved after the state's step: the learning rate goes on from where
    /// <paramref name="current"/> has it, the warmup's ramp to the new plan's peak or the decay catching up with the new
    /// plan (<see cref="WarmupCosineSchedule"/>).
    /// The state keeps where, so that a resumed run follows the same curve.
    /// </summary>
    private LearningRateSchedule Replanned(LearningRateSchedule current, StepPlan plan, TrainingState state, long stepsPerEpoch)
    {
        state.PlannedSteps = plan.Total;
        state.ScheduleAnchor = current.AnchorAt(state.Step);
        LearningRateSchedule schedule = Schedule(plan, state.ScheduleAnchor);
        // Where the warmup ends (a ramp goes on from where it is); past it the new plan's warmup is not run: say what the
        // schedule does instead.
        string rest = schedule is WarmupCosineSchedule cosine && state.ScheduleAnchor is { } anchor
            ? anchor.Ramp is null ? "the decay catches up with the plan" : $"warmup {cosine.WarmupEnd}"
            : $"warmup {Warmup(plan)}";
        _reporter.Info($"Time budget {_options.MaxTrainingTime}: {plan.Total} optimizer steps planned at step {state.Step} ({Epochs(plan.Total, stepsPerEpoch)} epochs of {stepsPerEpoch}), {rest}.");
        return schedule;
    }

    /// <summary>The warmup steps of the plan's schedule (the one the progress line reports).</summary>
    private int Warmup(StepPlan plan) => plan.Warmup(_options.WarmupSteps, _options.Schedule);

    private static int Epochs(long steps, long stepsPerEpoch) => (int)Math.Max(1, (steps + stepsPerEpoch - 1) / stepsPerEpoch);

    private Random EpochRandom(int epoch) => new(unchecked((_options.Seed * 1_000_003) ^ (epoch * 7919 + 17)));

    internal static long StepSeed(int seed, long step) => unchecked((seed * 6_364_136_223_846_793_005L) + step * 1_442_695_040_888_963_407L) & long.MaxValue;

    private void SaveCheckpoint(string path, AdamW optimizer, TrainingState state, EarlyStopping stopping, CheckpointAverager averager)
    {
        state.BestMetric = stopping.Best;
        state.BadEvaluations = stopping.BadEvaluations;
        state.AveragedCheckpoints = averager.Taken;
        if (averager.Enabled)
        {
            averager.Save(AveragePath(path)); // before the checkpoint that counts its snapshots
        }
        Checkpoint.Save(path, _model, optimizer, state, _modelConfigJson);
    }

    private static string AveragePath(string checkpoint) => checkpoint + ".average";

    /// <summary>Keeps a copy of the current weights (in memory, and beside the checkpoint when there is one).</summary>
    private Dictionary<string, Tensor> SnapshotWeights(Dictionary<string, Tensor>? previous, string? checkpoint)
    {
        if (previous is not null)
        {
            foreach (Tensor t in previous.Values)
            {
                t.Dispose();
            }
        }
        var copy = ModuleState.Of(_model).ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
        if (checkpoint is not null)
        {
            SafeTensors.Write(BestWeightsPath(checkpoint), copy);
        }
        return copy;
    }

    private static Dictionary<string, Tensor>? LoadBestWeights(string checkpoint)
    {
        string path = BestWeightsPath(checkpoint);
        return File.Exists(path) ? SafeTensors.Open(path).ReadAll() : null;
    }

    private static string BestWeightsPath(string checkpoint) => checkpoint + ".best";

    private TrainingProgress Progress(TrainingProgressKind kind, TrainingState state, StepPlan plan, long stepsPerEpoch, double learningRate,
        Window window, TimeSpan elapsed, long startStep)
    {
        double seconds = (elapsed - window.Start).TotalSeconds;
        long stepsThisRun = state.Step - startStep;
        long total = plan.Shown(state.Step, elapsed);
        TimeSpan? remaining = stepsThisRun > 0 && total > state.Step
            ? TimeSpan.FromSeconds(elapsed.TotalSeconds / stepsThisRun * (total - state.Step))
            : stepsThisRun > 0 ? TimeSpan.Zero : null;
        int epochs = Epochs(total, stepsPerEpoch);
        return new TrainingProgress
        {
            Kind = kind,
            Epoch = Math.Min(state.Epoch + 1, epochs),
            Epochs = epochs,
            Step = state.Step,
            TotalSteps = total,
            Loss = window.Targets > 0 ? window.LossTimesTargets / window.Targets : double.NaN,
            LearningRate = learningRate,
            Throughput = seconds > 0 ? window.Targets / seconds : 0,
            ThroughputUnit = _task.ThroughputUnit,
            Elapsed = elapsed,
            Remaining = remaining,
        };
    }

    /// <summary>Loss and throughput accumulated since the last step report (or over an epoch, for its report).</summary>
    private sealed class Window(TimeSpan start)
    {
        public TimeSpan Start { get; private set; } = start;

        /// <summary>Time spent on other work than training steps (an epoch's validation), which the throughput leaves out.</summary>
        public void LeaveOut(TimeSpan other) => Start += other;

        public double LossTimesTargets { get; private set; }

        public long Targets { get; private set; }

        public void Add(double meanLoss, long targets)
        {
            LossTimesTargets += meanLoss * targets;
            Targets += targets;
        }
    }
}

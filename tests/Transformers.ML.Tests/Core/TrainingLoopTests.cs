using Microsoft.ML;
using TorchSharp;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

/// <summary>The shared training loop on a toy task: reverse a sequence of tokens with the encoder-decoder model.</summary>
[TestClass]
public sealed class TrainingLoopTests
{
    [TestMethod]
    public void TorchSharpLoadsAndATrainingStepLowersTheLoss()
    {
        // Proves the native library loads on this machine (the GLIBCXX fix in the build) and trains.
        using Tensor t = ones(2, 3);
        Assert.AreEqual(6f, t.sum().item<float>());

        manual_seed(1);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var task = new ReverseTask(model, samples: 16, batchSize: 16, dropout: false);
        var options = new TrainingOptions { Epochs = 30, LearningRate = 3e-3, WarmupSteps = 0, LogEverySteps = 1000 };
        TrainingResult result = Run(model, task, options);
        Assert.AreEqual(30, result.Steps);
        Assert.IsLessThan(result.StepLosses[0] * 0.6, result.StepLosses[^1], $"loss {result.StepLosses[0]:F3} -> {result.StepLosses[^1]:F3}");
    }

    [TestMethod]
    public void MixedPrecisionTrainingLearnsAndKeepsFloat32Weights()
    {
        TrainingResult Train(TrainingPrecision precision, out EncoderDecoderTransformer model)
        {
            manual_seed(1);
            model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
            var options = new TrainingOptions { Epochs = 30, LearningRate = 3e-3, WarmupSteps = 0, LogEverySteps = 1000, Precision = precision };
            return Run(model, new ReverseTask(model, samples: 16, batchSize: 16, dropout: false), options);
        }

        TrainingResult exact = Train(TrainingPrecision.Float32, out EncoderDecoderTransformer a);
        TrainingResult mixed = Train(TrainingPrecision.BFloat16, out EncoderDecoderTransformer b);
        using (a)
        using (b)
        {
            Assert.IsTrue(b.parameters().All(p => p.dtype == ScalarType.Float32), "weights stay float32");
            Assert.IsLessThan(mixed.StepLosses[0] * 0.6, mixed.StepLosses[^1], $"loss {mixed.StepLosses[0]:F3} -> {mixed.StepLosses[^1]:F3}");
            // The first step sees the same weights: the losses agree to bfloat16's precision, but not exactly.
            Assert.AreEqual(exact.StepLosses[0], mixed.StepLosses[0], 0.02 * exact.StepLosses[0]);
            Assert.AreNotEqual(exact.StepLosses[0], mixed.StepLosses[0]);
            Assert.AreEqual(exact.StepLosses[^1], mixed.StepLosses[^1], 0.25 * exact.StepLosses[^1]);
        }
    }

    [TestMethod]
    public void AResumedRunRepeatsTheUninterruptedLossSequence()
    {
        string checkpoint = TestUtil.TempPath();
        TrainingOptions Options() => new()
        {
            Epochs = 3,
            LearningRate = 1e-3,
            WarmupSteps = 2,
            Seed = 5,
            GradientAccumulationSteps = 2,
            LogEverySteps = 1000,
        };

        // Uninterrupted: 3 epochs of 6 batches, 2 per step = 9 steps, with dropout on.
        manual_seed(100);
        using var reference = new EncoderDecoderTransformer("t", Dropout(TestUtil.Tiny()), ReverseTask.Vocabulary);
        TrainingResult full = Run(reference, new ReverseTask(reference, 24, 4, dropout: true), Options());
        Assert.AreEqual(9, full.Steps);

        // Interrupted after step 4 (mid-epoch 2), with a checkpoint; then a new process-like start from other weights.
        manual_seed(100);
        using var first = new EncoderDecoderTransformer("t", Dropout(TestUtil.Tiny()), ReverseTask.Vocabulary);
        TrainingOptions interrupted = Options();
        interrupted.CheckpointPath = checkpoint;
        interrupted.MaxSteps = 4;
        TrainingResult part = Run(first, new ReverseTask(first, 24, 4, dropout: true), interrupted);
        Assert.IsTrue(part.Interrupted);
        CollectionAssert.AreEqual(full.StepLosses.Take(4).ToList(), part.StepLosses.ToList());

        manual_seed(999); // different initial weights: everything must come from the checkpoint
        using var resumed = new EncoderDecoderTransformer("t", Dropout(TestUtil.Tiny()), ReverseTask.Vocabulary);
        TrainingOptions resume = Options();
        resume.CheckpointPath = checkpoint;
        TrainingResult rest = Run(resumed, new ReverseTask(resumed, 24, 4, dropout: true), resume);
        Assert.AreEqual(9, rest.Steps);
        Assert.AreEqual(5, rest.StepLosses.Count);
        for (int i = 0; i < 5; i++)
        {
            Assert.AreEqual(full.StepLosses[4 + i], rest.StepLosses[i], 1e-6, $"step {5 + i}");
        }
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(reference.parameters().First(), resumed.parameters().First()), 1e-6);

        // A checkpoint of another model configuration is refused with a clear message.
        TransformerConfig other = TestUtil.Tiny();
        other.FeedForwardDimension = 48;
        using var wrong = new EncoderDecoderTransformer("t", other, ReverseTask.Vocabulary);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Run(wrong, new ReverseTask(wrong, 24, 4, dropout: false), resume, other.ToJson()));
        StringAssert.Contains(e.Message, "another model configuration");
    }

    [TestMethod]
    public void AnInterruptedRunReportsItsLastStep()
    {
        // Reports every 1,000 steps and at each epoch's end (6 steps): a run stopped at step 8, in epoch 2, had only epoch 1's report,
        // and the examples, which print the last report's step, failed on a budget cut before step LogEverySteps.
        TrainingOptions options = new() { Epochs = 3, LearningRate = 1e-3, WarmupSteps = 2, Seed = 5, LogEverySteps = 1000, MaxSteps = 8 };
        manual_seed(100);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var recorder = new EpochRecorder(null);
        using (var reporter = new TrainingReporter(null, "test", recorder))
        {
            TrainingResult result = new TrainingLoop<int[]>(model, options, new ReverseTask(model, 24, 4, dropout: false), reporter, 32, TestUtil.Tiny().ToJson()).Run();
            Assert.IsTrue(result.Interrupted);
        }
        CollectionAssert.AreEqual(new[] { TrainingProgressKind.EpochEnd, TrainingProgressKind.Step }, recorder.All.Select(r => r.Kind).ToArray());
        Assert.AreEqual(8, recorder.All[^1].Step);
        Assert.IsTrue(double.IsFinite(recorder.All[^1].Loss));

        // A run that is not interrupted reports as before: each epoch's end, no extra step.
        options.MaxSteps = null;
        manual_seed(100);
        using var whole = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var all = new EpochRecorder(null);
        using (var reporter = new TrainingReporter(null, "test", all))
        {
            new TrainingLoop<int[]>(whole, options, new ReverseTask(whole, 24, 4, dropout: false), reporter, 32, TestUtil.Tiny().ToJson()).Run();
        }
        Assert.IsTrue(all.All.All(r => r.Kind == TrainingProgressKind.EpochEnd));
        Assert.AreEqual(3, all.All.Count);
    }

    [TestMethod]
    public void EachStepReportCoversLogEveryStepsStepsAcrossAnEpochsEnd()
    {
        // 6 steps an epoch, a report every 4: the report at step 8 is steps 5-8, two of each epoch. Restarted at the epoch's
        // end, it was steps 7-8 only: a few steps' loss, which drew a dip into the curves after each epoch's end.
        TrainingOptions options = new() { Epochs = 2, LearningRate = 1e-3, WarmupSteps = 2, Seed = 5, LogEverySteps = 4 };
        manual_seed(100);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var pause = TimeSpan.FromSeconds(2);
        var task = new ReverseTask(model, 24, 4, dropout: false) { AfterValidation = epoch => { if (epoch == 0) { Thread.Sleep(pause); } } };
        var recorder = new EpochRecorder(null);
        TrainingResult result;
        using (var reporter = new TrainingReporter(null, "test", recorder))
        {
            result = new TrainingLoop<int[]>(model, options, task, reporter, 32, TestUtil.Tiny().ToJson()).Run();
        }
        TrainingProgress[] steps = recorder.All.Where(r => r.Kind == TrainingProgressKind.Step).ToArray();
        CollectionAssert.AreEqual(new long[] { 4, 8, 12 }, steps.Select(r => r.Step).ToArray());
        for (int k = 0; k < steps.Length; k++)
        {
            // Every batch has 4 x 7 targets, so the window's loss is the plain mean of its steps' losses.
            double expected = result.StepLosses.Skip(4 * k).Take(4).Average();
            Assert.AreEqual(expected, steps[k].Loss, 1e-9, $"the report at step {steps[k].Step}");
        }
        // The first epoch's validation (2 s here) is not training time: the throughput of steps 5-8 leaves it out
        // (4 x 28 targets in the 2 s would be 56 per second; the tiny model's 4 steps take a small part of that).
        Assert.IsGreaterThan(112 / pause.TotalSeconds, steps[1].Throughput);
    }

    [TestMethod]
    public void CancellingStopsAfterTheStepWithACheckpointThatAResumedRunContinues()
    {
        string checkpoint = TestUtil.TempPath();
        TrainingOptions Options() => new() { Epochs = 3, LearningRate = 1e-3, WarmupSteps = 2, Seed = 5, LogEverySteps = 1 };
        manual_seed(100);
        using var reference = new EncoderDecoderTransformer("t", Dropout(TestUtil.Tiny()), ReverseTask.Vocabulary);
        TrainingResult full = Run(reference, new ReverseTask(reference, 24, 4, dropout: true), Options());
        Assert.AreEqual(18, full.Steps);

        // Cancelled from the progress report of step 4: the step in progress ends, the checkpoint is written, Fit throws.
        using var cancel = new CancellationTokenSource();
        manual_seed(100);
        using var first = new EncoderDecoderTransformer("t", Dropout(TestUtil.Tiny()), ReverseTask.Vocabulary);
        TrainingOptions cancelled = Options();
        cancelled.CheckpointPath = checkpoint;
        cancelled.Cancellation = cancel.Token;
        var steps = new List<long>();
        cancelled.Progress = new SynchronousProgress<TrainingProgress>(p =>
        {
            if (p.Kind == TrainingProgressKind.Step)
            {
                steps.Add(p.Step);
                if (p.Step == 4)
                {
                    cancel.Cancel();
                }
            }
        });
        using (var reporter = new TrainingReporter(null, "test", cancelled.Progress))
        {
            var e = Assert.Throws<OperationCanceledException>(() =>
                new TrainingLoop<int[]>(first, cancelled, new ReverseTask(first, 24, 4, dropout: true), reporter, 32, TestUtil.Tiny().ToJson()).Run());
            Assert.AreEqual(cancel.Token, e.CancellationToken);
            StringAssert.Contains(e.Message, "Training cancelled at step 5 of 18");
            StringAssert.Contains(e.Message, $"the checkpoint '{checkpoint}' holds it");
        }
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 4, 5 }, steps, "the run stops after the step in progress");
        Assert.IsTrue(File.Exists(checkpoint));

        // The same options without the cancelled token continue from step 5 and repeat the uninterrupted losses.
        manual_seed(999);
        using var resumed = new EncoderDecoderTransformer("t", Dropout(TestUtil.Tiny()), ReverseTask.Vocabulary);
        TrainingOptions resume = Options();
        resume.CheckpointPath = checkpoint;
        TrainingResult rest = Run(resumed, new ReverseTask(resumed, 24, 4, dropout: true), resume);
        Assert.AreEqual(13, rest.StepLosses.Count);
        for (int i = 0; i < 13; i++)
        {
            Assert.AreEqual(full.StepLosses[5 + i], rest.StepLosses[i], 1e-6, $"step {6 + i}");
        }

        // Without a checkpoint path the message says how to keep a cancelled run; a token cancelled before the run
        // stops it at the first step.
        using var other = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        TrainingOptions early = Options();
        early.Cancellation = new CancellationToken(canceled: true);
        var noCheckpoint = Assert.Throws<OperationCanceledException>(() => Run(other, new ReverseTask(other, 24, 4, dropout: false), early));
        StringAssert.Contains(noCheckpoint.Message, "Training cancelled at step 1 of 18 (TrainingOptions.Cancellation); set CheckpointPath to be able to continue a cancelled run.");
    }

    [TestMethod]
    public void ATimeBudgetPlansTheStepsSoThatTheScheduleEndsWithinIt()
    {
        manual_seed(1);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var reports = new List<TrainingProgress>();
        var budget = TimeSpan.FromSeconds(4);
        var options = new TrainingOptions
        {
            Epochs = 1, // a budget plans the epochs itself: one epoch here is 4 steps
            LearningRate = 2e-3,
            MinLearningRateRatio = 0.1,
            WarmupSteps = 1000, // capped at a fifth of the plan
            MaxTrainingTime = budget,
            LogEverySteps = 1,
            Progress = new SynchronousProgress<TrainingProgress>(reports.Add),
        };
        using var reporter = new TrainingReporter(null, "test", options.Progress);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TrainingResult result = new TrainingLoop<int[]>(model, options, new ReverseTask(model, samples: 16, batchSize: 4, dropout: false), reporter, 32, TestUtil.Tiny().ToJson()).Run();
        clock.Stop();

        var steps = reports.Where(r => r.Kind == TrainingProgressKind.Step).ToList();
        Assert.IsFalse(result.Interrupted, "the run ends its plan, it is not cut");
        Assert.IsGreaterThan(8L, result.Steps, $"{result.Steps} steps: more than the one epoch of 4 steps (how many more depends on the machine)");
        Assert.AreEqual(result.Steps, steps[^1].TotalSteps, "the last report shows the planned total, and the run took all of it");
        Assert.IsTrue(steps.Skip(12).All(r => r.TotalSteps > 8), "the reports after the first steps show the plan");
        // The schedule ran to its end: the last step's learning rate is the cosine's minimum, the peak was reached.
        Assert.AreEqual(options.LearningRate * options.MinLearningRateRatio, steps[^1].LearningRate, 0.02 * options.LearningRate);
        Assert.AreEqual(options.LearningRate, steps.Max(r => r.LearningRate), 0.02 * options.LearningRate);
        // ... and it ended about when the budget did (the plan aims at 95 % of it and follows the machine's speed as it
        // changes; a run a tenth over is stopped; a sudden slowdown near the end can still cost a little more).
        Assert.IsLessThan(budget.TotalSeconds * 1.25, clock.Elapsed.TotalSeconds, $"took {clock.Elapsed.TotalSeconds:F1} s of a {budget.TotalSeconds} s budget");
        Assert.IsGreaterThan(budget.TotalSeconds * 0.6, clock.Elapsed.TotalSeconds, $"took {clock.Elapsed.TotalSeconds:F1} s: the budget was used");
    }

    [TestMethod]
    public void ThePlanFollowsTheMeasuredThroughputAndMovesWhenTheMachineSlowsDown()
    {
        // Synthetic clock: 10 ms a step, then 20 ms from step 300 on; a budget of 10 s.
        var plan = new StepPlan(TimeSpan.FromSeconds(10), cap: long.MaxValue / 4, resumed: null);
        double seconds = 0.5; // one-time costs before the first step
        long step = 0;
        bool Step(double cost)
        {
            step++;
            seconds += cost;
            return plan.AfterStep(step, TimeSpan.FromSeconds(seconds));
        }
        while (!plan.Measured)
        {
            Step(0.010);
        }
        // 9.5 s (95 % of the budget) at 100 steps/s, less the 0.62 s already spent.
        Assert.AreEqual(12 + (long)(100 * (9.5 - seconds)), plan.Total, 2);
        Assert.AreEqual(Math.Min(1000, plan.Total / 5), plan.Warmup(1000, LearningRateScheduleKind.WarmupCosine), "the warmup is at most a fifth of the plan");
        Assert.AreEqual(1000, plan.Warmup(1000, LearningRateScheduleKind.InverseSquareRoot), "the inverse square root's warmup sets its peak: kept");
        long fast = plan.Total;
        while (step < 300)
        {
            Step(0.010);
        }
        Assert.AreEqual(fast, plan.Total, "on schedule: the plan stays");
        while (step < plan.Total)
        {
            Step(0.020);
        }
        Assert.IsLessThan(fast, plan.Total, "the machine slowed down: fewer steps");
        Assert.IsTrue(seconds is > 9.0 and < 10.2, $"the last step at {seconds:F2} s of the 10 s budget");

        var none = new StepPlan(null, cap: 120, resumed: null);
        Assert.IsFalse(none.AfterStep(50, TimeSpan.FromSeconds(1)));
        Assert.AreEqual(120, none.Total, "without a budget, the epochs' steps");
        Assert.AreEqual(400, none.Warmup(400, LearningRateScheduleKind.WarmupCosine));
    }

    [TestMethod]
    public void WhenThePlanMovesTheLearningRateGoesOnFromWhereItIsAndAResumedRunFollowsTheSameCurve()
    {
        // A synthetic clock in a 4-second budget: 10 ms a step, 30 ms for steps 80-139, 10 ms again after. The plan made at
        // 100 steps a second moves down as the slowdown shows, and up again after it. At each move the learning rate goes
        // on from where it is and catches up with the new plan: faster for a while after a cut, held after a rise (a
        // fresh cosine over each new total jumped: down by up to 10 % of the range in one step, and up by 4.7 %).
        TimeSpan Cost(long step) => TimeSpan.FromMilliseconds(step < 80 ? 10 : step < 140 ? 30 : 10);
        var log = new List<string>();
        List<TrainingProgress> Train(long firstStep, string? checkpoint = null, long? maxSteps = null) =>
            TrainOnAClock(Cost, warmupSteps: 20, log, firstStep, checkpoint, maxSteps);

        List<TrainingProgress> whole = Train(0);
        long planned = whole[20].TotalSteps;
        Assert.AreEqual(12 + (long)(100 * (3.8 - 0.12)), planned, 3, "the first plan: 95 % of the budget at 100 steps a second");
        long fewest = whole.Min(r => r.TotalSteps);
        Assert.IsLessThan(planned - 150, fewest, "the slowdown cut the plan");
        Assert.IsGreaterThan(fewest + 30, whole[^1].TotalSteps, "and the speed-up made it longer again");
        Assert.AreEqual(whole[^1].TotalSteps, whole[^1].Step, "the run took its plan's steps");
        // The log says where each plan was made; past the warmup it does not name a warmup that is not run.
        StringAssert.StartsWith(log[0], $"Time budget 00:00:04: {planned} optimizer steps planned at step 12 ");
        StringAssert.EndsWith(log[0], ", warmup 20.");
        StringAssert.EndsWith(log[^1], $"{whole[^1].TotalSteps} optimizer steps planned at step {whole.First(r => r.TotalSteps == whole[^1].TotalSteps).Step} (16 epochs of 16), the decay catches up with the plan.");
        double[] rates = whole.Select(r => r.LearningRate).ToArray();
        Assert.AreEqual(2e-3, rates[19], 1e-12, "the peak at the warmup's end");
        for (int i = 20; i < rates.Length; i++)
        {
            // Never up after the peak, and no step takes more than 2 % of the range (here at most 1.6 %).
            double drop = rates[i - 1] - rates[i];
            Assert.IsTrue(drop >= 0 && drop < 0.02 * 1.8e-3, $"step {i + 1} (plan {whole[i].TotalSteps}): {rates[i - 1]:E4} -> {rates[i]:E4}");
        }
        // Caught up: the last steps are the cosine of the last plan, down to the minimum at its end.
        long total = whole[^1].TotalSteps;
        for (int i = rates.Length - 5; i < rates.Length; i++)
        {
            Assert.AreEqual(2e-4 + 1.8e-3 * 0.5 * (1 + Math.Cos(Math.PI * (i + 1 - 20.0) / (total - 20))), rates[i], 1e-12, $"step {i + 1}");
        }

        // Stopped after step 145, while catching up with a plan that moved, and resumed: the schedule is the one the whole
        // run followed.
        string checkpoint = TestUtil.TempPath();
        List<TrainingProgress> before = Train(0, checkpoint, maxSteps: 145);
        Assert.AreEqual(rates[144], before[^1].LearningRate, 1e-15);
        Assert.AreNotEqual(planned, before[^1].TotalSteps, "the plan had moved by step 145");
        List<TrainingProgress> after = Train(145, checkpoint);
        Assert.AreEqual(146, after[0].Step);
        Assert.AreEqual(rates[145], after[0].LearningRate, 1e-15, "the resumed run's first step has the whole run's learning rate");
    }

    [TestMethod]
    public void WhenThePlanMovesInTheWarmupTheRampGoesOnFromWhereItIs()
    {
        // The warmup is a fifth of a budget's plan at most, so it moves with the plan. Here the option asks for 1,000 steps
        // of warmup; the first plan (step 12, 100 steps a second) has 380 steps, so 76 of warmup, and from step 40 the steps
        // take 20 ms, so the plan is cut in the warmup. A fresh ramp at each move jumped: from 12/1000 of the peak to 13/76 at
        // the first plan. Instead the ramp goes on from where it is, never steeper than the plan's own (a 76th of the peak a
        // step at first: it ends at step 12 + 0.988 x 76 = 88), and the decay starts where it ends.
        TimeSpan Cost(long step) => TimeSpan.FromMilliseconds(step < 40 ? 10 : 20);
        var log = new List<string>();
        List<TrainingProgress> run = TrainOnAClock(Cost, warmupSteps: 1000, log);
        double[] rates = run.Select(r => r.LearningRate).ToArray();
        Assert.AreEqual(380, run[20].TotalSteps, 3, "the first plan");
        StringAssert.EndsWith(log[0], ", warmup 88.");
        Assert.AreEqual(2e-3 * (0.012 + 0.988 * 8 / 76), rates[19], 1e-12, "step 20 on the first plan's ramp");
        int peak = Array.IndexOf(rates, rates.Max());
        Assert.AreEqual(2e-3, rates[peak], 1e-12, "the ramp reaches the peak");
        List<string> moves = log.Where(l => l.Contains("warmup", StringComparison.Ordinal)).ToList();
        Assert.IsGreaterThan(1, moves.Count, "the plan moved in the warmup: " + string.Join(" | ", log));
        StringAssert.EndsWith(moves[^1], $", warmup {peak + 1}.", "the log says where the ramp ends");
        Assert.IsLessThan(run[20].TotalSteps * 3 / 4, run[^1].TotalSteps, "the plan was cut");
        for (int i = 1; i <= peak; i++)
        {
            double rise = rates[i] - rates[i - 1];
            Assert.IsTrue(rise > 0 && rise <= 2e-3 / (run[i].TotalSteps / 5) + 1e-12, $"step {i + 1} (plan {run[i].TotalSteps}): {rates[i - 1]:E4} -> {rates[i]:E4}");
        }
        for (int i = peak + 1; i < rates.Length; i++)
        {
            Assert.IsTrue(rates[i] <= rates[i - 1], $"step {i + 1}: down after the peak");
        }
        Assert.AreEqual(2e-4, rates[^1], 1e-12, "down to the minimum at the plan's end");

        // Stopped in the ramp after the first plan and resumed: the checkpoint keeps the ramp's level at the move.
        string checkpoint = TestUtil.TempPath();
        List<TrainingProgress> before = TrainOnAClock(Cost, warmupSteps: 1000, new List<string>(), checkpoint: checkpoint, maxSteps: 30);
        Assert.AreEqual(rates[29], before[^1].LearningRate, 1e-15);
        List<TrainingProgress> after = TrainOnAClock(Cost, warmupSteps: 1000, new List<string>(), firstStep: 30, checkpoint: checkpoint);
        Assert.AreEqual(31, after[0].Step);
        Assert.AreEqual(rates[30], after[0].LearningRate, 1e-15, "the resumed run's first step has the whole run's learning rate");
    }

    [TestMethod]
    public void WhenThePlanGrowsFarAfterTheFirstSnapshotTheAveragingStartsAgain()
    {
        // A busy spell, then the machine's full speed: 10 ms a step, 50 ms for steps 13-60, 10 ms after. The plan is cut in
        // the spell (380 -> 90 steps), the snapshots for the cut plan begin, and the plan grows again once the speed shows
        // (to 169); the snapshots of the short plan are early weights of the long one, so they are dropped and the mean is
        // of the final plan's last quarter (an example run like this: 3 of its 5 snapshots before it, the mean validated
        // 3.4 % worse than the last weights).
        TimeSpan Cost(long step) => TimeSpan.FromMilliseconds(step is > 12 and <= 60 ? 50 : 10);
        var log = new List<string>();
        List<TrainingProgress> run = TrainOnAClock(Cost, warmupSteps: 20, log, averagedCheckpoints: 5);
        string plans = string.Join(" | ", log);
        long total = run[^1].TotalSteps;
        Assert.AreEqual(total, run[^1].Step);
        List<string> dropped = log.Where(l => l.Contains("dropped", StringComparison.Ordinal)).ToList();
        Assert.HasCount(1, dropped, plans);
        StringAssert.StartsWith(dropped[0], "Checkpoint averaging: the plan grew to ");
        string mean = log.Last(l => l.StartsWith("Checkpoint averaging: the mean of", StringComparison.Ordinal));
        long[] steps = mean[(mean.IndexOf("(steps ", StringComparison.Ordinal) + 7)..mean.IndexOf(')')].Split(", ").Select(long.Parse).ToArray();
        Assert.HasCount(5, steps, mean);
        Assert.AreEqual(total, steps[^1], mean);
        Assert.IsTrue(steps.All(s => s >= total - total / 4 - total / 20), $"{mean}; plans: {plans}");
    }

    /// <summary>
    /// Trains the reverse task with a time budget of 4 seconds on a synthetic clock whose step <c>s</c> takes
    /// <paramref name="cost"/>(s); returns the step reports and adds the log's plan lines to <paramref name="log"/>.
    /// </summary>
    private static List<TrainingProgress> TrainOnAClock(Func<long, TimeSpan> cost, int warmupSteps, List<string> log, long firstStep = 0, string? checkpoint = null, long? maxSteps = null,
        int averagedCheckpoints = 1)
    {
        var reports = new List<TrainingProgress>();
        var ml = new MLContext();
        ml.Log += (_, e) =>
        {
            if (e.RawMessage.Contains("optimizer steps planned", StringComparison.Ordinal) || e.RawMessage.StartsWith("Checkpoint averaging", StringComparison.Ordinal))
            {
                log.Add(e.RawMessage);
            }
        };
        var options = new TrainingOptions
        {
            Epochs = 1, LearningRate = 2e-3, MinLearningRateRatio = 0.1, WarmupSteps = warmupSteps, Seed = 3, LogEverySteps = 1,
            MaxTrainingTime = TimeSpan.FromSeconds(4), CheckpointPath = checkpoint, MaxSteps = maxSteps,
            Progress = new SynchronousProgress<TrainingProgress>(reports.Add),
            AveragedCheckpoints = averagedCheckpoints, AveragingSpan = 0.25,
        };
        var time = new ManualTime();
        long step = firstStep;
        manual_seed(7);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var task = new ReverseTask(model, samples: 64, batchSize: 4, dropout: false) { AfterLoss = () => time.Advance(cost(++step)) };
        using var reporter = new TrainingReporter(ml, "test", options.Progress);
        new TrainingLoop<int[]>(model, options, task, reporter, 32, TestUtil.Tiny().ToJson()) { Time = time }.Run();
        return reports.Where(r => r.Kind == TrainingProgressKind.Step).ToList();
    }

    [TestMethod]
    public void AccumulatingTwoHalfBatchesEqualsOneFullBatch()
    {
        manual_seed(3);
        using var a = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        using var b = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        b.load_state_dict(a.state_dict());
        // A large Adam epsilon keeps float32 rounding noise in gradients that are zero in exact arithmetic
        // (the key bias: softmax ignores it) from being blown up to full-size updates.
        var options = new TrainingOptions { Epochs = 1, WarmupSteps = 0, LearningRate = 1e-3, AdamEpsilon = 1e-4, LogEverySteps = 1000 };
        // 16 samples in order: (a) 2 steps of one 8-sample batch; (b) 2 steps of two 4-sample batches.
        Run(a, new ReverseTask(a, 16, 8, dropout: false, shuffle: false), options);
        options.GradientAccumulationSteps = 2;
        TrainingResult accumulated = Run(b, new ReverseTask(b, 16, 4, dropout: false, shuffle: false), options);
        Assert.AreEqual(2, accumulated.Steps);
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
        {
            Assert.IsLessThan(1e-6, TestUtil.MaxAbsDiff(pa, pb), name);
        }
    }

    [TestMethod]
    public void ProgressReachesTheCallbackAndMLContextLog()
    {
        var ml = new MLContext(seed: 1);
        var logged = new List<string>();
        ml.Log += (_, e) => { lock (logged) { logged.Add(e.Message); } };
        var reports = new List<TrainingProgress>();
        manual_seed(4);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var options = new TrainingOptions { Epochs = 2, LogEverySteps = 2, WarmupSteps = 1, Progress = new SynchronousProgress<TrainingProgress>(reports.Add) };
        using var reporter = new TrainingReporter(ml, "ReverseTrainer", options.Progress);
        new TrainingLoop<int[]>(model, options, new ReverseTask(model, 16, 4, dropout: false), reporter, 32, TestUtil.Tiny().ToJson()).Run();

        // 4 batches an epoch: step reports at steps 2, 4, 6, 8 and an epoch report after each epoch.
        Assert.AreEqual(4, reports.Count(r => r.Kind == TrainingProgressKind.Step));
        var epochs = reports.Where(r => r.Kind == TrainingProgressKind.EpochEnd).ToList();
        Assert.AreEqual(2, epochs.Count);
        Assert.AreEqual("loss", epochs[0].ValidationMetric);
        Assert.AreEqual("sample 0", epochs[0].Sample);
        // The epoch report carries the epoch's mean training loss, even right after a step report.
        Assert.IsTrue(epochs.All(r => double.IsFinite(r.Loss) && r.Loss > 0 && r.Throughput > 0), string.Join("; ", epochs));
        TrainingProgress step = reports[0];
        Assert.AreEqual(2, step.Step);
        Assert.AreEqual(8, step.TotalSteps);
        Assert.AreEqual("tokens", step.ThroughputUnit);
        Assert.IsGreaterThan(0.0, step.Throughput);
        Assert.IsGreaterThan(0.0, step.LearningRate);
        Assert.IsTrue(double.IsFinite(step.Loss) && step.Loss > 0);
        lock (logged)
        {
            Assert.IsTrue(logged.Any(m => m.Contains("epoch 1/2 step 2/8 loss")), string.Join("\n", logged.Take(20)));
            Assert.IsTrue(logged.Any(m => m.Contains("sample after epoch 1: sample 0")));
        }
    }

    [TestMethod]
    public void EarlyStoppingStopsAndRestoresTheBestWeights()
    {
        manual_seed(8);
        using var model = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        // Validation gets worse after epoch 2: with patience 2, training stops after epoch 4 and restores epoch 2.
        var task = new ReverseTask(model, 8, 4, dropout: false) { ValidationScript = new[] { 3.0, 2.0, 2.5, 2.6, 1.0, 0.5 } };
        var options = new TrainingOptions { Epochs = 6, EarlyStoppingPatience = 2, LogEverySteps = 1000 };
        Dictionary<string, Tensor>? atEpoch2 = null;
        task.AfterValidation = epoch =>
        {
            if (epoch == 1)
            {
                atEpoch2 = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
            }
        };
        TrainingResult result = Run(model, task, options);
        Assert.IsTrue(result.StoppedEarly);
        Assert.AreEqual(4, result.EpochsCompleted);
        foreach ((string name, Tensor value) in model.state_dict())
        {
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(value, atEpoch2![name]), 0.0, name);
        }
    }

    [TestMethod]
    public void CheckpointAveragingEndsWithTheMeanOfTheLastSnapshotsAndResumesIt()
    {
        var averager = new CheckpointAverager(5, 0.2);
        Assert.AreEqual(4, averager.Spacing(100));
        CollectionAssert.AreEqual(new long[] { 84, 88, 92, 96, 100 }, Enumerable.Range(1, 110).Where(s => averager.IsSnapshotStep(s, 100)).Select(s => (long)s).ToArray());
        Assert.IsFalse(new CheckpointAverager(1, 0.2).IsSnapshotStep(100, 100), "1: no averaging");

        TrainingOptions Options() => new() { Epochs = 10, LearningRate = 3e-3, WarmupSteps = 0, LogEverySteps = 1000 };
        // Without averaging: the weights after each of the 10 steps (one step per epoch).
        manual_seed(3);
        using var plain = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        var after = new List<Dictionary<string, Tensor>>();
        Dictionary<string, Tensor> Copy(nn.Module m) => m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var plainTask = new ReverseTask(plain, 8, 8, dropout: false) { AfterValidation = _ => after.Add(Copy(plain)) };
        Run(plain, plainTask, Options());
        Assert.AreEqual(10, after.Count);

        // Averaging 3 over the last half of 10 steps: spacing 1, steps 8, 9 and 10.
        TrainingOptions averaging = Options();
        averaging.AveragedCheckpoints = 3;
        averaging.AveragingSpan = 0.5;
        manual_seed(3);
        using var averaged = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        Run(averaged, new ReverseTask(averaged, 8, 8, dropout: false), averaging);
        foreach ((string name, Tensor value) in averaged.state_dict())
        {
            using Tensor mean = (after[7][name] + after[8][name] + after[9][name]) / 3;
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(value, mean), 1e-6, name);
        }
        Assert.IsGreaterThan(1e-4, TestUtil.MaxAbsDiff(averaged.parameters().First(), after[9][averaged.named_parameters().First().name]), "not the last weights");

        // Interrupted after step 9 (two snapshots in the mean), then resumed from the checkpoint: the same average.
        string checkpoint = TestUtil.TempPath();
        TrainingOptions interrupted = Options();
        interrupted.AveragedCheckpoints = 3;
        interrupted.AveragingSpan = 0.5;
        interrupted.CheckpointPath = checkpoint;
        interrupted.MaxSteps = 9;
        interrupted.RestoreBestWeights = false; // the resumed task's scripted validation restarts its sequence
        manual_seed(3);
        using var first = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        Assert.IsTrue(Run(first, new ReverseTask(first, 8, 8, dropout: false), interrupted).Interrupted);
        Assert.IsTrue(File.Exists(checkpoint + ".average"));
        interrupted.MaxSteps = null;
        manual_seed(99);
        using var resumed = new EncoderDecoderTransformer("t", TestUtil.Tiny(), ReverseTask.Vocabulary);
        Run(resumed, new ReverseTask(resumed, 8, 8, dropout: false), interrupted);
        foreach ((string name, Tensor value) in resumed.state_dict())
        {
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(value, averaged.state_dict()[name]), 1e-6, name);
        }
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { AveragingSpan = 0 }.Validate());
        StringAssert.Contains(bad.Message, "AveragingSpan");
    }

    [TestMethod]
    public void CheckpointAveragingTakesTheAskedNumberOfSnapshotsWhenThePlanMovesAfterTheFirst()
    {
        // A time budget's plan can move after the first snapshot. The old rule recomputed every snapshot step from the
        // new total and took 6 where 5 were asked (a translation run); now the rest are spread to the new end, or, when
        // the plan grew so far that the first snapshot is stale, the snapshots start again.
        using var model = nn.Linear(2, 2);
        long[] Snapshots(int count, double span, params (long From, long Total)[] plans)
        {
            using var averager = new CheckpointAverager(count, span);
            long end = plans[^1].Total;
            for (long step = 1; step <= end; step++)
            {
                long total = plans.Last(p => p.From <= step).Total;
                if (plans.Any(p => p.From == step))
                {
                    averager.DropIfStale(total, out _); // as the training loop does after a move
                }
                if (averager.IsSnapshotStep(step, total))
                {
                    averager.Add(model, step);
                }
            }
            Assert.AreEqual(averager.Steps.Count, averager.Taken);
            return averager.Steps.ToArray();
        }

        CollectionAssert.AreEqual(new long[] { 84, 88, 92, 96, 100 }, Snapshots(5, 0.2, (1, 100)), "no move: as before");
        CollectionAssert.AreEqual(new long[] { 88, 94, 100 }, Snapshots(3, 0.2, (1, 100)), "uneven: as before");
        // A little longer: after 84 the other four are spread from 84 to 105.
        CollectionAssert.AreEqual(new long[] { 84, 90, 95, 100, 105 }, Snapshots(5, 0.2, (1, 100), (86, 105)));
        // A fifth longer: 84 falls more than a spacing (4) before the new plan's last fifth (96-120), so the mean is dropped
        // and the snapshots are the new plan's own.
        CollectionAssert.AreEqual(new long[] { 104, 108, 112, 116, 120 }, Snapshots(5, 0.2, (1, 100), (86, 120)));
        // Dropped with four of five taken: the new plan's own snapshots again; a growth within a spacing keeps the mean.
        CollectionAssert.AreEqual(new long[] { 104, 108, 112, 116, 120 }, Snapshots(5, 0.2, (1, 100), (97, 120)));
        CollectionAssert.AreEqual(new long[] { 84, 88, 92, 96, 104 }, Snapshots(5, 0.2, (1, 100), (97, 104)));
        // Shorter: after 84 and 88 the other three fall on the new plan's last steps, the last one at its end.
        CollectionAssert.AreEqual(new long[] { 84, 88, 90, 92, 94 }, Snapshots(5, 0.2, (1, 100), (89, 94)));
        // Cut to fewer steps than are left to take: fewer snapshots, never more, the last at the end.
        CollectionAssert.AreEqual(new long[] { 84, 88, 89, 90 }, Snapshots(5, 0.2, (1, 100), (89, 90)));
        // Moves before the first snapshot change nothing but the total the snapshots are spread over.
        CollectionAssert.AreEqual(new long[] { 168, 176, 184, 192, 200 }, Snapshots(5, 0.2, (1, 100), (50, 200)));
    }

    [TestMethod]
    public void ForwardAndBackwardRunOnTheMetaDevice()
    {
        // Every tensor the model creates must follow the device of its inputs: on the meta device a stray
        // CPU tensor fails loudly, which keeps the CUDA path honest without a GPU.
        foreach (NormPosition norm in new[] { NormPosition.Post, NormPosition.Pre })
        {
            TransformerConfig config = TestUtil.Tiny(norm, norm == NormPosition.Pre ? PositionalEncodingKind.Learned : PositionalEncodingKind.Sinusoidal);
            config.Dropout = 0.1;
            config.Activation = norm == NormPosition.Pre ? FeedForwardActivation.GeluTanh : FeedForwardActivation.Relu;
            using var model = new EncoderDecoderTransformer("t", config, 50).to(META);
            model.train();
            using Tensor source = zeros(new long[] { 2, 7 }, ScalarType.Int64, META);
            using Tensor target = zeros(new long[] { 2, 5 }, ScalarType.Int64, META);
            using Tensor sourceMask = zeros(new long[] { 2, 7 }, ScalarType.Bool, META);
            using Tensor logits = model.Forward(source, target, sourceMask);
            Assert.AreEqual(DeviceType.META, logits.device_type);
            CollectionAssert.AreEqual(new long[] { 2, 5, 50 }, logits.shape);
            using LossSum loss = LabelSmoothedCrossEntropy.Sum(logits, target, 0.1, ignoreIndex: 0);
            loss.Sum.backward();
            foreach ((string name, var p) in model.named_parameters())
            {
                Assert.IsNotNull(p.grad, name);
                Assert.AreEqual(DeviceType.META, p.grad.device_type, name);
            }

            // Decoding with the cache and attention weights, too.
            using var noGrad = no_grad();
            using Tensor memory = model.Encode(source, sourceMask);
            using KeyValueCache cache = model.Decoder.CreateCache();
            using Tensor step = model.Decode(target.narrow(1, 0, 1), memory, sourceMask, cache: cache);
            Assert.AreEqual(DeviceType.META, step.device_type);
        }
    }

    private static TrainingResult Run(nn.Module model, ReverseTask task, TrainingOptions options, string? configJson = null)
    {
        using var reporter = new TrainingReporter(null, "test", null);
        return new TrainingLoop<int[]>(model, options, task, reporter, 32, configJson ?? TestUtil.Tiny().ToJson()).Run();
    }

    private static TransformerConfig Dropout(TransformerConfig config)
    {
        config.Dropout = 0.1;
        return config;
    }

    /// <summary>Sequences of 6 tokens in 3..11 (0 pad, 1 start, 2 end); the target is the reversed sequence.</summary>
    private sealed class ReverseTask : ITrainingTask<int[]>
    {
        public const int Vocabulary = 12;
        private const int Length = 6;
        private readonly EncoderDecoderTransformer _model;
        private readonly long[][] _data;
        private readonly int _batchSize;
        private readonly bool _shuffle;
        private int _epoch;

        public ReverseTask(EncoderDecoderTransformer model, int samples, int batchSize, bool dropout, bool shuffle = true)
        {
            _model = model;
            _batchSize = batchSize;
            _shuffle = shuffle;
            var random = new Random(42);
            _data = Enumerable.Range(0, samples).Select(_ => Enumerable.Range(0, Length).Select(_ => (long)random.Next(3, Vocabulary)).ToArray()).ToArray();
        }

        public double[]? ValidationScript { get; init; }

        public Action<int>? AfterValidation { get; set; }

        /// <summary>Called after each batch's loss (tests move a synthetic clock with it).</summary>
        public Action? AfterLoss { get; init; }

        public string ThroughputUnit => "tokens";

        public IReadOnlyList<int[]> PlanEpoch(int epoch, Random random)
        {
            int[] order = Enumerable.Range(0, _data.Length).ToArray();
            if (_shuffle)
            {
                random.Shuffle(order);
            }
            return order.Chunk(_batchSize).ToList();
        }

        public LossSum ComputeLoss(int[] batch)
        {
            using var scope = NewDisposeScope();
            long[] src = batch.SelectMany(i => _data[i]).ToArray();
            long[] decoderIn = batch.SelectMany(i => new long[] { 1 }.Concat(_data[i].Reverse())).ToArray();
            long[] decoderOut = batch.SelectMany(i => _data[i].Reverse().Concat(new long[] { 2 })).ToArray();
            Tensor source = tensor(src, new long[] { batch.Length, Length });
            Tensor input = tensor(decoderIn, new long[] { batch.Length, Length + 1 });
            Tensor output = tensor(decoderOut, new long[] { batch.Length, Length + 1 });
            Tensor logits = _model.Forward(source, input);
            LossSum loss = LabelSmoothedCrossEntropy.Sum(logits, output, 0.0, ignoreIndex: 0);
            AfterLoss?.Invoke();
            return new LossSum(loss.Sum.MoveToOuterDisposeScope(), loss.Count.MoveToOuterDisposeScope());
        }

        public ValidationResult? Validate()
        {
            int epoch = _epoch++;
            double value = ValidationScript is null ? 1.0 / (epoch + 1) : ValidationScript[epoch];
            AfterValidation?.Invoke(epoch);
            return new ValidationResult("loss", value, HigherIsBetter: false);
        }

        public string? Sample(int epoch) => $"sample {epoch}";
    }

    /// <summary>A clock that moves only when told.</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan time) => _ticks += time.Ticks;
    }
}

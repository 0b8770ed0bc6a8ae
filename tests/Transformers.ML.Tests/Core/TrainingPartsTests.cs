using TorchSharp;

using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Tests.Core;

[TestClass]
public sealed class TrainingPartsTests
{
    [TestMethod]
    public void InverseSquareRootScheduleMatchesThePaper()
    {
        var schedule = new InverseSquareRootSchedule(modelDimension: 512, warmupSteps: 4000);
        // lrate = 512^-0.5 * min(step^-0.5, step * 4000^-1.5)
        Assert.AreEqual(512.0.Pow(-0.5) * 4000.0.Pow(-1.5), schedule.At(1), 1e-15);
        Assert.AreEqual(6.98771242e-4, schedule.At(4000), 1e-11); // the peak, at the end of warmup
        Assert.AreEqual(512.0.Pow(-0.5) * 2000 * 4000.0.Pow(-1.5), schedule.At(2000), 1e-15);
        Assert.AreEqual(512.0.Pow(-0.5) / 100.0, schedule.At(10000), 1e-15); // 10000^-0.5 = 1/100
        Assert.IsLessThan(schedule.At(4000), schedule.At(4001));
    }

    [TestMethod]
    public void WarmupCosineScheduleHasItsShape()
    {
        var schedule = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110, minimum: 1e-4);
        Assert.AreEqual(1e-4, schedule.At(1), 1e-15);
        Assert.AreEqual(5e-4, schedule.At(5), 1e-15);
        Assert.AreEqual(1e-3, schedule.At(10), 1e-15);
        Assert.AreEqual(1e-4 + 0.9e-3 * 0.5, schedule.At(60), 1e-12); // half-way: cos(pi/2) = 0
        Assert.AreEqual(1e-4, schedule.At(110), 1e-15);
        Assert.AreEqual(1e-4, schedule.At(500), 1e-15);
    }

    [TestMethod]
    public void AWarmupCosineScheduleWhosePlanMovesGoesOnFromItsProgressAndCatchesUpWithTheNewPlan()
    {
        double Cosine(double progress) => 1e-4 + 0.9e-3 * 0.5 * (1 + Math.Cos(Math.PI * progress));
        var schedule = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110, minimum: 1e-4);
        Assert.AreEqual(new ScheduleAnchor(5, 0, 0.5), schedule.AnchorAt(5), "in the warmup: half the peak");
        Assert.AreEqual(new ScheduleAnchor(10, 0), schedule.AnchorAt(10), "the warmup's last step starts the decay");
        ScheduleAnchor anchor = schedule.AnchorAt(60)!;
        Assert.AreEqual(new ScheduleAnchor(60, 0.5), anchor);

        // The plan shrinks to 80 steps at step 60: its own progress there is 50/70, the run's 0.5. The gap closes over a
        // twentieth of the plan (4 steps); from step 64 on the schedule is the new plan's cosine.
        var shorter = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 80, minimum: 1e-4, anchor);
        Assert.AreEqual(schedule.At(60), shorter.At(60), 1e-15, "the step where the plan moved keeps its learning rate");
        Assert.AreEqual(Cosine(52.0 / 70 + (0.5 - 50.0 / 70) * 0.5), shorter.At(62), 1e-15, "half-way through the catch-up");
        Assert.AreEqual(Cosine(54.0 / 70), shorter.At(64), 1e-15);
        Assert.AreEqual(Cosine(65.0 / 70), shorter.At(75), 1e-15);
        Assert.AreEqual(1e-4, shorter.At(80), 1e-15);
        Assert.AreEqual(1e-3, shorter.At(10), 1e-15, "steps before the anchor keep the warmup");

        // It grows to 210 at step 60 instead: its progress there is 50/200 = 0.25, the run is ahead at 0.5. The learning
        // rate holds until the plan comes level (step 110), then follows it.
        var longer = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 210, minimum: 1e-4, anchor);
        Assert.AreEqual(schedule.At(60), longer.At(60), 1e-15);
        Assert.AreEqual(schedule.At(60), longer.At(85), 1e-15);
        Assert.AreEqual(Cosine(0.5), longer.At(110), 1e-15);
        Assert.AreEqual(Cosine(150.0 / 200), longer.At(160), 1e-15);

        // Moves compose: the shrunk plan moved again at step 62, in its catch-up, to 90 steps.
        var again = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 90, minimum: 1e-4, shorter.AnchorAt(62));
        Assert.AreEqual(shorter.At(62), again.At(62), 1e-15);
        Assert.AreEqual(Cosine(80.0 / 80), again.At(90), 1e-15);
        for (long step = 62; step < 90; step++)
        {
            Assert.IsTrue(again.At(step + 1) <= again.At(step), $"step {step + 1}: the decay never rises");
        }
    }

    [TestMethod]
    public void AWarmupWhosePlanMovesGoesOnFromItsRampToThePeakNeverSteeperThanTheNewPlansOwn()
    {
        double Cosine(double progress) => 1e-4 + 0.9e-3 * 0.5 * (1 + Math.Cos(Math.PI * progress));
        var schedule = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110, minimum: 1e-4);
        ScheduleAnchor anchor = schedule.AnchorAt(5)!;

        // The plan grows at step 5 and its warmup with it, to 20 steps: a fresh ramp would drop the learning rate from
        // 5/10 to 6/20 of the peak. Instead it goes on from half the peak to the peak at step 20, then the cosine from there.
        var longer = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 20, totalSteps: 210, minimum: 1e-4, anchor);
        Assert.AreEqual(20, longer.WarmupEnd);
        Assert.AreEqual(schedule.At(5), longer.At(5), 1e-15, "the step where the plan moved keeps its learning rate");
        Assert.AreEqual(1e-3 * (0.5 + 0.5 * 5 / 15), longer.At(10), 1e-15);
        Assert.AreEqual(1e-3, longer.At(20), 1e-15);
        Assert.AreEqual(Cosine(1.0 / 190), longer.At(21), 1e-15);
        Assert.AreEqual(1e-4, longer.At(210), 1e-15);
        ScheduleAnchor inRamp = longer.AnchorAt(10)!;
        Assert.AreEqual((10L, 0.0), (inRamp.Step, inRamp.Progress));
        Assert.AreEqual(2.0 / 3, inRamp.Ramp!.Value, 1e-12, "in the ramp: the fraction of the peak");
        Assert.AreEqual(new ScheduleAnchor(25, 5.0 / 190), longer.AnchorAt(25));

        // It shrinks instead, its warmup to 6 steps: reaching the peak at step 6 would take half the peak in one step. The
        // ramp keeps the new plan's slope, a sixth of the peak a step, and ends at step 8; the decay starts there.
        var shorter = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 6, totalSteps: 30, minimum: 1e-4, anchor);
        Assert.AreEqual(8, shorter.WarmupEnd);
        Assert.AreEqual(1e-3 * (0.5 + 0.5 / 3), shorter.At(6), 1e-15);
        Assert.AreEqual(1e-3, shorter.At(8), 1e-15);
        Assert.AreEqual(Cosine(1.0 / 22), shorter.At(9), 1e-15);

        // Moves compose: the grown plan moves again at step 10 (two thirds of the peak), its warmup cut to 12 steps: the
        // last third at the new plan's slope, a twelfth of the peak a step, ends at step 14.
        var again = new WarmupCosineSchedule(peak: 1e-3, warmupSteps: 12, totalSteps: 60, minimum: 1e-4, longer.AnchorAt(10));
        Assert.AreEqual(14, again.WarmupEnd);
        Assert.AreEqual(longer.At(10), again.At(10), 1e-15);
        Assert.AreEqual(1e-3 * (2.0 / 3 + 1.0 / 6), again.At(12), 1e-15);
        Assert.AreEqual(1e-3, again.At(14), 1e-15);
        Assert.AreEqual(Cosine(1.0 / 46), again.At(15), 1e-15);
        foreach ((WarmupCosineSchedule s, long moved) in new[] { (longer, 5L), (shorter, 5L), (again, 10L) })
        {
            for (long step = moved; step < 30; step++)
            {
                double rise = s.At(step + 1) - s.At(step);
                Assert.IsLessThanOrEqualTo(1e-3 / 6 + 1e-15, rise, $"step {step + 1}: no jump up");
                Assert.IsTrue(step + 1 <= s.WarmupEnd ? rise > 0 : rise <= 0, $"step {step + 1}: up in the ramp, down after");
            }
        }
    }

    [TestMethod]
    public void LabelSmoothedLossEqualsItsDefinitionOnAHandExample()
    {
        // Logits ln(1), ln(2), ln(5): p = (0.125, 0.25, 0.625). Target 2, eps 0.3, K = 3:
        // q = (0.1, 0.1, 0.8); loss = -(0.1 ln 0.125 + 0.1 ln 0.25 + 0.8 ln 0.625).
        using Tensor logits = tensor(new float[] { 0f, MathF.Log(2), MathF.Log(5) }, new long[] { 1, 3 });
        using Tensor target = tensor(new long[] { 2 });
        double expected = -(0.1 * Math.Log(0.125) + 0.1 * Math.Log(0.25) + 0.8 * Math.Log(0.625));
        using LossSum loss = LabelSmoothedCrossEntropy.Sum(logits, target, 0.3);
        Assert.AreEqual(expected, loss.Sum.item<float>(), 1e-6);
        Assert.AreEqual(1L, loss.Count.item<long>());
    }

    [TestMethod]
    public void LabelSmoothedLossIgnoresPaddingAndAgreesWithLibtorch()
    {
        manual_seed(1);
        using Tensor logits = randn(2, 5, 7);
        using Tensor targets = tensor(new long[] { 1, 2, 3, 0, 0, 6, 5, 4, 3, 0 }, new long[] { 2, 5 });
        using Tensor mean = LabelSmoothedCrossEntropy.Mean(logits, targets, 0.1, ignoreIndex: 0);
        using Tensor reference = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index: 0, label_smoothing: 0.1);
        Assert.AreEqual(reference.item<float>(), mean.item<float>(), 1e-5);

        // Changing the logits at padded targets changes nothing.
        using Tensor other = logits.clone();
        other[0, 3] = randn(7);
        using Tensor again = LabelSmoothedCrossEntropy.Mean(other, targets, 0.1, ignoreIndex: 0);
        Assert.AreEqual(mean.item<float>(), again.item<float>(), 0f);

        using LossSum sum = LabelSmoothedCrossEntropy.Sum(logits, targets, 0.1, ignoreIndex: 0);
        Assert.AreEqual(7L, sum.Count.item<long>());
    }

    [TestMethod]
    public void AdamWMatchesLibtorchAdamW()
    {
        manual_seed(2);
        using var ours = nn.Linear(6, 4);
        using var theirs = nn.Linear(6, 4);
        theirs.load_state_dict(ours.state_dict());
        using var optimizer = new Transformers.ML.Core.Training.AdamW(ours.named_parameters(), 0.9, 0.98, 1e-9, weightDecay: 0.1, decays: (_, _) => true);
        using var reference = optim.AdamW(theirs.parameters(), lr: 0.01, beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.1);
        for (int step = 0; step < 5; step++)
        {
            using Tensor x = randn(3, 6);
            optimizer.ZeroGrad();
            ours.forward(x).pow(2).sum().backward();
            optimizer.Step(0.01);
            reference.zero_grad();
            theirs.forward(x).pow(2).sum().backward();
            reference.step();
        }
        Assert.IsLessThan(1e-6, TestUtil.MaxAbsDiff(ours.weight!, theirs.weight!));
        Assert.IsLessThan(1e-6, TestUtil.MaxAbsDiff(ours.bias!, theirs.bias!));
        Assert.AreEqual(5, optimizer.StepCount);
    }

    [TestMethod]
    public void DeviceSelectionFailsClearlyOrFallsBack()
    {
        Assert.AreEqual(DeviceType.CPU, DeviceSelector.Resolve("auto", false, null, cudaAvailable: false, cudaDevices: 0).type);
        Assert.AreEqual(DeviceType.CUDA, DeviceSelector.Resolve("auto", false, null, cudaAvailable: true, cudaDevices: 1).type);
        Assert.AreEqual(1, DeviceSelector.Resolve("cuda:1", false, null, cudaAvailable: true, cudaDevices: 2).index);

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => DeviceSelector.Resolve("cuda", false, null, cudaAvailable: false, cudaDevices: 0));
        StringAssert.Contains(e.Message, "CUDA is not available");
        StringAssert.Contains(e.Message, "AllowCpuFallback");
        e = Assert.ThrowsExactly<InvalidOperationException>(() => DeviceSelector.Resolve("cuda:3", false, null, cudaAvailable: true, cudaDevices: 2));
        StringAssert.Contains(e.Message, "only 2 CUDA device(s)");

        string? warning = null;
        Device fallback = DeviceSelector.Resolve("cuda:0", true, w => warning = w, cudaAvailable: false, cudaDevices: 0);
        Assert.AreEqual(DeviceType.CPU, fallback.type);
        StringAssert.Contains(warning!, "Falling back to the CPU");

        var parse = Assert.ThrowsExactly<ArgumentException>(() => DeviceSelector.Parse("gpu"));
        StringAssert.Contains(parse.Message, "found \"gpu\"");
        // On this machine (CPU backend) "auto" is the CPU and "cuda" fails.
        Assert.AreEqual(DeviceType.CPU, DeviceSelector.Resolve("auto", false).type);
    }

    [TestMethod]
    public void SetupSeedsInitialisationEvenWhileOtherThreadsSeedAndResolvesTheDevice()
    {
        var options = new TrainingOptions { Seed = 17, Device = "cpu" };
        Assert.AreEqual(DeviceType.CPU, TrainingSetup.Prepare(options).type);
        using var first = TrainingSetup.Seeded(options, () => nn.Linear(64, 64));
        using var second = TrainingSetup.Seeded(options, () => nn.Linear(64, 64));
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(first.weight!, second.weight!));
        using var third = TrainingSetup.Seeded(new TrainingOptions { Seed = 18 }, () => nn.Linear(64, 64));
        Assert.IsGreaterThan(0.0, TestUtil.MaxAbsDiff(first.weight!, third.weight!));

        // Fits on other threads seed libtorch's one generator and build their models from it: a model built meanwhile
        // still gets the weights of its own seed (the builds take turns).
        using var stop = new CancellationTokenSource();
        Task[] others = Enumerable.Range(0, 2).Select(t => Task.Run(() =>
        {
            for (int step = 0; !stop.IsCancellationRequested; step++)
            {
                TrainingSetup.Seeded(new TrainingOptions { Seed = 1000 * t + step }, () => nn.Linear(64, 64)).Dispose();
            }
        })).ToArray();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                using var built = TrainingSetup.Seeded(options, () => nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)));
                using var again = TrainingSetup.Seeded(options, () => nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)));
                Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(built.parameters().Last(), again.parameters().Last()), $"build {i}");
                Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(first.weight!, built.parameters().First()), $"build {i}: the first layer is the seed's");
            }
        }
        finally
        {
            stop.Cancel();
            Task.WaitAll(others);
        }

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TrainingSetup.Prepare(new TrainingOptions { Device = "cuda" }));
        StringAssert.Contains(e.Message, "CUDA is not available");
        Assert.AreEqual(DeviceType.CPU, TrainingSetup.Prepare(new TrainingOptions { Device = "cuda", AllowCpuFallback = true }).type);
    }

    [TestMethod]
    public void StepRandomDrawsLibtorchsDropoutFromTheStepsGeneratorAndMovesItsDrawsToOtherDevices()
    {
        using Tensor x = randn(new long[] { 64, 33 });
        using var generator = new Generator(0);

        // On the CPU: libtorch's own dropout, mask for mask, from a generator seeded alike.
        manual_seed(5);
        using Tensor expected = F.dropout(x, 0.3, true);
        generator.manual_seed(5);
        Tensor dropped;
        using (StepRandom.Use(generator))
        {
            dropped = StepRandom.Dropout(x, 0.3, true);
        }
        using (dropped)
        {
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(expected, dropped));
            long zeros = dropped.eq(0).sum().item<long>();
            Assert.IsTrue(zeros is > 64 * 33 / 5 and < 64 * 33 * 2 / 5, $"{zeros} of {64 * 33} dropped at p 0.3");
        }
        using (StepRandom.Use(generator))
        using (Tensor evaluated = StepRandom.Dropout(x, 0.3, training: false))
        {
            Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(x, evaluated), "not in training: the input");
        }
        Assert.IsNull(StepRandom.Current, "the scope restores the thread's generator");

        // The step's draws repeat under its seed, whatever draws from libtorch's generator in between.
        Tensor Draw(long seed, bool disturb)
        {
            generator.manual_seed(seed);
            using (StepRandom.Use(generator))
            {
                Tensor first = StepRandom.Uniform(new long[] { 16 }, CPU);
                if (disturb)
                {
                    manual_seed(123);
                    rand(1000).Dispose();
                }
                return cat(new[] { first, StepRandom.NormalLike(first) });
            }
        }
        using Tensor calm = Draw(11, disturb: false), disturbed = Draw(11, disturb: true), other = Draw(12, disturb: false);
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(calm, disturbed));
        Assert.IsGreaterThan(0.0, TestUtil.MaxAbsDiff(calm, other));

        // Another device: TorchSharp's generators are CPU ones, which libtorch refuses for a CUDA tensor, so the small
        // draws are made on the CPU (the generator moves on by them) and moved, and dropout is libtorch's. The meta device
        // stands in for CUDA: it accepts a CPU generator without drawing from it, so a draw made there directly would leave
        // the generator where it was (the refusal itself needs a GPU to check).
        generator.manual_seed(21);
        using Tensor untouched = rand(new long[] { 3 }, generator: generator); // what the generator gives first
        generator.manual_seed(21);
        using (StepRandom.Use(generator))
        using (Tensor onMeta = zeros(new long[] { 2, 3 }, device: META))
        using (Tensor uniform = StepRandom.Uniform(new long[] { 4 }, META))
        using (Tensor normal = StepRandom.NormalLike(onMeta))
        using (Tensor metaDropped = StepRandom.Dropout(onMeta, 0.5, true))
        using (Tensor next = rand(new long[] { 3 }, generator: generator))
        {
            Assert.AreEqual(DeviceType.META, uniform.device_type);
            Assert.AreEqual(DeviceType.META, normal.device_type);
            Assert.AreEqual(DeviceType.META, metaDropped.device_type);
            Assert.IsGreaterThan(0.0, TestUtil.MaxAbsDiff(untouched, next), "the draws were made from the generator, on the CPU");
        }
    }

    [TestMethod]
    public void EarlyStoppingCountsEvaluationsWithoutImprovement()
    {
        var stopping = new EarlyStopping(patience: 2, minDelta: 0.01);
        Assert.IsTrue(stopping.Update(new ValidationResult("loss", 1.0, false)));
        Assert.IsTrue(stopping.Update(new ValidationResult("loss", 0.9, false)));
        Assert.IsFalse(stopping.Update(new ValidationResult("loss", 0.895, false))); // below min delta
        Assert.IsFalse(stopping.ShouldStop);
        Assert.IsFalse(stopping.Update(new ValidationResult("loss", 0.95, false)));
        Assert.IsTrue(stopping.ShouldStop);
        Assert.AreEqual(0.9, stopping.Best);

        var accuracy = new EarlyStopping(patience: 1, minDelta: 0);
        accuracy.Update(new ValidationResult("accuracy", 0.5, true));
        Assert.IsTrue(accuracy.Update(new ValidationResult("accuracy", 0.6, true)));
        Assert.IsFalse(accuracy.Update(new ValidationResult("accuracy", 0.55, true)));
        Assert.IsTrue(accuracy.ShouldStop);
    }

    [TestMethod]
    public void InvalidTrainingOptionsNameTheOption()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { GradientAccumulationSteps = 0 }.Validate());
        StringAssert.Contains(e.Message, "GradientAccumulationSteps must be [1, 10000]; found 0");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { LearningRate = -1 }.Validate());
        StringAssert.Contains(e.Message, "LearningRate");
        Assert.ThrowsExactly<ArgumentException>(() => new TrainingOptions { Device = "tpu" }.Validate());
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { Precision = (TrainingPrecision)7 }.Validate());
        StringAssert.Contains(e.Message, "Precision must be Float32, BFloat16, Auto; found 7");
    }
}

internal static class DoubleExtensions
{
    public static double Pow(this double x, double y) => Math.Pow(x, y);
}

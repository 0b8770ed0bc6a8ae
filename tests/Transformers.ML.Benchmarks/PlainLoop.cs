using System.Diagnostics;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.Benchmarks;

/// <summary>The reference of the trainer-overhead rows: a plain TorchSharp training loop around a capability's loss.</summary>
internal static class PlainLoop
{
    /// <summary>
    /// Targets (tokens or images) per second of forward (<paramref name="loss"/> of step s), backward of the mean, clipping at 1 and
    /// an AdamW step; the first third of the steps warm up and are not timed.
    /// </summary>
    public static double Measure(AdamW optimizer, int steps, Func<int, LossSum> loss, Func<int, double> learningRate)
    {
        int warmup = steps / 3;
        long targets = 0;
        var clock = new Stopwatch();
        for (int step = 0; step < steps; step++)
        {
            if (step == warmup)
            {
                clock.Start();
            }
            using var scope = NewDisposeScope();
            optimizer.ZeroGrad();
            LossSum sum = loss(step);
            long count = sum.Count.item<long>();
            sum.Sum.div(count).backward();
            nn.utils.clip_grad_norm_(optimizer.Parameters, 1.0);
            optimizer.Step(learningRate(step + 1));
            if (step >= warmup)
            {
                targets += count;
            }
        }
        return targets / clock.Elapsed.TotalSeconds;
    }
}

/// <summary>The other side of the trainer-overhead rows: the throughput a capability's Fit reports.</summary>
internal static class TrainerThroughput
{
    /// <summary>
    /// Runs <paramref name="fit"/> with <paramref name="options"/> set to report three times over <paramref name="steps"/> steps;
    /// the mean throughput of the later reports (the first window includes warm-up, as the plain loop's first steps).
    /// </summary>
    public static double Measure(TrainingOptions options, int steps, Action fit)
    {
        var reports = new List<TrainingProgress>();
        options.MaxSteps = steps;
        options.LogEverySteps = steps / 3;
        options.Progress = new CallbackProgress(reports.Add);
        fit();
        return reports.Where(r => r.Kind == TrainingProgressKind.Step).Skip(1).Average(r => r.Throughput);
    }
}

using System.Diagnostics;
using static TorchSharp.torch;

namespace Transformers.ML.Benchmarks;

/// <summary>The fp32 matrix-multiply rate of libtorch: the roof that model FLOPs utilisation is measured against.</summary>
internal static class MatmulBenchmark
{
    /// <summary>
    /// Measures square fp32 products of a few sizes and returns the best GFLOP/s seen: the roof of the machine.
    /// Each sample is a round of back-to-back products (sustained work, as in training, not one call's latency);
    /// the median is reported too: on a shared 2-core machine it swings with other load, the best much less.
    /// </summary>
    public static double Run(ResultsTable table, BenchmarkOptions options)
    {
        double roof = 0;
        foreach (int n in new[] { 1024, 2048 })
        {
            int rounds = options.Quick ? 6 : 20;
            int perRound = n == 1024 ? 5 : 1;
            manual_seed(0);
            using Tensor a = randn(n, n);
            using Tensor b = randn(n, n);
            for (int i = 0; i < 5; i++)
            {
                mm(a, b).Dispose();
            }
            var seconds = new List<double>();
            for (int i = 0; i < rounds; i++)
            {
                var clock = Stopwatch.StartNew();
                for (int j = 0; j < perRound; j++)
                {
                    mm(a, b).Dispose();
                }
                seconds.Add(clock.Elapsed.TotalSeconds / perRound);
            }
            seconds.Sort();
            double flops = 2.0 * n * n * n;
            double best = flops / seconds[0] / 1e9;
            double median = flops / seconds[seconds.Count / 2] / 1e9;
            table.Add(new BenchmarkRow("core", $"fp32 matmul {n}^3 (libtorch)", best, "GFLOP/s", "-", $"best of {rounds} rounds; median {median:F0}"));
            roof = Math.Max(roof, best);
        }
        return roof;
    }
}

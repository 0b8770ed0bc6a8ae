using System.Diagnostics;
using static TorchSharp.torch;

namespace Transformers.ML.Benchmarks;

/// <summary>The fp32 matrix-multiply rate of libtorch: the roof that model FLOPs utilisation is measured against.</summary>
internal static class MatmulBenchmark
{
    /// <summary>Returns GFLOP/s of a 1024 x 1024 x 1024 fp32 matmul (median of repeated runs).</summary>
    public static double Run(ResultsTable table, BenchmarkOptions options)
    {
        const int n = 1024;
        int repeats = options.Quick ? 10 : 40;
        manual_seed(0);
        using Tensor a = randn(n, n);
        using Tensor b = randn(n, n);
        for (int i = 0; i < 3; i++)
        {
            mm(a, b).Dispose();
        }
        var seconds = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            mm(a, b).Dispose();
            seconds.Add(clock.Elapsed.TotalSeconds);
        }
        seconds.Sort();
        double median = seconds[seconds.Count / 2];
        double gflops = 2.0 * n * n * n / median / 1e9;
        table.Add(new BenchmarkRow("core", "fp32 matmul 1024^3 (libtorch)", gflops, "GFLOP/s", "-", $"median of {repeats}"));
        return gflops;
    }
}

// TrainingPrecision.Auto: bfloat16 mixed precision pays only where the hardware multiplies bfloat16 natively (AVX512-BF16
// or AMX CPUs, CUDA GPUs from Ampere on); elsewhere libtorch converts and is slower than float32. Rather than guessing
// from CPU flags, the same matrix product is timed in both types once per device.
using System.Collections.Concurrent;
using System.Diagnostics;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

internal static class PrecisionSelector
{
    private static readonly ConcurrentDictionary<string, (bool BFloat16, double Ratio)> Measured = new();

    /// <summary>The type the blocks multiply in during training (null: float32), and a line for the log when it was measured.</summary>
    public static (ScalarType? Type, string? Reason) Resolve(TrainingPrecision precision, Device device) => precision switch
    {
        TrainingPrecision.Float32 => (null, null),
        TrainingPrecision.BFloat16 => (ScalarType.BFloat16, null),
        _ => Auto(device),
    };

    private static (ScalarType?, string) Auto(Device device)
    {
        (bool bfloat16, double ratio) = Measured.GetOrAdd(device.ToString(), _ => Measure(device));
        return (bfloat16 ? ScalarType.BFloat16 : null,
            $"Precision Auto: a bfloat16 matrix product runs {ratio:F2}x as fast as float32 on {device}: training in {(bfloat16 ? "bfloat16 mixed precision" : "float32")}.");
    }

    /// <summary>Best of 5 timings of a (512 x 512) x (512 x 512) product in each type, after a warm-up.</summary>
    private static (bool, double) Measure(Device device)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        double Time(ScalarType type)
        {
            // Fixed values, not rand: the timing does not depend on them, and libtorch's one generator is left alone
            // (a Fit on another thread may be building its model from it: TrainingSetup.Seeded).
            Tensor a = linspace(0, 1, 512 * 512, device: device).reshape(512, 512).to(type), b = a.t().contiguous();
            a.mm(b).sum().to(ScalarType.Float32).item<float>(); // warm-up (and, on a GPU, a synchronisation)
            double best = double.MaxValue;
            for (int i = 0; i < 5; i++)
            {
                var clock = Stopwatch.StartNew();
                a.mm(b).sum().to(ScalarType.Float32).item<float>();
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            return best;
        }
        double ratio = Time(ScalarType.Float32) / Time(ScalarType.BFloat16);
        return (ratio >= 1.3, ratio);
    }
}

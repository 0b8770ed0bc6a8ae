// The machine a run measured, printed above its table: speeds (int8 gains above all) differ between hosts of the same
// size, and BENCHMARKS.md keeps runs of several.
using System.Runtime.InteropServices;

namespace Transformers.ML.Benchmarks;

internal static class HostInfo
{
    /// <summary>
    /// The processor (Linux: /proc/cpuinfo's model name and family, and which of the int8 and bfloat16 instruction sets it
    /// has), the logical processors this process sees, and the operating system.
    /// </summary>
    public static string Describe()
    {
        string cpu = RuntimeInformation.ProcessArchitecture.ToString();
        const string cpuinfo = "/proc/cpuinfo";
        if (File.Exists(cpuinfo))
        {
            string[] lines = File.ReadAllLines(cpuinfo);
            string? Field(string name) => lines.FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal) && l.Contains(':'))?.Split(':', 2)[1].Trim();
            var flags = (Field("flags") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            string[] shown = new[] { "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8" }.Where(flags.Contains).ToArray();
            cpu = $"{Field("model name") ?? cpu}, family {Field("cpu family") ?? "?"} model {Field("model") ?? "?"}" +
                (shown.Length > 0 ? $" ({string.Join(", ", shown)})" : "");
        }
        return $"{cpu}; {Environment.ProcessorCount} logical processors; {RuntimeInformation.OSDescription}";
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

/// <summary>Turns the <see cref="TrainingOptions.Device"/> option into a libtorch device.</summary>
internal static class DeviceSelector
{
    /// <summary>Parses "auto", "cpu", "cuda", "cuda:N" (case-insensitive); throws naming the option otherwise.</summary>
    public static (string Kind, int? Index) Parse(string? spec)
    {
        string text = (spec ?? "").Trim().ToLowerInvariant();
        if (text is "auto" or "cpu" or "cuda")
        {
            return (text, null);
        }
        if (text.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(text.AsSpan(5), out int index) && index >= 0)
        {
            return ("cuda", index);
        }
        throw new ArgumentException($"Option Device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"; found \"{spec}\".", nameof(spec));
    }

    /// <summary>
    /// The device to train on. "auto" picks CUDA device 0 when available, else the CPU. A CUDA request without CUDA
    /// fails with a message that says why, or falls back to the CPU (with a warning) when <paramref name="allowCpuFallback"/> is set.
    /// </summary>
    public static Device Resolve(string? spec, bool allowCpuFallback, Action<string>? warn = null) =>
        Resolve(spec, allowCpuFallback, warn, cuda.is_available(), cuda.is_available() ? cuda.device_count() : 0);

    /// <summary>As <see cref="Resolve(string?, bool, Action{string}?)"/>, with CUDA availability given (for tests).</summary>
    internal static Device Resolve(string? spec, bool allowCpuFallback, Action<string>? warn, bool cudaAvailable, int cudaDevices)
    {
        (string kind, int? index) = Parse(spec);
        switch (kind)
        {
            case "cpu":
                return CPU;
            case "auto":
                return cudaAvailable ? new Device(DeviceType.CUDA, 0) : CPU;
        }

        int wanted = index ?? 0;
        string problem = !cudaAvailable
            ? $"Option Device is \"{spec}\" but CUDA is not available: the TorchSharp backend in use is the CPU one " +
              "(build with -p:TorchSharpBackend=cuda-linux or cuda-windows) or no CUDA driver and GPU were found."
            : wanted >= cudaDevices
                ? $"Option Device is \"{spec}\" but only {cudaDevices} CUDA device(s) exist (indices 0 to {cudaDevices - 1})."
                : "";
        if (problem.Length == 0)
        {
            return new Device(DeviceType.CUDA, wanted);
        }
        if (!allowCpuFallback)
        {
            throw new InvalidOperationException(problem + " Set AllowCpuFallback to train on the CPU instead.");
        }
        warn?.Invoke(problem + " Falling back to the CPU (AllowCpuFallback is set).");
        return CPU;
    }
}

namespace Transformers.ML.Examples;

/// <summary>The examples' --precision option.</summary>
internal static class Precisions
{
    public static TrainingPrecision Parse(string value) => value switch
    {
        "auto" => TrainingPrecision.Auto,
        "float32" => TrainingPrecision.Float32,
        "bfloat16" => TrainingPrecision.BFloat16,
        _ => throw new ArgumentException($"--precision must be auto, float32 or bfloat16; found '{value}'."),
    };
}

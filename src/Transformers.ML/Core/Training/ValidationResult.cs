namespace Transformers.ML;

/// <summary>A validation metric: its name, value and which direction is better.</summary>
public sealed record ValidationResult(string Metric, double Value, bool HigherIsBetter);

namespace Transformers.ML.Core.Training;

/// <summary>
/// Tracks the best validation metric and stops training after <c>patience</c> evaluations without an
/// improvement of at least <c>minDelta</c>.
/// </summary>
internal sealed class EarlyStopping(int? patience, double minDelta)
{
    /// <summary>Best value seen (null before the first evaluation).</summary>
    public double? Best { get; set; }

    /// <summary>Evaluations since the best one.</summary>
    public int BadEvaluations { get; set; }

    /// <summary>Records a result; returns true when it is a new best.</summary>
    public bool Update(ValidationResult result)
    {
        bool improved = Best is not double best
            || (result.HigherIsBetter ? result.Value > best + minDelta : result.Value < best - minDelta);
        if (improved)
        {
            Best = result.Value;
            BadEvaluations = 0;
        }
        else
        {
            BadEvaluations++;
        }
        return improved;
    }

    /// <summary>True when patience is set and exhausted.</summary>
    public bool ShouldStop => patience is int p && BadEvaluations >= p;
}

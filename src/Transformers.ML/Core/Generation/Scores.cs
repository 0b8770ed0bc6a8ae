namespace Transformers.ML.Core.Generation;

/// <summary>Helpers over plain score arrays, shared by the searches that run outside libtorch.</summary>
internal static class Scores
{
    /// <summary>The index of the largest value; the first one among equals (as libtorch's argmax on the CPU).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }
        return best;
    }

    /// <summary>Whether every value is a finite number (no NaN, no infinity).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float value in values)
        {
            if (!float.IsFinite(value))
            {
                return false;
            }
        }
        return true;
    }
}

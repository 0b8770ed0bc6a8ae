namespace Transformers.ML.Core.Training;

/// <summary>Cancellation while a trainer reads and prepares its data (TrainingOptions.Cancellation).</summary>
internal static class CancellableRows
{
    /// <summary>The items of <paramref name="items"/>, throwing <see cref="OperationCanceledException"/> before the next one once <paramref name="cancellation"/> is cancelled.</summary>
    public static IEnumerable<T> CheckedAgainst<T>(this IEnumerable<T> items, CancellationToken cancellation)
    {
        foreach (T item in items)
        {
            cancellation.ThrowIfCancellationRequested();
            yield return item;
        }
    }
}

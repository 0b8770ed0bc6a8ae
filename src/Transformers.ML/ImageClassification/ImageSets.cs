// Reading an image column (and a label column) into memory for training: (N, C, S, S) float images on the CPU, the
// preprocessing and resize of ImageInput applied, rows without a label or with an unreadable image skipped and counted.
using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.ImageClassification;

internal static class ImageSets
{
    /// <summary>
    /// Reads every row's image and, with <paramref name="labels"/>, its label (all 0 without); rows without a label, and
    /// unreadable images when <paramref name="skipUnreadable"/>, are skipped and counted in the log.
    /// </summary>
    public static ImageSet Read(IDataView data, ImageInput input, LabelInfo? labels, bool skipUnreadable, TrainingReporter reporter, string what,
        CancellationToken cancellation)
    {
        var columns = labels is null ? new[] { input.Column } : new[] { data.Schema[labels.Column], input.Column };
        using DataViewRowCursor cursor = data.GetRowCursor(columns);
        Func<long> label = labels is null ? () => 0 : labels.Getter(cursor);
        Func<ImageValue> image = ImageValue.Reader(input, cursor, skipUnreadable);
        var chunks = new List<Tensor>();
        var pending = new List<Tensor>();
        var classes = new List<long>();
        int missingLabel = 0;
        var unreadable = new List<string>();
        try
        {
            while (cursor.MoveNext())
            {
                cancellation.ThrowIfCancellationRequested();
                long value = label();
                if (value < 0)
                {
                    missingLabel++;
                    continue;
                }
                ImageValue read = image();
                if (read.Pixels is null)
                {
                    unreadable.Add(read.Error!.Message);
                    continue;
                }
                pending.Add(read.Pixels);
                classes.Add(value);
                if (pending.Count == 1024)
                {
                    chunks.Add(stack(pending.ToArray()));
                    pending.ForEach(t => t.Dispose());
                    pending.Clear();
                }
            }
            if (pending.Count > 0)
            {
                chunks.Add(stack(pending.ToArray()));
                pending.ForEach(t => t.Dispose());
            }
        }
        catch
        {
            // A cancelled Fit, an unreadable image, a bad label: the images read so far are freed before the error goes on.
            chunks.Concat(pending).ToList().ForEach(t => t.Dispose());
            throw;
        }
        if (missingLabel > 0)
        {
            reporter.Warning($"Skipped {missingLabel} {what} row(s) with a missing label in column '{labels!.Column}'.");
        }
        if (unreadable.Count > 0)
        {
            reporter.Warning($"Skipped {unreadable.Count} {what} image(s) that could not be read (SkipUnreadableImages), e.g.: {unreadable[0]}");
        }
        if (classes.Count == 0)
        {
            throw new InvalidOperationException(labels is null
                ? $"The {what} data has no row with a readable image in '{input.Column.Name}': nothing to train on."
                : $"The {what} data has no row with both a label in '{labels.Column}' and a readable image in '{input.Column.Name}': nothing to train on.");
        }
        Tensor images = chunks.Count == 1 ? chunks[0] : cat(chunks.ToArray());
        if (chunks.Count > 1)
        {
            chunks.ForEach(t => t.Dispose());
        }
        return new ImageSet(images, classes.ToArray());
    }
}

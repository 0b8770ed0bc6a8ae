// Pictures of training and evaluation, drawn with SkiaSharp (already a dependency through ML.NET's images): training
// curves (loss, validation metric and learning rate against steps and minutes, with the numbers in a CSV beside the
// PNG), a confusion matrix, and a labelled heat map of a matrix such as attention weights: lines, rectangles and text
// are all they need, so they are drawn here rather than with a plotting package. Every file is written atomically.
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using SkiaSharp;
using Transformers.ML.Core.IO;

namespace Transformers.ML;

/// <summary>PNG pictures of training runs, confusion matrices and attention weights.</summary>
public static class Charts
{
    private static readonly SKColor[] Palette =
    {
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189), new(140, 86, 75),
    };

    /// <summary>The labels' typefaces, looked up once.</summary>
    private static readonly SKTypeface Regular = SKTypeface.FromFamilyName("DejaVu Sans", SKFontStyle.Normal);
    private static readonly SKTypeface Bold = SKTypeface.FromFamilyName("DejaVu Sans", SKFontStyle.Bold);

    /// <summary>
    /// Writes the training curves of <paramref name="reports"/> (a trainer's <c>TrainingReports</c>, or any progress reports
    /// of one run) as a PNG: the training loss and the validation metric against optimizer steps and against minutes, and the
    /// learning rate against steps. The numbers go to a CSV of the same name beside it. Returns the CSV's path.
    /// </summary>
    public static string SaveTrainingCurves(IReadOnlyList<TrainingProgress> reports, string path, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(reports);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var steps = reports.Where(r => r.Kind == TrainingProgressKind.Step && double.IsFinite(r.Loss)).ToList();
        var epochs = reports.Where(r => r.Kind == TrainingProgressKind.EpochEnd && r.ValidationValue is double v && double.IsFinite(v)).ToList();
        if (steps.Count == 0 && epochs.Count == 0)
        {
            throw new ArgumentException("The reports hold no step with a loss and no epoch with a validation value: nothing to draw (was LogEverySteps larger than the run?).", nameof(reports));
        }
        string metric = epochs.FirstOrDefault()?.ValidationMetric ?? "validation";
        var loss = new Series("training loss", steps.Select(r => ((double)r.Step, r.Loss)).ToList());
        var validation = new Series($"validation {metric}", epochs.Select(r => ((double)r.Step, r.ValidationValue!.Value)).ToList());
        var lossByTime = new Series("training loss", steps.Select(r => (r.Elapsed.TotalMinutes, r.Loss)).ToList());
        var validationByTime = new Series($"validation {metric}", epochs.Select(r => (r.Elapsed.TotalMinutes, r.ValidationValue!.Value)).ToList());
        var rate = new Series("learning rate", steps.Select(r => ((double)r.Step, r.LearningRate)).ToList());

        const int panelWidth = 460, panelHeight = 340, header = 36;
        using var surface = SKSurface.Create(new SKImageInfo(3 * panelWidth, panelHeight + header));
        SKCanvas canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var titleLabel = Label(17, bold: true))
        {
            titleLabel.Draw(canvas, $"{title ?? "Training"}   {Progress(steps.Concat(epochs))}", 12, 24);
        }
        DrawPanel(canvas, new SKRect(0, header, panelWidth, header + panelHeight), "loss against steps", "optimizer step", "loss", new[] { loss, validation });
        DrawPanel(canvas, new SKRect(panelWidth, header, 2 * panelWidth, header + panelHeight), "loss against time", "minutes", "loss", new[] { lossByTime, validationByTime });
        DrawPanel(canvas, new SKRect(2 * panelWidth, header, 3 * panelWidth, header + panelHeight), "learning rate", "optimizer step", "learning rate", new[] { rate });
        WritePng(surface, path);

        string csv = Path.ChangeExtension(path, ".csv");
        var text = new StringBuilder("kind,epoch,step,total_steps,minutes,loss,learning_rate,throughput,validation_metric,validation_value\n");
        foreach (TrainingProgress r in reports)
        {
            text.AppendLine(string.Join(",", r.Kind == TrainingProgressKind.Step ? "step" : "epoch", I(r.Epoch), I(r.Step), I(r.TotalSteps), I(r.Elapsed.TotalMinutes),
                I(r.Loss), I(r.LearningRate), I(r.Throughput), r.ValidationMetric ?? "", r.ValidationValue is double v ? I(v) : ""));
        }
        AtomicFile.Write(csv, stream => stream.Write(Encoding.UTF8.GetBytes(text.ToString())));
        return csv;
    }

    /// <summary>
    /// Writes ML.NET's confusion matrix (rows: true class, columns: predicted class) as a PNG: counts, with each row's
    /// share as the colour, the per-class recall at the right. <paramref name="classNames"/> label the rows and columns.
    /// </summary>
    public static void SaveConfusionMatrix(ConfusionMatrix matrix, IReadOnlyList<string> classNames, string path, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(classNames);
        int k = matrix.NumberOfClasses;
        if (classNames.Count != k)
        {
            throw new ArgumentException($"The confusion matrix has {k} classes; {classNames.Count} class names were given.", nameof(classNames));
        }
        var counts = new double[k, k];
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < k; j++)
            {
                counts[i, j] = matrix.Counts[i][j];
            }
        }
        SaveConfusionMatrix(counts, classNames, path, title);
    }

    /// <summary>Writes a confusion matrix given as counts (rows: true class, columns: predicted class) as a PNG.</summary>
    public static void SaveConfusionMatrix(double[,] counts, IReadOnlyList<string> classNames, string path, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(counts);
        int k = counts.GetLength(0);
        if (counts.GetLength(1) != k || classNames.Count != k)
        {
            throw new ArgumentException($"Expected a square matrix with one name per class; found {counts.GetLength(0)} x {counts.GetLength(1)} and {classNames.Count} names.", nameof(counts));
        }
        var share = new double[k, k];
        for (int i = 0; i < k; i++)
        {
            double row = Enumerable.Range(0, k).Sum(j => counts[i, j]);
            for (int j = 0; j < k; j++)
            {
                share[i, j] = row > 0 ? counts[i, j] / row : 0;
            }
        }
        string[] rowLabels = classNames.Select((c, i) => $"{c}  ({share[i, i]:P0})").ToArray();
        DrawMatrix(share, rowLabels, classNames.ToArray(), path, title ?? "Confusion matrix (rows: truth, columns: prediction)",
            (i, j) => counts[i, j].ToString("N0", CultureInfo.InvariantCulture), "true class (recall)", "predicted class", maxValue: 1);
    }

    /// <summary>
    /// Writes a matrix of weights (e.g. the attention of one head: rows attend to columns) as a labelled heat map PNG.
    /// <paramref name="weights"/> is row-major, <paramref name="rowLabels"/>.Count x <paramref name="columnLabels"/>.Count.
    /// </summary>
    public static void SaveHeatmap(IReadOnlyList<float> weights, IReadOnlyList<string> rowLabels, IReadOnlyList<string> columnLabels, string path,
        string? title = null, string rowAxis = "query", string columnAxis = "key")
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(rowLabels);
        ArgumentNullException.ThrowIfNull(columnLabels);
        int rows = rowLabels.Count, columns = columnLabels.Count;
        if (weights.Count != rows * columns)
        {
            throw new ArgumentException($"Expected {rows} x {columns} = {rows * columns} weights; found {weights.Count}.", nameof(weights));
        }
        var values = new double[rows, columns];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++)
            {
                values[i, j] = weights[i * columns + j];
            }
        }
        double max = Math.Max(1e-12, weights.Max());
        DrawMatrix(values, rowLabels.ToArray(), columnLabels.ToArray(), path, title ?? "Attention",
            (i, j) => rows * columns <= 256 ? values[i, j].ToString("F2", CultureInfo.InvariantCulture) : null, rowAxis, columnAxis, maxValue: max);
    }

    private sealed record Series(string Name, List<(double X, double Y)> Points);

    private static void DrawPanel(SKCanvas canvas, SKRect area, string title, string xLabel, string yLabel, IReadOnlyList<Series> series)
    {
        var drawn = series.Where(s => s.Points.Count > 0).ToList();
        var plot = new SKRect(area.Left + 62, area.Top + 30, area.Right - 14, area.Bottom - 46);
        using var text = Label(12);
        using var bold = Label(13, bold: true);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        bold.Draw(canvas, title, area.Left + 62, area.Top + 18);
        canvas.DrawRect(plot, axis);
        if (drawn.Count == 0)
        {
            text.Draw(canvas, "no data", plot.MidX - 20, plot.MidY);
            return;
        }
        double xMin = drawn.Min(s => s.Points.Min(p => p.X)), xMax = drawn.Max(s => s.Points.Max(p => p.X));
        double yMin = drawn.Min(s => s.Points.Min(p => p.Y)), yMax = drawn.Max(s => s.Points.Max(p => p.Y));
        if (xMax <= xMin)
        {
            xMax = xMin + 1;
        }
        (yMin, yMax) = PaddedRange(yMin, yMax);
        float X(double x) => (float)(plot.Left + (x - xMin) / (xMax - xMin) * plot.Width);
        float Y(double y) => (float)(plot.Bottom - (y - yMin) / (yMax - yMin) * plot.Height);
        for (int t = 0; t <= 4; t++)
        {
            double xv = xMin + (xMax - xMin) * t / 4, yv = yMin + (yMax - yMin) * t / 4;
            canvas.DrawLine(X(xv), plot.Top, X(xv), plot.Bottom, grid);
            canvas.DrawLine(plot.Left, Y(yv), plot.Right, Y(yv), grid);
            string xs = Tick(xv), ys = Tick(yv);
            text.Draw(canvas, xs, X(xv) - text.MeasureText(xs) / 2, plot.Bottom + 15);
            text.Draw(canvas, ys, plot.Left - 6 - text.MeasureText(ys), Y(yv) + 4);
        }
        canvas.DrawRect(plot, axis);
        text.Draw(canvas, xLabel, plot.MidX - text.MeasureText(xLabel) / 2, plot.Bottom + 32);
        canvas.Save();
        canvas.RotateDegrees(-90, area.Left + 14, plot.MidY);
        text.Draw(canvas, yLabel, area.Left + 14 - text.MeasureText(yLabel) / 2, plot.MidY + 4);
        canvas.Restore();
        for (int s = 0; s < drawn.Count; s++)
        {
            SKColor color = Palette[s % Palette.Length];
            using var line = new SKPaint { Color = color, StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var dot = new SKPaint { Color = color, IsAntialias = true, Style = SKPaintStyle.Fill };
            var points = drawn[s].Points;
            using var pathLine = new SKPath();
            pathLine.MoveTo(X(points[0].X), Y(points[0].Y));
            foreach ((double x, double y) in points.Skip(1))
            {
                pathLine.LineTo(X(x), Y(y));
            }
            canvas.DrawPath(pathLine, line);
            if (points.Count <= 60)
            {
                foreach ((double x, double y) in points)
                {
                    canvas.DrawCircle(X(x), Y(y), 3, dot);
                }
            }
            float ly = plot.Top + 16 + 16 * s;
            canvas.DrawLine(plot.Right - 150, ly - 4, plot.Right - 130, ly - 4, line);
            text.Draw(canvas, drawn[s].Name, plot.Right - 125, ly);
        }
    }

    private static void DrawMatrix(double[,] values, string[] rowLabels, string[] columnLabels, string path, string title,
        Func<int, int, string?> cellText, string rowAxis, string columnAxis, double maxValue)
    {
        int rows = rowLabels.Length, columns = columnLabels.Length;
        using var text = Label(12);
        using var bold = Label(14, bold: true);
        float cell = Math.Clamp(560f / Math.Max(rows, columns), 14, 90);
        // The numbers in the cells: white on the dark ones.
        using var darkNumber = Label(Math.Min(14, cell / 3));
        using var lightNumber = Label(Math.Min(14, cell / 3), color: SKColors.White);
        float left = 24 + Math.Min(220, rowLabels.Max(l => text.MeasureText(l)) + 12);
        float top = 50 + Math.Min(220, columnLabels.Max(l => text.MeasureText(l)) + 12);
        // Wide enough for the title and the axis label too (a long sentence as the title of a narrow matrix).
        float needed = Math.Max(bold.MeasureText(title) + 24, left + text.MeasureText($"{columnAxis} ->") + 12);
        int width = (int)Math.Max(left + columns * cell + 20, Math.Min(needed, 2000)), height = (int)(top + rows * cell + 20);
        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        SKCanvas canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        bold.Draw(canvas, title, 12, 22);
        text.Draw(canvas, $"{columnAxis} ->", left, 40);
        using var fill = new SKPaint { Style = SKPaintStyle.Fill };
        using var border = new SKPaint { Color = new SKColor(200, 200, 200), Style = SKPaintStyle.Stroke };
        for (int i = 0; i < rows; i++)
        {
            text.Draw(canvas, rowLabels[i], left - 8 - text.MeasureText(rowLabels[i]), top + i * cell + cell / 2 + 4);
            for (int j = 0; j < columns; j++)
            {
                double v = Math.Clamp(values[i, j] / maxValue, 0, 1);
                fill.Color = new SKColor((byte)(255 - 225 * v), (byte)(255 - 160 * v), (byte)(255 - 40 * v)); // white -> blue
                var rect = new SKRect(left + j * cell, top + i * cell, left + (j + 1) * cell, top + (i + 1) * cell);
                canvas.DrawRect(rect, fill);
                canvas.DrawRect(rect, border);
                if (cellText(i, j) is string label && cell >= 24)
                {
                    TextStyle number = v > 0.6 ? lightNumber : darkNumber;
                    number.Draw(canvas, label, rect.MidX - number.MeasureText(label) / 2, rect.MidY + 4);
                }
            }
        }
        for (int j = 0; j < columns; j++)
        {
            canvas.Save();
            canvas.RotateDegrees(-90, left + j * cell + cell / 2 + 4, top - 8);
            text.Draw(canvas, columnLabels[j], left + j * cell + cell / 2 + 4, top - 8);
            canvas.Restore();
        }
        canvas.Save();
        canvas.RotateDegrees(-90, 12, top + rows * cell / 2);
        text.Draw(canvas, rowAxis, 12 - text.MeasureText(rowAxis) / 2, top + rows * cell / 2 + 4);
        canvas.Restore();
        WritePng(surface, path);
    }

    private static TextStyle Label(float size, bool bold = false, SKColor? color = null) => new(bold ? Bold : Regular, size, color ?? SKColors.Black);

    /// <summary>A font and its colour: what a label needs to be measured and drawn (SkiaSharp 3 keeps the two apart).</summary>
    private sealed class TextStyle : IDisposable
    {
        private readonly SKFont _font;
        private readonly SKPaint _paint;

        public TextStyle(SKTypeface typeface, float size, SKColor color)
        {
            _font = new SKFont(typeface, size) { Edging = SKFontEdging.Antialias };
            _paint = new SKPaint { Color = color, IsAntialias = true };
        }

        /// <summary>Width of <paramref name="text"/> in pixels.</summary>
        public float MeasureText(string text) => _font.MeasureText(text);

        /// <summary>Draws <paramref name="text"/> with its left end at x and its baseline at y.</summary>
        public void Draw(SKCanvas canvas, string text, float x, float y) => canvas.DrawText(text, x, y, SKTextAlign.Left, _font, _paint);

        public void Dispose()
        {
            _font.Dispose();
            _paint.Dispose();
        }
    }

    /// <summary>
    /// Where the drawn run stands: the latest report's step, planned steps and time, of steps and epoch ends alike (the
    /// last epoch's end is the run's end; the last step report, up to LogEverySteps before it, showed a plan since moved).
    /// </summary>
    internal static string Progress(IEnumerable<TrainingProgress> reports) =>
        reports.MaxBy(r => (r.Step, r.Elapsed)) is TrainingProgress latest
            ? $"step {latest.Step:N0} of {latest.TotalSteps:N0}, {latest.Elapsed.TotalMinutes:F1} min"
            : "";

    /// <summary>
    /// The y range of a chart: the data's, 5 % wider on each side (1 wide around a constant), but never below 0 for data
    /// that are not negative (a learning rate, a loss), so that no tick reads as a negative value.
    /// </summary>
    internal static (double Min, double Max) PaddedRange(double min, double max)
    {
        double pad = max > min ? (max - min) * 0.05 : 0.5;
        double lower = min - pad;
        return (min >= 0 && lower < 0 ? 0 : lower, max + pad);
    }

    private static string Tick(double value) => Math.Abs(value) switch
    {
        0 => "0",
        >= 1000 => value.ToString("N0", CultureInfo.InvariantCulture),
        >= 10 => value.ToString("F0", CultureInfo.InvariantCulture),
        >= 0.1 => value.ToString("F2", CultureInfo.InvariantCulture),
        _ => value.ToString("0.0e0", CultureInfo.InvariantCulture),
    };

    private static string I(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static void WritePng(SKSurface surface, string path)
    {
        using SKImage image = surface.Snapshot();
        using SKData png = image.Encode(SKEncodedImageFormat.Png, 100);
        byte[] bytes = png.ToArray();
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }
}

using System.Globalization;
using System.Text;

namespace Transformers.ML.Benchmarks;

/// <summary>One measured number.</summary>
internal sealed record BenchmarkRow(string Area, string Measure, double Value, string Unit, string Target, string Notes);

/// <summary>The rows of a run, as markdown and CSV.</summary>
internal sealed class ResultsTable
{
    private readonly List<BenchmarkRow> _rows = new();

    public void Add(BenchmarkRow row)
    {
        _rows.Add(row);
        Console.WriteLine($"  {row.Area} | {row.Measure}: {Format(row.Value)} {row.Unit} {row.Notes}");
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine("| area | measure | value | unit | target | notes |");
        text.AppendLine("|---|---|---:|---|---|---|");
        foreach (BenchmarkRow row in _rows)
        {
            text.AppendLine($"| {row.Area} | {row.Measure} | {Format(row.Value)} | {row.Unit} | {row.Target} | {row.Notes} |");
        }
        return text.ToString();
    }

    /// <summary>Writes results.md and results.csv into <paramref name="folder"/> (each atomically); returns the folder.</summary>
    public string Write(string folder, string markdown)
    {
        Directory.CreateDirectory(folder);
        var csv = new StringBuilder("area,measure,value,unit,target,notes\n");
        foreach (BenchmarkRow row in _rows)
        {
            csv.AppendLine(string.Join(",", new[] { row.Area, row.Measure, row.Value.ToString("R", CultureInfo.InvariantCulture), row.Unit, row.Target, row.Notes }.Select(Quote)));
        }
        string header = $"# Transformers.ML benchmark results\n\n{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {Environment.OSVersion}\n\n";
        WriteAtomically(Path.Combine(folder, "results.md"), header + markdown);
        WriteAtomically(Path.Combine(folder, "results.csv"), csv.ToString());
        return folder;
    }

    private static void WriteAtomically(string path, string text)
    {
        string temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    private static string Quote(string field) =>
        field.Contains(',') || field.Contains('"') ? "\"" + field.Replace("\"", "\"\"") + "\"" : field;

    private static string Format(double value) => Math.Abs(value) >= 100 ? value.ToString("N0", CultureInfo.InvariantCulture)
        : Math.Abs(value) >= 1 ? value.ToString("F2", CultureInfo.InvariantCulture)
        : value.ToString("G3", CultureInfo.InvariantCulture);
}

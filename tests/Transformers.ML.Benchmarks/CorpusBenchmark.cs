// Corpora bigger than memory (issue 15): a corpus of N MB made of the shared books repeated, one book per row, streamed
// into Fit (nothing holds the whole text: the rows are produced as the cursor reads them). Measured per size, each in a
// process of its own so that the peak resident memory (VmHWM) is the Fit's: tokenizer training, tokenization into the
// shard cache, the first training steps. Run once per size:
//   dotnet run -c Release --project tests/Transformers.ML.Benchmarks -- --only textgen.corpus --corpus-mb 370
using System.Diagnostics;
using Microsoft.ML;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.Examples;
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Benchmarks;

internal static class CorpusBenchmark
{
    private sealed class Row
    {
        public string Text { get; set; } = "";
    }

    public static void Run(ResultsTable table, BenchmarkOptions options)
    {
        double megabytes = options.CorpusMegabytes ?? (options.Quick ? 3.7 : 37);
        string[] books = Directory.GetFiles(Path.Combine(DataLocator.Find(options.Data) ?? throw new InvalidOperationException("No data folder with the books."), "text"), "*.txt")
            .Order(StringComparer.Ordinal).Select(File.ReadAllText).ToArray();
        long target = (long)(megabytes * 1e6);
        long perPass = books.Sum(b => (long)b.Length);
        int rows = (int)Math.Ceiling((double)target / perPass * books.Length);
        IEnumerable<Row> Corpus() // lazily: the books in turn until N MB
        {
            for (int i = 0; i < rows; i++)
            {
                yield return new Row { Text = books[i % books.Length] };
            }
        }
        double size = Corpus().Sum(r => (double)r.Text.Length) / 1e6;
        var ml = new MLContext(seed: 1);
        IDataView data = ml.Data.LoadFromEnumerable(Corpus());
        string cache = Path.Combine(Path.GetTempPath(), "transformers-ml-bench-corpus", Guid.NewGuid().ToString("N"));
        Console.WriteLine($"  textgen.corpus: {size:F1} M characters in {rows} rows (the {books.Length} shared books repeated), BPE 8,000 tokens, cache {cache}");

        // Tokenizer training alone (streaming word counts on both cores, then merges), and encoding throughput.
        var clock = Stopwatch.StartNew();
        // (Timed alone on the small corpora only; on the large ones Fit's total says it.)
        TextTokenizer bpe = TextTokenizer.Train(TokenizerKind.BytePairEncoding, size < 40 ? Corpus().Select(r => r.Text) : books, 8000);
        double trainSeconds = clock.Elapsed.TotalSeconds;
        string sample = string.Concat(books);
        clock.Restart();
        long tokens = bpe.Encode(sample).Count;
        double bpeRate = sample.Length / 1e6 / clock.Elapsed.TotalSeconds;
        TextTokenizer chars = TextTokenizer.Train(TokenizerKind.Character, books, 0);
        clock.Restart();
        chars.Encode(sample);
        double charRate = sample.Length / 1e6 / clock.Elapsed.TotalSeconds;

        // Fit: tokenizer, shards, 30 training steps (the last 20 timed through the progress reports).
        var reports = new List<TrainingProgress>();
        var fit = new TextGenerationOptions
        {
            Tokenizer = TokenizerKind.BytePairEncoding,
            VocabularySize = 8000,
            Preset = GptPreset.Small,
            BatchSize = 16,
            MaxSteps = 30,
            Epochs = 1,
            BatchesPerEpoch = 30,
            ValidationFraction = 0.001,
            ValidationBatches = 1,
            LogEverySteps = 10,
            TokenCacheFolder = cache,
            Progress = new Progress(reports.Add),
        };
        clock.Restart();
        using (TextGenerationTransformer model = ml.Transformers().TextGeneration(fit).Fit(data))
        {
        }
        double fitSeconds = clock.Elapsed.TotalSeconds;
        double peak = PeakResidentMegabytes();
        TrainingProgress[] steps = reports.Where(r => r.Kind == TrainingProgressKind.Step).ToArray();
        double tokensPerSecond = steps.Length >= 2 ? steps[^1].Throughput : double.NaN;
        long shardBytes = Directory.GetFiles(cache, "*.bin", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Directory.Delete(cache, recursive: true);

        string label = $"{size:F0} MB corpus";
        table.Add(new BenchmarkRow("textgen.corpus", $"{label}: peak resident memory of Fit (BPE 8,000, shards, 30 steps)", peak, "MB", "<= 2500 at 370 MB; within 1.5x of 3.7 MB",
            $"Fit {fitSeconds:F0} s in all ({size / fitSeconds:F1} MB/s through tokenizer training and tokenization){(size < 40 ? $"; BPE training alone {trainSeconds:F0} s ({size / trainSeconds:F1} MB/s)" : "")}; shards {shardBytes / 1e6:F0} MB on disk"));
        table.Add(new BenchmarkRow("textgen.corpus", $"{label}: training throughput after tokenization", tokensPerSecond, "tokens/s", "the same at every size",
            "Small GPT, 16 windows of 128 tokens, read from the memory-mapped shards"));
        if (options.CorpusMegabytes is null || megabytes < 10)
        {
            table.Add(new BenchmarkRow("textgen.corpus", "encoding throughput, learned BPE (8,000 tokens)", bpeRate, "MB/s", ">= 3",
                $"{sample.Length / 1e6:F1} M characters of the books -> {tokens:N0} tokens, one thread"));
            table.Add(new BenchmarkRow("textgen.corpus", "encoding throughput, characters", charRate, "MB/s", ">= 10", "the same text"));
        }
    }

    /// <summary>The process's peak resident set (VmHWM of /proc/self/status), in MB; NaN where there is no /proc.</summary>
    private static double PeakResidentMegabytes()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path))
        {
            return double.NaN;
        }
        string? line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? double.NaN : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    }

    private sealed class Progress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

// The benchmark program: speed and quality numbers of the library on this machine, as a markdown table
// (printed, and written with a CSV copy to the results folder). Timings live here, never in unit tests.
//
//   dotnet run -c Release --project tests/Transformers.ML.Benchmarks -- [--quick] [--results DIR] [--threads N] [--data DIR] [--only core,textgen]
using System.Globalization;
using Transformers.ML.Benchmarks;
using static TorchSharp.torch;

bool help = args.Any(a => a is "--help" or "-h");
var options = help ? null : BenchmarkOptions.Parse(args);
if (options is null)
{
    Console.WriteLine("usage: Transformers.ML.Benchmarks [--quick] [--results DIR] [--threads N] [--data DIR] [--only AREAS]");
    Console.WriteLine("  --quick      fewer repetitions (under 5 minutes)");
    Console.WriteLine("  --results    folder for results.md and results.csv (default: results/ under the current folder)");
    Console.WriteLine("  --threads    libtorch CPU threads (default: libtorch's choice)");
    Console.WriteLine("  --data       data folder (else TRANSFORMERS_ML_DATA, else shared/data beside the repository, else a download");
    Console.WriteLine("               from the data set's canonical address into ~/.cache/transformers-ml)");
    Console.WriteLine("  --only       comma-separated areas: core, textgen (.quality .recipe .speed .positions .prompt .trainer), textgen.corpus (--corpus-mb N), translation (.quality .speed .recipe .trainer), image (.quality .speed .trainer), image.oct, onnx, onnx.fidelity, onnx.int8 (.reference: its rows at the reference sizes and the presets between, alone); default all");
    Console.WriteLine("studies (BENCHMARKS.md names the commands that made its rows):");
    Console.WriteLine("  --recipes    textgen.recipe: char, bpe, char-avg, bpe-dropout; image.oct: the recipe names of OctBenchmark.cs");
    Console.WriteLine("  --seeds      comma-separated training seeds (textgen.recipe, translation.recipe)");
    Console.WriteLine("  --vocabulary translation.recipe: the shared BPE size of its runs (default the recipe's 4,000)");
    Console.WriteLine("  --folds      image.oct folds (default 5); --fold-minutes training minutes per fold (default 6.5); --run-folds how many of them to run");
    Console.WriteLine("  --corpus-mb  textgen.corpus: the one corpus size of this process");
    return help ? 0 : 2;
}
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (options.Threads is int threads)
{
    set_num_threads(threads);
}

var table = new ResultsTable();
string host = HostInfo.Describe();
Console.WriteLine($"Transformers.ML benchmarks ({(options.Quick ? "quick" : "full")}), {Environment.ProcessorCount} cores, libtorch threads {get_num_threads()}");
Console.WriteLine($"Host: {host}");

bool Runs(string area) => options.Only.Length == 0 || options.Only.Contains(area);
if (Runs("core"))
{
    double gflops = MatmulBenchmark.Run(table, options);
    TrainingThroughputBenchmark.Run(table, options, gflops);
}
if (options.Only.Length == 0 || options.Only.Any(a => a.StartsWith("textgen", StringComparison.Ordinal)))
{
    TextGenerationBenchmark.Run(table, options);
}
if (options.Only.Length == 0 || options.Only.Any(a => a.StartsWith("translation", StringComparison.Ordinal)))
{
    TranslationBenchmark.Run(table, options);
}
if (options.Only.Length == 0 || options.Only.Any(a => a.StartsWith("image", StringComparison.Ordinal) && !a.StartsWith("image.oct", StringComparison.Ordinal)))
{
    ImageClassificationBenchmark.Run(table, options);
}
if (options.Only.Length == 0 || options.Only.Any(a => a.StartsWith("image.oct", StringComparison.Ordinal)))
{
    OctBenchmark.Run(table, options);
}
if (options.Only.Length == 0 || options.Only.Contains("onnx"))
{
    OnnxBenchmark.Run(table, options);
}
if (options.Only.Length == 0 || options.Only.Contains("onnx.fidelity"))
{
    OnnxBenchmark.Fidelity(table, options);
}
if (options.Only.Contains("textgen.corpus"))
{
    CorpusBenchmark.Run(table, options); // one size per process (--corpus-mb): its peak memory is the row
}
if (options.Only.Length == 0 || options.Only.Contains("onnx.int8"))
{
    Int8Benchmark.Run(table, options);
}
else if (options.Only.Contains("onnx.int8.reference"))
{
    Int8Benchmark.ReferenceSizes(table, options, Path.Combine(Path.GetTempPath(), "transformers-ml-bench-int8"));
}

Console.WriteLine();
string markdown = $"Host: {host}\n\n" + table.ToMarkdown();
Console.WriteLine(markdown);
string folder = table.Write(options.ResultsFolder, markdown);
Console.WriteLine($"Written to {folder}");
return 0;

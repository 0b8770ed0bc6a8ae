namespace Transformers.ML.Benchmarks;

internal sealed record BenchmarkOptions(bool Quick, string ResultsFolder, int? Threads, string? Data, string[] Only)
{
    /// <summary>OCT cross-validation: the recipes to run (default: per area), the number of folds and the training minutes per fold.</summary>
    public string[] Recipes { get; init; } = Array.Empty<string>();

    public int? Folds { get; init; }

    public double? FoldMinutes { get; init; }

    /// <summary>Run only the first N folds of the split (a quicker look at a recipe); null: all.</summary>
    public int? FoldsToRun { get; init; }

    /// <summary>Training seeds of the recipe rows that report a spread over seeds (translation.recipe, textgen.recipe); null: the row's own.</summary>
    public int[]? Seeds { get; init; }

    /// <summary>The shared BPE size of translation.recipe's runs; null: the recipe's (TranslationOptions.ForTimeBudget).</summary>
    public int? Vocabulary { get; init; }

    /// <summary>The corpus size of textgen.corpus, in MB (the shared books repeated); null: 37 (3.7 quick).</summary>
    public double? CorpusMegabytes { get; init; }

    /// <summary>Parses the command line; null when it is not understood (the caller prints the usage).</summary>
    public static BenchmarkOptions? Parse(string[] args)
    {
        bool quick = false;
        string results = Path.Combine(Environment.CurrentDirectory, "results");
        int? threads = null;
        string? data = null;
        var only = new List<string>();
        var recipes = new List<string>();
        int? folds = null;
        double? foldMinutes = null;
        int? foldsToRun = null;
        int[]? seeds = null;
        double? corpus = null;
        int? vocabulary = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--results" when i + 1 < args.Length:
                    results = args[++i];
                    break;
                case "--threads" when i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n > 0:
                    threads = n;
                    i++;
                    break;
                case "--data" when i + 1 < args.Length:
                    data = args[++i];
                    break;
                case "--recipes" when i + 1 < args.Length:
                    recipes.AddRange(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries));
                    break;
                case "--folds" when i + 1 < args.Length && int.TryParse(args[i + 1], out int k) && k >= 2:
                    folds = k;
                    i++;
                    break;
                case "--fold-minutes" when i + 1 < args.Length && double.TryParse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0:
                    foldMinutes = m;
                    i++;
                    break;
                case "--run-folds" when i + 1 < args.Length && int.TryParse(args[i + 1], out int r) && r >= 1:
                    foldsToRun = r;
                    i++;
                    break;
                case "--corpus-mb" when i + 1 < args.Length && double.TryParse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture, out double mb) && mb > 0:
                    corpus = mb;
                    i++;
                    break;
                case "--vocabulary" when i + 1 < args.Length && int.TryParse(args[i + 1], out int v) && v is >= 257 and <= 200_000:
                    vocabulary = v;
                    i++;
                    break;
                case "--seeds" when i + 1 < args.Length:
                    seeds = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
                    break;
                case "--only" when i + 1 < args.Length:
                    only.AddRange(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries));
                    break;
                default:
                    Console.Error.WriteLine($"Unknown or incomplete option '{args[i]}'.");
                    return null;
            }
        }
        return new BenchmarkOptions(quick, results, threads, data, only.ToArray()) { Recipes = recipes.ToArray(), Folds = folds, FoldMinutes = foldMinutes, FoldsToRun = foldsToRun, Seeds = seeds, CorpusMegabytes = corpus, Vocabulary = vocabulary };
    }
}


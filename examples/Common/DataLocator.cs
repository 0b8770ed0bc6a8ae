// Finds the data sets for examples and the benchmark through one setting: the --data option, then the
// TRANSFORMERS_ML_DATA environment variable, then shared/data beside the repository (searched upwards from
// the current folder and from the program). A user with none of these can let a file be downloaded once
// from the data set's canonical address into a cache folder (~/.cache/transformers-ml).
using System.IO.Compression;

namespace Transformers.ML.Examples;

internal static class DataLocator
{
    public const string EnvironmentVariable = "TRANSFORMERS_ML_DATA";

    /// <summary>The data folder, or null when none of the three settings leads to one.</summary>
    public static string? Find(string? option)
    {
        if (!string.IsNullOrEmpty(option))
        {
            return Directory.Exists(option) ? option : throw new DirectoryNotFoundException($"--data '{option}' does not exist.");
        }
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return Directory.Exists(fromEnvironment) ? fromEnvironment : throw new DirectoryNotFoundException($"{EnvironmentVariable}='{fromEnvironment}' does not exist.");
        }
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared", "data");
                if (Directory.Exists(candidate))
                {
                    return candidate;
                }
            }
        }
        return null;
    }

    /// <summary>
    /// The path of <paramref name="relativePath"/> under the data folder; when there is no data folder and
    /// <paramref name="allowDownload"/> is set, the file is downloaded from <paramref name="canonicalUrl"/> into the cache.
    /// </summary>
    /// <param name="zipEntry">When the canonical address is a zip archive: the entry to extract.</param>
    public static string File(string? option, string relativePath, string canonicalUrl, bool allowDownload, string? zipEntry = null)
    {
        string? folder = Find(option);
        if (folder is not null)
        {
            string path = Path.Combine(folder, relativePath);
            return System.IO.File.Exists(path) ? path : throw new FileNotFoundException($"'{path}' does not exist in the data folder '{folder}'.", path);
        }
        string cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "transformers-ml", relativePath);
        if (System.IO.File.Exists(cache))
        {
            return cache;
        }
        if (!allowDownload)
        {
            throw new FileNotFoundException(
                $"No data folder: pass --data DIR, set {EnvironmentVariable}, or put shared/data beside the repository (or add --download to fetch {canonicalUrl}).");
        }
        Console.WriteLine($"Downloading {canonicalUrl} to {cache} ...");
        Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
        using var http = new HttpClient();
        byte[] bytes = http.GetByteArrayAsync(canonicalUrl).GetAwaiter().GetResult();
        string temp = cache + ".part";
        if (zipEntry is null)
        {
            System.IO.File.WriteAllBytes(temp, bytes);
        }
        else
        {
            using var archive = new ZipArchive(new MemoryStream(bytes));
            ZipArchiveEntry entry = archive.Entries.FirstOrDefault(e => e.Name == zipEntry)
                ?? throw new InvalidDataException($"{canonicalUrl} has no entry '{zipEntry}'.");
            entry.ExtractToFile(temp, overwrite: true);
        }
        System.IO.File.Move(temp, cache, overwrite: true);
        return cache;
    }
}

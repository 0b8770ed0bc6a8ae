// Finds the data sets of the examples and the benchmark through one setting, in this order:
//   1. the --data DIR option,
//   2. the TRANSFORMERS_ML_DATA environment variable,
//   3. shared/data beside the repository (searched upwards from the current folder and from the program),
//   4. the files shipped with the program (examples/data: Tiny Shakespeare, so the main example runs from a plain clone),
//   5. the download cache (~/.cache/transformers-ml, or TRANSFORMERS_ML_CACHE),
//   6. a download from the data set's canonical address into that cache (a progress line; written to a temporary file,
//      checked, then renamed, so an interrupted download never leaves a half file behind).
// An explicit setting (1 or 2) that lacks the file is an error that names it; when everything fails, the message says
// which of the three settings to use.
using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;

namespace Transformers.ML.Examples;

/// <summary>Where a data file can be downloaded from: its canonical address, and how to turn what comes back into the file.</summary>
/// <param name="Url">The canonical address.</param>
/// <param name="ZipEntry">When the address is a zip archive: the entry that is the file.</param>
/// <param name="Sha256">The file's sha256 when the address serves exactly the project's copy (then it is checked).</param>
internal sealed record DataSource(string Url, string? ZipEntry = null, string? Sha256 = null);

internal static class DataLocator
{
    public const string EnvironmentVariable = "TRANSFORMERS_ML_DATA";
    public const string CacheVariable = "TRANSFORMERS_ML_CACHE";

    /// <summary>The canonical address of every file the examples and the benchmark read, by path under the data folder.</summary>
    public static readonly IReadOnlyDictionary<string, DataSource> Sources = new Dictionary<string, DataSource>(StringComparer.Ordinal)
    {
        ["text/tinyshakespeare.txt"] = new(
            "https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
            Sha256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
        ["text/pg345-dracula.txt"] = Gutenberg(345),
        ["text/pg6087-the-vampyre.txt"] = Gutenberg(6087),
        ["text/pg2852-the-hound-of-the-baskervilles.txt"] = Gutenberg(2852),
        ["text/pg1342-pride-and-prejudice.txt"] = Gutenberg(1342),
        ["text/pg2002-sonnets-from-the-portuguese.txt"] = Gutenberg(2002),
        ["text/pg84-frankenstein.txt"] = Gutenberg(84),
        ["translation/spa-eng.txt"] = new("https://www.manythings.org/anki/spa-eng.zip", ZipEntry: "spa.txt"),
        ["fashion-mnist/train-images-idx3-ubyte.gz"] = FashionMnist("train-images-idx3-ubyte.gz"),
        ["fashion-mnist/train-labels-idx1-ubyte.gz"] = FashionMnist("train-labels-idx1-ubyte.gz"),
        ["fashion-mnist/t10k-images-idx3-ubyte.gz"] = FashionMnist("t10k-images-idx3-ubyte.gz"),
        ["fashion-mnist/t10k-labels-idx1-ubyte.gz"] = FashionMnist("t10k-labels-idx1-ubyte.gz"),
    };

    private static DataSource Gutenberg(int number) => new($"https://www.gutenberg.org/cache/epub/{number}/pg{number}.txt");

    private static DataSource FashionMnist(string name) => new($"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}");

    /// <summary>The data folder named by the option or the environment variable, else shared/data beside the repository; null when there is none.</summary>
    public static string? Find(string? option)
    {
        if (Explicit(option) is string folder)
        {
            return folder;
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

    /// <summary>The download cache: TRANSFORMERS_ML_CACHE, else ~/.cache/transformers-ml.</summary>
    public static string CacheFolder => Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } cache
        ? cache
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "transformers-ml");

    /// <summary>
    /// The path of <paramref name="relativePath"/> (e.g. "text/tinyshakespeare.txt") found through the data setting, the
    /// program's own files or the cache, or downloaded into the cache from the file's canonical address.
    /// </summary>
    public static string File(string? option, string relativePath)
    {
        relativePath = relativePath.Replace('\\', '/');
        if (Explicit(option) is string folder)
        {
            string path = Path.Combine(folder, relativePath);
            return System.IO.File.Exists(path) ? path : throw new FileNotFoundException(
                $"'{relativePath}' is not in the data folder '{folder}' ({(string.IsNullOrEmpty(option) ? EnvironmentVariable : "--data")}).", path);
        }
        var candidates = new List<string>();
        if (Find(null) is string shared)
        {
            candidates.Add(Path.Combine(shared, relativePath));
        }
        candidates.Add(Path.Combine(AppContext.BaseDirectory, "data", relativePath));
        string cached = Path.Combine(CacheFolder, relativePath);
        candidates.Add(cached);
        if (candidates.FirstOrDefault(System.IO.File.Exists) is string found)
        {
            return found;
        }
        string settings = $"pass --data DIR, set {EnvironmentVariable}, or put the project's shared/data beside the repository";
        if (!Sources.TryGetValue(relativePath, out DataSource? source))
        {
            throw new FileNotFoundException($"'{relativePath}' was not found and has no known download address: {settings}.", relativePath);
        }
        try
        {
            Download(source, cached);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or InvalidDataException or TaskCanceledException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"'{relativePath}' was not found, and downloading it from {source.Url} failed ({e.Message}): {settings}.", relativePath, e);
        }
        return cached;
    }

    /// <summary>The commit of Daehwan-Shin/oct-pointgame-clicks whose test/ folder holds the 600 real OCT scans (Kermany's test split).</summary>
    private const string OctRealSource = "https://raw.githubusercontent.com/Daehwan-Shin/oct-pointgame-clicks/c93baf1f92d3121031821bede5393d4f28b15feb/test";

    /// <summary>
    /// The folder <paramref name="relativePath"/> of the data setting (e.g. "oct-real"), else its copy in the cache, else (for
    /// "oct-real") its files downloaded one by one from their canonical address into the cache, each checked against the
    /// sha256 list shipped in examples/data; null when none of these gives it (the caller says what to do).
    /// </summary>
    public static string? Folder(string? option, string relativePath, TextWriter? progress = null)
    {
        if (Explicit(option) is string folder)
        {
            string path = Path.Combine(folder, relativePath);
            return Directory.Exists(path) ? path : throw new DirectoryNotFoundException(
                $"'{relativePath}' is not in the data folder '{folder}' ({(string.IsNullOrEmpty(option) ? EnvironmentVariable : "--data")}).");
        }
        if (Find(null) is string shared && Directory.Exists(Path.Combine(shared, relativePath)))
        {
            return Path.Combine(shared, relativePath);
        }
        string cached = Path.Combine(CacheFolder, relativePath);
        string complete = Path.Combine(cached, ".complete");
        if (System.IO.File.Exists(complete))
        {
            return cached;
        }
        string manifest = Path.Combine(AppContext.BaseDirectory, "data", relativePath + ".SHA256SUMS");
        if (!System.IO.File.Exists(manifest))
        {
            return null;
        }
        progress ??= Console.Out;
        var files = System.IO.File.ReadLines(manifest).Where(l => l.Length > 66)
            .Select(l => (Sha256: l[..64], Path: l[66..].TrimStart('.', '/'))).ToList();
        progress.WriteLine($"Downloading the {files.Count} files of '{relativePath}' from {OctRealSource} into {cached} (once; set {EnvironmentVariable} to use a copy you have).");
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("Transformers.ML-examples/1.0");
        try
        {
            for (int i = 0; i < files.Count; i++)
            {
                string target = Path.Combine(cached, files[i].Path);
                if (!System.IO.File.Exists(target) || Convert.ToHexStringLower(SHA256.HashData(System.IO.File.ReadAllBytes(target))) != files[i].Sha256)
                {
                    Download(new DataSource($"{OctRealSource}/{files[i].Path}", Sha256: files[i].Sha256), target, http, TextWriter.Null);
                }
                if ((i + 1) % 50 == 0 || i + 1 == files.Count)
                {
                    progress.WriteLine($"  {i + 1} of {files.Count} files");
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException or InvalidDataException or TaskCanceledException or UnauthorizedAccessException)
        {
            progress.WriteLine($"Downloading '{relativePath}' failed ({e.Message}); the files fetched so far stay in the cache for the next try. " +
                $"To use a copy you have: pass --data DIR, set {EnvironmentVariable}, or put the project's shared/data beside the repository.");
            return null;
        }
        System.IO.File.WriteAllText(complete, "");
        return cached;
    }

    /// <summary>Downloads <paramref name="source"/> into <paramref name="target"/>: a temporary file beside it, checked, then renamed.</summary>
    public static void Download(DataSource source, string target, HttpClient? client = null, TextWriter? progress = null)
    {
        progress ??= Console.Out;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(target))!);
        string temp = $"{target}.{Environment.ProcessId}.part";
        try
        {
            using (HttpClient? owned = client is null ? new HttpClient { Timeout = TimeSpan.FromMinutes(30) } : null)
            {
                HttpClient http = client ?? owned!;
                owned?.DefaultRequestHeaders.UserAgent.ParseAdd("Transformers.ML-examples/1.0");
                using HttpResponseMessage response = http.GetAsync(source.Url, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
                response.EnsureSuccessStatusCode();
                long? length = response.Content.Headers.ContentLength;
                using Stream body = response.Content.ReadAsStream();
                using (FileStream file = System.IO.File.Create(temp))
                {
                    Copy(body, file, length, $"Downloading {source.Url}", progress);
                }
            }
            if (source.ZipEntry is string entryName)
            {
                string extracted = temp + ".entry";
                using (ZipArchive archive = ZipFile.OpenRead(temp))
                {
                    ZipArchiveEntry entry = archive.Entries.FirstOrDefault(e => e.Name == entryName)
                        ?? throw new InvalidDataException($"{source.Url} has no entry '{entryName}'.");
                    entry.ExtractToFile(extracted, overwrite: true);
                }
                System.IO.File.Move(extracted, temp, overwrite: true);
            }
            if (source.Sha256 is string expected)
            {
                string found = Convert.ToHexStringLower(SHA256.HashData(System.IO.File.ReadAllBytes(temp)));
                if (found != expected)
                {
                    throw new InvalidDataException($"{source.Url} has sha256 {found}; expected {expected}.");
                }
            }
            System.IO.File.Move(temp, target, overwrite: true);
        }
        finally
        {
            System.IO.File.Delete(temp);
            System.IO.File.Delete(temp + ".entry");
        }
    }

    /// <summary>Copies with a progress line: rewritten in place on a console, every 10 % otherwise.</summary>
    private static void Copy(Stream from, Stream to, long? length, string what, TextWriter progress)
    {
        bool console = ReferenceEquals(progress, Console.Out) && !Console.IsOutputRedirected;
        var buffer = new byte[1 << 16];
        long done = 0;
        int lastTenth = -1;
        var clock = Stopwatch.StartNew();
        TimeSpan lastLine = TimeSpan.Zero;
        int read;
        while ((read = from.Read(buffer)) > 0)
        {
            to.Write(buffer, 0, read);
            done += read;
            int tenth = length is > 0 ? (int)(done * 10 / length.Value) : (int)(done >> 23);
            if (console ? clock.Elapsed - lastLine > TimeSpan.FromMilliseconds(250) : tenth != lastTenth)
            {
                progress.Write((console ? "\r" : "") + Line(what, done, length) + (console ? "" : Environment.NewLine));
                lastTenth = tenth;
                lastLine = clock.Elapsed;
            }
        }
        progress.Write((console ? "\r" : "") + Line(what, done, length) + " done" + Environment.NewLine);
    }

    private static string Line(string what, long done, long? length) => length is > 0
        ? $"{what}: {done / 1e6:F1} of {length.Value / 1e6:F1} MB ({100.0 * done / length.Value:F0} %)"
        : $"{what}: {done / 1e6:F1} MB";

    private static string? Explicit(string? option)
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
        return null;
    }
}

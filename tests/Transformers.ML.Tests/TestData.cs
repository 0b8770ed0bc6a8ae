using System.Security.Cryptography;

namespace Transformers.ML.Tests;

/// <summary>
/// The test data: tests/data (see its README) and the example's Tiny Shakespeare, copied beside the test binaries.
/// Tests read these files only: nothing outside the repository, nothing from the network.
/// </summary>
internal static class TestData
{
    public static string Folder { get; } = Path.Combine(AppContext.BaseDirectory, "data");

    /// <summary>A file of the test data; the message names it when the build did not copy it.</summary>
    public static string File(string relativePath)
    {
        string path = Path.Combine(Folder, relativePath);
        return System.IO.File.Exists(path) ? path : throw new FileNotFoundException($"Test data file '{relativePath}' is not in {Folder}.", path);
    }

    /// <summary>The first 200,000 characters of Tiny Shakespeare.</summary>
    public static string ShakespeareHead => System.IO.File.ReadAllText(File("text/tinyshakespeare-head.txt"));

    /// <summary>The whole of Tiny Shakespeare (1.1 MB, the example's copy).</summary>
    public static string Shakespeare => System.IO.File.ReadAllText(File("text/tinyshakespeare.txt"));

    /// <summary>20,000 characters of Dracula.</summary>
    public static string DraculaExcerpt => System.IO.File.ReadAllText(File("text/dracula-excerpt.txt"));

    /// <summary>The first 4,000 Tatoeba lines, English TAB Spanish.</summary>
    public static IEnumerable<string> SentencePairLines => System.IO.File.ReadLines(File("translation/spa-eng-head.txt"));

    /// <summary>The 8 original OCT scans in the OCT2017 layout (CLASS/CLASS-patient-image.jpeg).</summary>
    public static string OctOriginals => Path.Combine(Folder, "oct", "originals");

    /// <summary>The 160 reduced OCT scans in the OCT2017 layout.</summary>
    public static string OctReduced => Path.Combine(Folder, "oct", "reduced");

    /// <summary>Each line of SHA256SUMS whose file has another hash (or is missing).</summary>
    public static IEnumerable<string> ChecksumMismatches()
    {
        foreach (string line in System.IO.File.ReadLines(File("SHA256SUMS")))
        {
            string expected = line[..64];
            string relative = line[66..];
            string path = Path.Combine(Folder, relative);
            if (!System.IO.File.Exists(path))
            {
                yield return $"{relative}: missing";
                continue;
            }
            string found = Convert.ToHexStringLower(SHA256.HashData(System.IO.File.ReadAllBytes(path)));
            if (found != expected)
            {
                yield return $"{relative}: sha256 {found}, expected {expected}";
            }
        }
    }
}

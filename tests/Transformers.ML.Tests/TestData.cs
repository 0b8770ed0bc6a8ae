namespace Transformers.ML.Tests;

/// <summary>The shared data sets (../shared/data beside the repository, or TRANSFORMERS_ML_DATA). Tests read local files only.</summary>
internal static class TestData
{
    public static string Folder
    {
        get
        {
            string? fromEnvironment = Environment.GetEnvironmentVariable("TRANSFORMERS_ML_DATA");
            if (!string.IsNullOrEmpty(fromEnvironment))
            {
                return fromEnvironment;
            }
            // Walk up from the test binaries to the folder that holds both the repository and shared/.
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared", "data");
                if (Directory.Exists(candidate))
                {
                    return candidate;
                }
            }
            throw new DirectoryNotFoundException("Cannot find shared/data above the test folder; set TRANSFORMERS_ML_DATA.");
        }
    }

    public static string Text(string file) => Path.Combine(Folder, "text", file);
}

namespace Transformers.ML.Core.IO;

/// <summary>Writes files so that a crash or an exception never leaves a half-written file behind.</summary>
internal static class AtomicFile
{
    /// <summary>
    /// Calls <paramref name="write"/> on a temporary file beside <paramref name="path"/>, flushes it to disk,
    /// then renames it over <paramref name="path"/>. On failure the temporary file is removed and any
    /// existing file at <paramref name="path"/> is left untouched.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string fullPath = Path.GetFullPath(path);
        if (Directory.Exists(fullPath))
        {
            throw new IOException($"'{path}' is a folder; expected the path of a file to write.");
        }
        string? directory = Path.GetDirectoryName(fullPath);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }
        string temp = $"{fullPath}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Creates <paramref name="folder"/> (and its parents) for <paramref name="writer"/> to write its files into; a file
    /// already at that path is an error that says so, instead of .NET's "the file already exists".
    /// </summary>
    public static void CreateFolder(string folder, string writer)
    {
        if (File.Exists(folder))
        {
            throw new IOException($"'{folder}' is a file; {writer} writes a folder of files there. Pass the path of a folder (it is created when missing).");
        }
        Directory.CreateDirectory(folder);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

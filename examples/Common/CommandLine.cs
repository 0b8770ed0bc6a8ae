// How the examples start and end on errors: --help prints their options; a bad option prints what is wrong and the
// options (exit code 2); an error a user can act on (a missing file, a failed download, bad data, a bad setting) prints
// its message without a stack trace (exit code 1). Anything else is a bug and keeps .NET's full report.
using System.Net.Http;

namespace Transformers.ML.Examples;

internal static class CommandLine
{
    /// <summary>The settings <paramref name="parse"/> reads from <paramref name="args"/>, or the usage and an exit.</summary>
    /// <param name="usage">The command line and its options, as --help prints them.</param>
    public static T Parse<T>(string[] args, string usage, Func<string[], T> parse)
    {
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
        {
            if (e.ExceptionObject is Exception error && ForTheUser(error))
            {
                Console.Out.Flush();
                Console.Error.WriteLine($"error: {error.Message}");
                Environment.Exit(1);
            }
        };
        if (args.Any(a => a is "--help" or "-h" or "-?"))
        {
            Console.WriteLine(usage);
            Environment.Exit(0);
        }
        try
        {
            return parse(args);
        }
        catch (Exception e) when (ForTheUser(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine();
            Console.Error.WriteLine(usage);
            Environment.Exit(2);
            throw; // not reached
        }
    }

    /// <summary>Errors whose message says what to do (the library's and the examples' messages name the file, option or data).</summary>
    private static bool ForTheUser(Exception e) =>
        e is ArgumentException or IOException or InvalidDataException or FormatException or UnauthorizedAccessException or HttpRequestException or OperationCanceledException;
}

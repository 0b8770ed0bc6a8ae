using TorchSharp;
using Transformers.ML.Core.IO;
using static TorchSharp.torch;

namespace Transformers.ML.Tests;

internal static class TestUtil
{
    /// <summary>The tiny configuration of the tests: d_model 32, 2 layers, 4 heads, no dropout.</summary>
    public static TransformerConfig Tiny(NormPosition norm = NormPosition.Post, PositionalEncodingKind positions = PositionalEncodingKind.Sinusoidal) => new()
    {
        NumLayers = 2,
        ModelDimension = 32,
        FeedForwardDimension = 64,
        NumHeads = 4,
        Dropout = 0.0,
        MaxSequenceLength = 64,
        NormPosition = norm,
        PositionalEncoding = positions,
    };

    public static double[] ToDoubles(Tensor t) => t.detach().cpu().to(ScalarType.Float64).contiguous().data<double>().ToArray();

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.detach().to(ScalarType.Float64).sub(b.detach().to(ScalarType.Float64)).abs().max().item<double>();
    }

    /// <summary>This test run's own folder for temporary files, deleted when the run ends (<see cref="TestRun"/>).</summary>
    /// <summary>The pieces of a stream, read to its end on this thread (for Parallel.For bodies and Assert.Throws).</summary>
    public static List<string> Pieces(IAsyncEnumerable<string> stream)
    {
        var pieces = new List<string>();
        IAsyncEnumerator<string> e = stream.GetAsyncEnumerator();
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                pieces.Add(e.Current);
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return pieces;
    }

    public static string RunFolder { get; } = Path.Combine(Path.GetTempPath(), "transformers-ml-tests", $"run-{Environment.ProcessId}-{Guid.NewGuid():N}");

    /// <summary>A new name (nothing there yet) for a file or folder in <see cref="RunFolder"/>, ending with <paramref name="extension"/>.</summary>
    public static string TempPath(string extension = ".safetensors") =>
        Path.Combine(Directory.CreateDirectory(RunFolder).FullName, Guid.NewGuid().ToString("N") + extension);

    /// <summary>
    /// The file of a model that <paramref name="trainAndSave"/> trains (with an MLContext of seed 1) and saves at the path
    /// it is given in <see cref="RunFolder"/>: once per test run however many tests ask, each loading a copy of its own.
    /// </summary>
    public static Lazy<string> TrainedOnce(Action<Microsoft.ML.MLContext, string> trainAndSave) => new(() =>
    {
        string path = TempPath();
        trainAndSave(new Microsoft.ML.MLContext(seed: 1), path);
        return path;
    });

    /// <summary>
    /// A copy of the model file <paramref name="file"/> whose every matrix is multiplied by 1e30: finite weights, so they
    /// pass the finiteness check of the tensors, but the loader's probe forward pass overflows. Asserts that
    /// <paramref name="load"/> refuses it with the probe's message naming the copy.
    /// </summary>
    public static void AssertOverflowingWeightsAreRefused(string file, Func<string, IDisposable> load)
    {
        using var scope = NewDisposeScope();
        SafeTensorsReader reader = SafeTensors.Open(file);
        Dictionary<string, Tensor> weights = reader.ReadAll();
        using (no_grad())
        {
            foreach (Tensor w in weights.Values.Where(w => w.dim() == 2))
            {
                w.mul_(1e30);
            }
        }
        string overflowing = TempPath();
        try
        {
            SafeTensors.Write(overflowing, weights, reader.Metadata);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => load(overflowing).Dispose());
            StringAssert.Contains(e.Message, "a forward pass gives scores that are not finite numbers");
            StringAssert.Contains(e.Message, overflowing);
        }
        finally
        {
            File.Delete(overflowing);
        }
    }
}

/// <summary>An IProgress that reports on the training thread, at once (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

/// <summary>Rows that cancel a token when one pass over them (counted from 1) reaches one row; they count the passes.</summary>
internal sealed class CancellingRows<T>(IReadOnlyList<T> rows, int pass, int row, CancellationTokenSource? cancel) : IEnumerable<T>
{
    public int Passes { get; private set; }

    public IEnumerator<T> GetEnumerator()
    {
        Passes++;
        int current = Passes;
        for (int i = 0; i < rows.Count; i++)
        {
            if (current == pass && i == row)
            {
                cancel?.Cancel();
            }
            yield return rows[i];
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Deletes the run's temporary files (<see cref="TestUtil.RunFolder"/>) when the test run ends.</summary>
[TestClass]
public static class TestRun
{
    [AssemblyCleanup]
    public static void DeleteTemporaryFiles()
    {
        try
        {
            if (Directory.Exists(TestUtil.RunFolder))
            {
                Directory.Delete(TestUtil.RunFolder, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file still open elsewhere (Windows): the folder stays in the temp folder, named by the run.
            Console.WriteLine($"Test run: could not delete {TestUtil.RunFolder}: {e.Message}");
        }
    }
}

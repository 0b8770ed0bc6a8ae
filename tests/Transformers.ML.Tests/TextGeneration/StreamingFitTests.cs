using Microsoft.ML;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Tests.TextGeneration;

/// <summary>Fit through token shards on disk: the streaming writer, the memory-mapped stream, the cache keyed by corpus and tokenizer, and its errors.</summary>
[TestClass]
public sealed class StreamingFitTests
{
    private static string Folder() => TestUtil.TempPath("-cache");

    [TestMethod]
    public void TheStreamingWriterWritesTheShardByteForByteAndTheStreamReadsAcrossShards()
    {
        string folder = Folder();
        int[] tokens = Enumerable.Range(0, 5000).Select(i => (i * 7919) % 300).ToArray();
        foreach (int vocabulary in new[] { 300, 100_000 })
        {
            string whole = Path.Combine(folder, $"whole-{vocabulary}.bin"), streamed = Path.Combine(folder, $"streamed-{vocabulary}.bin");
            TokenShard.Write(whole, tokens, vocabulary);
            using (var writer = new TokenShardWriter(streamed, vocabulary))
            {
                writer.Append(tokens.AsSpan(0, 1234));
                writer.Append(tokens.AsSpan(1234));
                Assert.IsFalse(File.Exists(streamed), "nothing at the shard's name before Complete");
                writer.Complete();
            }
            CollectionAssert.AreEqual(File.ReadAllBytes(whole), File.ReadAllBytes(streamed), $"vocabulary {vocabulary}");
        }
        using (var abandoned = new TokenShardWriter(Path.Combine(folder, "abandoned.bin"), 300))
        {
            abandoned.Append(tokens);
        }
        Assert.AreEqual(0, Directory.GetFiles(folder, "abandoned*").Length, "an unfinished shard leaves nothing behind");

        // Three shards read as one stream, across their boundaries.
        var paths = new List<string>();
        for (int s = 0; s < 3; s++)
        {
            paths.Add(Path.Combine(folder, $"part-{s}.bin"));
            TokenShard.Write(paths[^1], tokens.AsSpan(s * 1000, s == 2 ? 3000 : 1000), 300);
        }
        using TokenStream stream = TokenStream.Open(paths);
        Assert.AreEqual(5000, stream.Length);
        var window = new long[2500];
        stream.Read(700, window);
        CollectionAssert.AreEqual(tokens.Skip(700).Take(2500).Select(t => (long)t).ToArray(), window);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => stream.Read(4000, new long[1001]));

        // A truncated shard is refused by name.
        byte[] bytes = File.ReadAllBytes(paths[1]);
        File.WriteAllBytes(paths[1], bytes[..^3]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TokenStream.Open(paths));
        StringAssert.Contains(e.Message, "part-1.bin");
        StringAssert.Contains(e.Message, "truncated");
    }

    [TestMethod]
    public void FitTokenizesIntoACacheOnceReusesItAndTrainsAsFromMemory()
    {
        var ml = new MLContext(seed: 1);
        string cache = Folder();
        string text = TestData.ShakespeareHead[..30_000];
        string[] documents = text.Split("\n\n").Where((_, i) => i % 7 == 0).ToArray(); // several rows, one document each
        TextGenerationOptions Options()
        {
            TextGenerationOptions o = TextGenerationTests.Tiny();
            o.Epochs = 1;
            o.BatchesPerEpoch = 8;
            o.TokenCacheFolder = cache;
            o.TokensPerShard = 1024; // several shards
            return o;
        }
        var logged = new List<string>();
        ml.Log += (_, e) => { lock (logged) { logged.Add(e.Message); } };
        using TextGenerationTransformer first = ml.Transformers().TextGeneration(Options()).Fit(TextGenerationTests.Load(ml, documents));
        string folder = Directory.GetDirectories(cache).Single();
        string[] shards = Directory.GetFiles(folder, "train_*.bin").Order().ToArray();
        Assert.IsGreaterThan(3, shards.Length);
        // The shards hold the documents' tokens joined by end-of-text, as the in-memory encoding gives them.
        long[] expected = first.Tokenizer.EncodeDocuments(documents);
        CollectionAssert.AreEqual(expected, shards.SelectMany(s => TokenShard.Read(s)).Select(t => (long)t).ToArray());
        Assert.IsTrue(logged.Any(m => m.Contains("Tokenized", StringComparison.Ordinal)));

        // The same corpus and tokenizer: the shards are reused (not rewritten) and the run is the same run.
        DateTime written = File.GetLastWriteTimeUtc(shards[0]);
        logged.Clear();
        using TextGenerationTransformer second = ml.Transformers().TextGeneration(Options()).Fit(TextGenerationTests.Load(ml, documents));
        Assert.IsTrue(logged.Any(m => m.Contains("reused", StringComparison.Ordinal)), string.Join(" | ", logged));
        Assert.AreEqual(written, File.GetLastWriteTimeUtc(shards[0]));
        CollectionAssert.AreEqual(first.TrainingReports.Select(r => r.Loss).ToArray(), second.TrainingReports.Select(r => r.Loss).ToArray());

        // Another corpus gets another folder; a changed manifest (another tokenizer) and a damaged shard are errors, never a silent retrain.
        using (ml.Transformers().TextGeneration(Options()).Fit(TextGenerationTests.Load(ml, documents.Skip(1).ToArray())))
        {
        }
        Assert.AreEqual(2, Directory.GetDirectories(cache).Length);
        string manifest = Path.Combine(folder, TokenCache.ManifestFile);
        string original = File.ReadAllText(manifest);
        File.WriteAllText(manifest, original.Replace("\"TokenizerSha256\": \"", "\"TokenizerSha256\": \"0"));
        var foreign = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().TextGeneration(Options()).Fit(TextGenerationTests.Load(ml, documents)));
        StringAssert.Contains(foreign.Message, "another tokenizer");
        File.WriteAllText(manifest, original);
        File.WriteAllBytes(shards[1], File.ReadAllBytes(shards[1])[..^2]);
        var damaged = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().TextGeneration(Options()).Fit(TextGenerationTests.Load(ml, documents)));
        StringAssert.Contains(damaged.Message, "damaged");
        StringAssert.Contains(damaged.Message, Path.GetFileName(shards[1]));
    }

    [TestMethod]
    public void CancellingFitStopsItWhileItReadsTokenizesAndTrainsAndLeavesNoHalfBuiltCache()
    {
        var ml = new MLContext(seed: 1);
        string text = TestData.ShakespeareHead[..30_000];
        var documents = Enumerable.Range(0, 30).Select(i => new Document { Text = text.Substring(i * 1000, 1000) }).ToList();

        // Cancelled at row 10 of the given pass over the rows: 1 learns the BPE (counted on worker threads),
        // 2 writes the token shards. Fit throws OperationCanceledException itself, and the cache holds no folder.
        foreach (int pass in new[] { 1, 2 })
        {
            string cache = Folder();
            using var cancel = new CancellationTokenSource();
            TextGenerationOptions options = TextGenerationTests.Tiny();
            options.Tokenizer = TokenizerKind.BytePairEncoding;
            options.VocabularySize = 300;
            options.TokenCacheFolder = cache;
            options.Cancellation = cancel.Token;
            var rows = new CancellingRows<Document>(documents, pass, 10, cancel);
            Assert.ThrowsExactly<OperationCanceledException>(() => ml.Transformers().TextGeneration(options).Fit(ml.Data.LoadFromEnumerable(rows)), $"pass {pass}");
            Assert.AreEqual(pass, rows.Passes, "the pass that was cancelled is the last one");
            Assert.IsTrue(!Directory.Exists(cache) || Directory.GetFileSystemEntries(cache).Length == 0, $"pass {pass}: " +
                string.Join(", ", Directory.Exists(cache) ? Directory.GetFileSystemEntries(cache) : Array.Empty<string>()));
        }

        // Cancelled from the first step's progress report: the message names the step.
        using var during = new CancellationTokenSource();
        TextGenerationOptions training = TextGenerationTests.Tiny();
        training.TokenCacheFolder = Folder();
        training.LogEverySteps = 1;
        training.Cancellation = during.Token;
        training.Progress = new SynchronousProgress<TrainingProgress>(_ => during.Cancel());
        var e = Assert.ThrowsExactly<OperationCanceledException>(() => ml.Transformers().TextGeneration(training).Fit(ml.Data.LoadFromEnumerable(documents)));
        StringAssert.Contains(e.Message, "Training cancelled at step 2 of 60");

        // A token cancelled before Fit: nothing is read.
        var before = new CancellingRows<Document>(documents, 1, 0, null);
        TextGenerationOptions late = TextGenerationTests.Tiny();
        late.Cancellation = new CancellationToken(canceled: true);
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.Transformers().TextGeneration(late).Fit(ml.Data.LoadFromEnumerable(before)));
        Assert.AreEqual(0, before.Passes);
    }

    [TestMethod]
    public void BadRowsAreNamed()
    {
        var ml = new MLContext(seed: 1);
        TextGenerationOptions options = TextGenerationTests.Tiny();
        options.TokenCacheFolder = Folder();
        string[] rows = { TestData.ShakespeareHead[..5000], "fine", "broken \uD800 surrogate" };
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, rows)));
        StringAssert.Contains(e.Message, "Row 2 of column 'Text'");
        StringAssert.Contains(e.Message, "lone surrogate");
        var empty = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, "", "")));
        StringAssert.Contains(empty.Message, "holds no text (2 rows, all empty)");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TextGenerationOptions { TokensPerShard = 10 }.Validate());
    }
}

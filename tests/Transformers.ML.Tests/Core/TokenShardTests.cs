using System.Buffers.Binary;
using Microsoft.ML;
using Transformers.ML.TextGeneration;
using Transformers.ML.Tests.TextGeneration;

namespace Transformers.ML.Tests.Core;

/// <summary>llm.c's token shard layout, byte for byte, and the errors of files that are not whole shards.</summary>
[TestClass]
public sealed class TokenShardTests
{
    private static string Folder() => TestUtil.TempPath("-shards");

    [TestMethod]
    public void ShardsHaveLlmCsHeaderAndLittleEndianTokens()
    {
        string folder = Folder();
        try
        {
            string narrow = Path.Combine(folder, "narrow.bin");
            TokenShard.Write(narrow, new[] { 0, 1, 258, 65535 }, vocabularySize: 65_536);
            byte[] bytes = File.ReadAllBytes(narrow);
            Assert.AreEqual(1024 + 4 * 2, bytes.Length);
            Assert.AreEqual(20240520, BinaryPrimitives.ReadInt32LittleEndian(bytes));
            Assert.AreEqual(1, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4)));
            Assert.AreEqual(4, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
            Assert.IsTrue(bytes.AsSpan(12, 1024 - 12).ToArray().All(b => b == 0), "the rest of the header is zero");
            CollectionAssert.AreEqual(new byte[] { 0, 0, 1, 0, 2, 1, 255, 255 }, bytes[1024..]);
            CollectionAssert.AreEqual(new[] { 0, 1, 258, 65535 }, TokenShard.Read(narrow));

            string wide = Path.Combine(folder, "wide.bin");
            TokenShard.Write(wide, new[] { 70_000, 3 }, vocabularySize: 100_000);
            bytes = File.ReadAllBytes(wide);
            Assert.AreEqual(20240801, BinaryPrimitives.ReadInt32LittleEndian(bytes));
            Assert.AreEqual(1024 + 2 * 4, bytes.Length);
            CollectionAssert.AreEqual(new byte[] { 0x70, 0x11, 0x01, 0x00, 3, 0, 0, 0 }, bytes[1024..]);
            CollectionAssert.AreEqual(new[] { 70_000, 3 }, TokenShard.Read(wide));

            Assert.Throws<ArgumentOutOfRangeException>(() => TokenShard.Write(Path.Combine(folder, "bad.bin"), new[] { 5 }, vocabularySize: 5));
            Assert.IsFalse(File.Exists(Path.Combine(folder, "bad.bin")), "nothing half-written");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void TruncatedForeignAndChangedShardsAreRefusedSayingWhy()
    {
        string folder = Folder();
        try
        {
            string path = Path.Combine(folder, "s.bin");
            TokenShard.Write(path, Enumerable.Range(0, 100).ToArray(), vocabularySize: 256);
            byte[] good = File.ReadAllBytes(path);

            File.WriteAllBytes(path, good[..^3]);
            var truncated = Assert.Throws<InvalidDataException>(() => TokenShard.Read(path));
            StringAssert.Contains(truncated.Message, "announces 100 tokens");

            File.WriteAllBytes(path, good[..500]);
            StringAssert.Contains(Assert.Throws<InvalidDataException>(() => TokenShard.Read(path)).Message, "fewer than its 1024-byte header");

            byte[] foreign = (byte[])good.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(foreign, 12345);
            File.WriteAllBytes(path, foreign);
            StringAssert.Contains(Assert.Throws<InvalidDataException>(() => TokenShard.Read(path)).Message, "magic 12345");

            byte[] version = (byte[])good.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(version.AsSpan(4), 2);
            File.WriteAllBytes(path, version);
            StringAssert.Contains(Assert.Throws<InvalidDataException>(() => TokenShard.Read(path)).Message, "version 2");

            Assert.Throws<FileNotFoundException>(() => TokenShard.Read(Path.Combine(folder, "missing.bin")));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void AModelWritesItsCorpusAsShardsThatDecodeBackToTheDocuments()
    {
        var ml = new MLContext(seed: 1);
        TextGenerationOptions options = TextGenerationTests.Tiny();
        options.Epochs = 1;
        options.BatchesPerEpoch = 2;
        string[] documents = { "First document.", "", "Second, with ünïcödé and emoji 🙂.", "Third." };
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options)
            .Fit(ml.Data.LoadFromEnumerable(new[] { new Doc { Text = TestData.ShakespeareHead[..5000] + string.Concat(documents) } }));
        string folder = Folder();
        try
        {
            IReadOnlyList<string> shards = model.WriteTokenShards(documents, folder, tokensPerShard: 16);
            Assert.IsGreaterThan(1, shards.Count, "small shards: the corpus spans several");
            CollectionAssert.AreEqual(shards.Select((_, i) => $"train_{i:D6}.bin").ToArray(), shards.Select(Path.GetFileName).ToArray());
            int[] all = shards.SelectMany(TokenShard.Read).ToArray();
            Assert.IsTrue(shards.Take(shards.Count - 1).All(s => TokenShard.ReadHeader(s).TokenCount == 16));
            // Each non-empty document after the end-of-text token, in order; the empty one writes nothing.
            int end = model.Tokenizer.EndOfTextId;
            Assert.AreEqual(end, all[0]);
            var pieces = new List<List<int>>();
            foreach (int id in all)
            {
                if (id == end)
                {
                    pieces.Add(new List<int>());
                }
                else
                {
                    pieces[^1].Add(id);
                }
            }
            CollectionAssert.AreEqual(documents.Where(d => d.Length > 0).ToArray(), pieces.Select(p => model.Tokenizer.Decode(p)).ToArray());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private sealed class Doc
    {
        public string Text { get; set; } = "";
    }
}

using System.Text;
using TorchSharp;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Tests.Core;

[TestClass]
public sealed class SafeTensorsTests
{
    [TestMethod]
    public void RoundTripsEveryDTypeAndTheMetadata()
    {
        string path = TestUtil.TempPath();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = randn(3, 4),
            ["f64"] = randn(2, 2, 2).to(ScalarType.Float64),
            ["f16"] = randn(5).to(ScalarType.Float16),
            ["bf16"] = randn(5).to(ScalarType.BFloat16),
            ["i64"] = randint(-1000, 1000, new long[] { 7 }),
            ["i32"] = randint(-1000, 1000, new long[] { 2, 3 }).to(ScalarType.Int32),
            ["u8"] = randint(0, 255, new long[] { 9 }).to(ScalarType.Byte),
            ["bool"] = randn(4).gt(0),
            ["scalar"] = tensor(3.5f),
            ["empty"] = zeros(0, 3),
        };
        var metadata = new Dictionary<string, string> { ["config"] = "{\"a\": 1}", ["note"] = "ünïcödé ✓" };
        SafeTensors.Write(path, tensors, metadata);

        SafeTensorsReader reader = SafeTensors.Open(path);
        CollectionAssert.AreEquivalent(metadata, reader.Metadata.ToDictionary());
        Dictionary<string, Tensor> back = reader.ReadAll();
        CollectionAssert.AreEquivalent(tensors.Keys.ToList(), back.Keys.ToList());
        foreach ((string name, Tensor original) in tensors)
        {
            Assert.AreEqual(original.dtype, back[name].dtype, name);
            CollectionAssert.AreEqual(original.shape, back[name].shape, name);
            Assert.IsTrue(original.eq(back[name]).all().item<bool>(), name);
        }
        // The data section starts 8-byte aligned, as the reference implementation writes it.
        byte[] bytes = File.ReadAllBytes(path);
        Assert.AreEqual(0UL, BitConverter.ToUInt64(bytes, 0) % 8);
        Assert.AreEqual(0, Directory.GetFiles(Path.GetDirectoryName(path)!, Path.GetFileName(path) + ".*.tmp").Length, "no temporary file left");
    }

    [TestMethod]
    public void ReadsAFileWrittenByHandToTheSpecification()
    {
        // Written byte by byte from the format description, not by our writer: F32 [2] = (1.0, -2.5) and I64 [1] = (7).
        string header = "{\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        var file = new List<byte>();
        file.AddRange(BitConverter.GetBytes((ulong)header.Length));
        file.AddRange(Encoding.UTF8.GetBytes(header));
        file.AddRange(BitConverter.GetBytes(1.0f));
        file.AddRange(BitConverter.GetBytes(-2.5f));
        file.AddRange(BitConverter.GetBytes(7L));
        string path = TestUtil.TempPath();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, file.ToArray());

        SafeTensorsReader reader = SafeTensors.Open(path);
        CollectionAssert.AreEqual(new[] { 1.0f, -2.5f }, reader.Read("a").data<float>().ToArray());
        Assert.AreEqual(7L, reader.Read("b").item<long>());
        Assert.AreEqual(0, reader.Metadata.Count);
    }

    [TestMethod]
    public void TruncatedFilesFailWithAMessageThatNamesTheProblem()
    {
        string path = WriteSample();
        byte[] bytes = File.ReadAllBytes(path);

        File.WriteAllBytes(path, bytes[..^5]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Open(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "truncated");
        StringAssert.Contains(e.Message, "'weight'");

        File.WriteAllBytes(path, bytes[..20]);
        e = Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Open(path));
        StringAssert.Contains(e.Message, "header length field says");

        File.WriteAllBytes(path, bytes[..3]);
        e = Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Open(path));
        StringAssert.Contains(e.Message, "3 bytes long");
    }

    [TestMethod]
    public void CorruptedHeadersFailWithAMessageThatNamesTheProblem()
    {
        Assert.Contains("not valid JSON", OpenWithHeader("{\"weight\": {\"dtype\": \"F32\", ", 16).Message);
        Assert.Contains("'F99'", OpenWithHeader("{\"weight\":{\"dtype\":\"F99\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16).Message);
        Assert.Contains("needs 16 bytes but its data offsets [0, 12] span 12",
            OpenWithHeader("{\"weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 12).Message);
        Assert.Contains("overlap",
            OpenWithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12).Message);
        Assert.Contains("belong to no tensor",
            OpenWithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8).Message);
        Assert.Contains("trailing data",
            OpenWithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8).Message);
        Assert.Contains("not a non-negative integer",
            OpenWithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4).Message);
        Assert.Contains("end before begin",
            OpenWithHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4).Message);
    }

    [TestMethod]
    public void ModelFileRoundTripsAModelAndChecksWhatItLoads()
    {
        manual_seed(9);
        TransformerConfig config = TestUtil.Tiny();
        using var model = new EncoderDecoderTransformer("t", config, 20);
        string path = TestUtil.TempPath();
        ModelFile.Save(path, "translation", config.ToJson(), "{\"vocab\":[]}", model);

        // The sinusoidal table is not persistent: the file holds parameters only.
        Assert.IsFalse(SafeTensors.Open(path).Tensors.Keys.Any(k => k.Contains("table")));

        using ModelFileContents contents = ModelFile.Load(path, "translation");
        Assert.AreEqual("{\"vocab\":[]}", contents.Tokenizer);
        using var copy = new EncoderDecoderTransformer("t", TransformerConfig.FromJson(contents.Config), 20);
        ModelFile.LoadInto(copy, contents.Weights, path);
        model.eval();
        copy.eval();
        using Tensor source = randint(0, 20, new long[] { 2, 5 });
        using Tensor target = randint(0, 20, new long[] { 2, 4 });
        Assert.AreEqual(0.0, TestUtil.MaxAbsDiff(model.Forward(source, target), copy.Forward(source, target)));

        var wrongCapability = Assert.ThrowsExactly<InvalidDataException>(() => ModelFile.Load(path, "text-generation"));
        StringAssert.Contains(wrongCapability.Message, "holds a model of kind 'translation'; expected kind 'text-generation'");

        using var bigger = new EncoderDecoderTransformer("t", TestUtil.Tiny(), 21);
        var mismatch = Assert.ThrowsExactly<InvalidDataException>(() => ModelFile.LoadInto(bigger, contents.Weights, path));
        StringAssert.Contains(mismatch.Message, "embedding.tokens.weight: model (21, 32)");

        string plain = TestUtil.TempPath();
        SafeTensors.Write(plain, new Dictionary<string, Tensor> { ["x"] = zeros(1) });
        var notOurs = Assert.ThrowsExactly<InvalidDataException>(() => ModelFile.Load(plain, "translation"));
        StringAssert.Contains(notOurs.Message, "not a Transformers.ML model file");
    }

    [TestMethod]
    public void AFailedWriteLeavesTheExistingFileUntouched()
    {
        string path = WriteSample();
        byte[] before = File.ReadAllBytes(path);
        using Tensor complex = zeros(new long[] { 2 }, ScalarType.ComplexFloat32);
        Assert.ThrowsExactly<ArgumentException>(() => SafeTensors.Write(path, new Dictionary<string, Tensor> { ["c"] = complex }));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path));

        // An exception in the middle of writing (after the header) removes the temporary file.
        var failing = new Dictionary<string, Tensor> { ["ok"] = ones(3) };
        Assert.ThrowsExactly<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.WriteByte(1);
            throw new IOException("disk full");
        }));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path));
        Assert.AreEqual(0, Directory.GetFiles(Path.GetDirectoryName(path)!, Path.GetFileName(path) + ".*.tmp").Length);
    }

    [TestMethod]
    public void AFolderWhereAFileIsWrittenAndAFileWhereAFolderIsWrittenAreClearErrors()
    {
        string folder = Directory.CreateDirectory(TestUtil.TempPath("")).FullName;
        string file = Path.Combine(folder, "sample.safetensors");
        SafeTensors.Write(file, new Dictionary<string, Tensor> { ["weight"] = ones(4, 4) });
        byte[] before = File.ReadAllBytes(file);

        var toFolder = Assert.ThrowsExactly<IOException>(() => SafeTensors.Write(folder, new Dictionary<string, Tensor> { ["bias"] = ones(3) }));
        StringAssert.Contains(toFolder.Message, $"'{folder}' is a folder; expected the path of a file");
        var intoFile = Assert.ThrowsExactly<IOException>(() => AtomicFile.CreateFolder(file, "ExportToHuggingFace"));
        StringAssert.Contains(intoFile.Message, $"'{file}' is a file; ExportToHuggingFace writes a folder");

        // Nothing was written or left behind, and the file is untouched.
        CollectionAssert.AreEqual(new[] { file }, Directory.GetFileSystemEntries(folder));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(file));
        string created = Path.Combine(folder, "new", "nested");
        AtomicFile.CreateFolder(created, "ExportToHuggingFace");
        Assert.IsTrue(Directory.Exists(created));
    }

    private static string WriteSample()
    {
        string path = TestUtil.TempPath();
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["bias"] = ones(3), ["weight"] = ones(4, 4) }, new Dictionary<string, string> { ["k"] = "v" });
        return path;
    }

    private static InvalidDataException OpenWithHeader(string header, int dataBytes)
    {
        string path = TestUtil.TempPath();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] json = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, BitConverter.GetBytes((ulong)json.Length).Concat(json).Concat(new byte[dataBytes]).ToArray());
        return Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Open(path));
    }
}

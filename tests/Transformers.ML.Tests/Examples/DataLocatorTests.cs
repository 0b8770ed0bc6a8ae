using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Transformers.ML.Examples;

namespace Transformers.ML.Tests.Examples;

/// <summary>The examples' data setting and downloads into the cache, against a server on the loopback interface (no network).</summary>
[TestClass]
public sealed class DataLocatorTests
{
    [TestMethod]
    public void AnExplicitDataFolderWithoutTheFileNamesTheFileAndTheSetting()
    {
        string folder = Directory.CreateDirectory(TestUtil.TempPath("")).FullName;
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => DataLocator.File(folder, "text/tinyshakespeare.txt"));
        StringAssert.Contains(e.Message, "'text/tinyshakespeare.txt' is not in the data folder");
        StringAssert.Contains(e.Message, "--data");
        var missing = Assert.ThrowsExactly<DirectoryNotFoundException>(() => DataLocator.File(Path.Combine(folder, "nope"), "text/x.txt"));
        StringAssert.Contains(missing.Message, "does not exist");

        Directory.CreateDirectory(Path.Combine(folder, "text"));
        File.WriteAllText(Path.Combine(folder, "text", "tinyshakespeare.txt"), "First Citizen:");
        Assert.AreEqual(Path.Combine(folder, "text/tinyshakespeare.txt"), DataLocator.File(folder, "text/tinyshakespeare.txt"));
    }

    [TestMethod]
    public void DownloadsWithProgressChecksTheHashAndRenamesOnlyAWholeFile()
    {
        byte[] content = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("To be, or not to be: that is the question.\n", 20_000)));
        string sha = Convert.ToHexStringLower(SHA256.HashData(content));
        using var server = new LoopbackServer(new Dictionary<string, byte[]> { ["/book.txt"] = content, ["/pairs.zip"] = Zip("spa.txt", content) });
        string cache = Directory.CreateDirectory(TestUtil.TempPath("")).FullName;

        string target = Path.Combine(cache, "text", "book.txt");
        var progress = new StringWriter();
        DataLocator.Download(new DataSource(server.Url("/book.txt"), Sha256: sha), target, progress: progress);
        CollectionAssert.AreEqual(content, File.ReadAllBytes(target));
        string log = progress.ToString();
        StringAssert.Contains(log, $"Downloading {server.Url("/book.txt")}: ");
        StringAssert.Contains(log, "(100 %) done");
        Assert.IsTrue(log.Split('\n').Length >= 3, "a progress line while downloading, then the last one");
        Assert.AreEqual(0, Directory.GetFiles(cache, "*.part", SearchOption.AllDirectories).Length);

        // An archive: the named entry becomes the file.
        string pairs = Path.Combine(cache, "translation", "spa-eng.txt");
        DataLocator.Download(new DataSource(server.Url("/pairs.zip"), ZipEntry: "spa.txt"), pairs, progress: TextWriter.Null);
        CollectionAssert.AreEqual(content, File.ReadAllBytes(pairs));

        // A wrong hash: nothing is written, the old file stays, no temporary file is left behind.
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            DataLocator.Download(new DataSource(server.Url("/book.txt"), Sha256: new string('0', 64)), target + ".other", progress: TextWriter.Null));
        StringAssert.Contains(e.Message, $"has sha256 {sha}; expected {new string('0', 64)}");
        Assert.IsFalse(File.Exists(target + ".other"));
        Assert.ThrowsExactly<InvalidDataException>(() =>
            DataLocator.Download(new DataSource(server.Url("/pairs.zip"), ZipEntry: "eng.txt"), pairs, progress: TextWriter.Null));
        CollectionAssert.AreEqual(content, File.ReadAllBytes(pairs));
        Assert.ThrowsExactly<HttpRequestException>(() => DataLocator.Download(new DataSource(server.Url("/missing")), target, progress: TextWriter.Null));
        CollectionAssert.AreEqual(content, File.ReadAllBytes(target));
        Assert.AreEqual(0, Directory.GetFiles(cache, "*.part*", SearchOption.AllDirectories).Length);
    }

    private static byte[] Zip(string name, byte[] content)
    {
        var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            using Stream entry = zip.CreateEntry(name).Open();
            entry.Write(content);
        }
        return stream.ToArray();
    }

    /// <summary>An HTTP server on 127.0.0.1 serving fixed files (404 for anything else).</summary>
    private sealed class LoopbackServer : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _loop;
        private readonly int _port;

        public LoopbackServer(IReadOnlyDictionary<string, byte[]> files)
        {
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                _port = ((IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
            }
            _listener.Prefixes.Add($"http://127.0.0.1:{_port}/");
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try
                    {
                        context = await _listener.GetContextAsync();
                    }
                    catch (Exception) when (!_listener.IsListening)
                    {
                        return;
                    }
                    if (files.TryGetValue(context.Request.Url!.AbsolutePath, out byte[]? body))
                    {
                        context.Response.ContentLength64 = body.Length;
                        await context.Response.OutputStream.WriteAsync(body);
                    }
                    else
                    {
                        context.Response.StatusCode = 404;
                    }
                    context.Response.Close();
                }
            });
        }

        public string Url(string path) => $"http://127.0.0.1:{_port}{path}";

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            try
            {
                _loop.Wait(TimeSpan.FromSeconds(5));
            }
            catch (AggregateException)
            {
            }
        }
    }
}

using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Transformers.ML.Tests;

/// <summary>The README's C# programs compile against the library, as a new console project (implicit usings, nullable) would.</summary>
[TestClass]
public sealed partial class ReadmeTests
{
    private static string Readme => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "repository", "README.md"));

    [GeneratedRegex(@"^```csharp\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    [TestMethod]
    public void EveryCSharpBlockOfTheReadmeCompiles()
    {
        var blocks = CSharpBlock().Matches(Readme.Replace("\r\n", "\n")).Select(m => m.Groups[1].Value).ToList();
        Assert.IsTrue(blocks.Count >= 4, $"{blocks.Count} C# blocks: one quick start per capability and ONNX");
        var failures = new List<string>();
        for (int i = 0; i < blocks.Count; i++)
        {
            IEnumerable<Diagnostic> errors = Compile(blocks[i]).Where(d => d.Severity == DiagnosticSeverity.Error);
            failures.AddRange(errors.Select(e => $"block {i + 1} ({blocks[i].Split('\n').FirstOrDefault(l => l.Length > 0 && !l.StartsWith("using", StringComparison.Ordinal))}): {e}"));
        }
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures.Take(10)));

        // The check can fail: a block that calls something the library does not have is reported.
        Assert.IsTrue(Compile("using Transformers.ML;\nvar ml = new Microsoft.ML.MLContext();\nml.Transformers().NoSuchTrainer();")
            .Any(d => d.Severity == DiagnosticSeverity.Error && d.Id == "CS1061"));
    }

    [TestMethod]
    public void TheQuickStartNeedsOnlyTheLibrarysPublicNamespaces()
    {
        string readme = Readme.Replace("\r\n", "\n");
        int begin = readme.IndexOf("<!-- quick-start:begin -->", StringComparison.Ordinal);
        int end = readme.IndexOf("<!-- quick-start:end -->", StringComparison.Ordinal);
        Assert.IsTrue(begin >= 0 && end > begin, "the consumer test's markers are in the README");
        string quickStart = readme[begin..end];
        var usings = Regex.Matches(quickStart, @"^using (Transformers\.ML[\w.]*);", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        CollectionAssert.AreEquivalent(new[] { "Transformers.ML", "Transformers.ML.TextGeneration" }, usings);
        foreach (string block in CSharpBlock().Matches(readme).Select(m => m.Groups[1].Value))
        {
            Assert.IsFalse(block.Contains("Transformers.ML.Core", StringComparison.Ordinal), "no README program touches Core");
        }
    }

    /// <summary>Compiles a top-level program with the console template's implicit usings, against the assemblies the tests run with.</summary>
    private static IEnumerable<Diagnostic> Compile(string program)
    {
        const string implicitUsings = """
            global using System;
            global using System.Collections.Generic;
            global using System.IO;
            global using System.Linq;
            global using System.Net.Http;
            global using System.Threading;
            global using System.Threading.Tasks;
            """;
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("ReadmeProgram",
            new[] { CSharpSyntaxTree.ParseText(implicitUsings, parse), CSharpSyntaxTree.ParseText(program, parse) },
            references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        return compilation.GetDiagnostics();
    }
}

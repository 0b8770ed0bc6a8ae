using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Transformers.ML.Tests;

/// <summary>
/// The library's folders form layers: no folder's code uses a folder that uses it back (directly or around a longer
/// loop). The sources are bound with Roslyn (the same code the build compiles, copied beside the tests), so a use is a
/// symbol that a name resolves to, not a word that happens to match, in comments and strings neither.
/// </summary>
[TestClass]
public sealed class LayoutTests
{
    private static string Sources => Path.Combine(AppContext.BaseDirectory, "repository", "src");

    [TestMethod]
    public void NoFolderOfTheLibraryUsesAFolderThatUsesItBack()
    {
        Dictionary<(string From, string To), string> uses = FolderUses();
        Assert.IsTrue(uses.ContainsKey(("TextGeneration", "Core/Modules")), "the check sees uses: TextGeneration builds on Core's modules");
        Assert.IsTrue(uses.ContainsKey(("Core/Training", "Core/Plotting")) || uses.ContainsKey(("Core/Plotting", "Core/Progress")), "and uses inside Core");

        List<List<string>> cycles = Cycles(uses.Keys.ToList());
        string Explain(List<string> cycle) => string.Join(" -> ", cycle.Append(cycle[0])) + ": " +
            string.Join("; ", cycle.Select((f, i) => $"{f} uses {uses[(f, cycle[(i + 1) % cycle.Count])]}"));
        Assert.AreEqual(0, cycles.Count, "folders that use each other:\n" + string.Join("\n", cycles.Select(Explain)));

        // The check can fail: a use back from Core to a capability makes a loop.
        var withBackEdge = uses.Keys.Append(("Core/Modules", "TextGeneration")).ToList();
        Assert.IsTrue(Cycles(withBackEdge).Any(c => c.Contains("Core/Modules") && c.Contains("TextGeneration")));
    }

    /// <summary>For every pair of folders where code of the first names a symbol declared in the second: one example symbol.</summary>
    private static Dictionary<(string, string), string> FolderUses()
    {
        Assert.IsTrue(Directory.Exists(Sources), $"the library's sources are copied beside the tests: {Sources}");
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var files = Directory.EnumerateFiles(Sources, "*.cs", SearchOption.AllDirectories).ToList();
        Assert.IsGreaterThan(50, files.Count, $"{files.Count} source files");
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, path: f)).ToList();
        const string implicitUsings = "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
            "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";
        trees.Add(CSharpSyntaxTree.ParseText(implicitUsings, parse, path: "implicit-usings.cs"));
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) && !Path.GetFileName(p).StartsWith("Transformers.ML", StringComparison.Ordinal))
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("Transformers.ML", trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));

        string Folder(string path)
        {
            string relative = Path.GetRelativePath(Sources, Path.GetDirectoryName(path)!).Replace('\\', '/');
            return relative == "." ? "(root)" : relative;
        }
        var uses = new Dictionary<(string, string), string>();
        foreach (SyntaxTree tree in trees.Where(t => t.FilePath != "implicit-usings.cs"))
        {
            SemanticModel model = compilation.GetSemanticModel(tree);
            string from = Folder(tree.FilePath);
            foreach (SimpleNameSyntax name in tree.GetRoot().DescendantNodes().OfType<SimpleNameSyntax>())
            {
                SymbolInfo info = model.GetSymbolInfo(name);
                ISymbol? symbol = info.Symbol ?? info.CandidateSymbols.FirstOrDefault();
                if (symbol is null or INamespaceSymbol)
                {
                    continue;
                }
                symbol = symbol is IMethodSymbol { ReducedFrom: { } reduced } ? reduced : symbol.OriginalDefinition;
                foreach (Location location in symbol.Locations.Where(l => l.IsInSource && l.SourceTree!.FilePath != "implicit-usings.cs").Take(1))
                {
                    string to = Folder(location.SourceTree!.FilePath);
                    if (to != from)
                    {
                        uses.TryAdd((from, to), $"{symbol.ToDisplayString()} (in {Path.GetFileName(tree.FilePath)})");
                    }
                }
            }
        }
        return uses;
    }

    /// <summary>The strongly connected groups of more than one folder (Tarjan), each as a loop of folders.</summary>
    private static List<List<string>> Cycles(List<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).Distinct().ToList());
        var nodes = edges.SelectMany(e => new[] { e.From, e.To }).Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList();
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var groups = new List<List<string>>();
        void Visit(string node)
        {
            index[node] = low[node] = index.Count;
            stack.Push(node);
            onStack.Add(node);
            foreach (string to in next.GetValueOrDefault(node) ?? new List<string>())
            {
                if (!index.ContainsKey(to))
                {
                    Visit(to);
                    low[node] = Math.Min(low[node], low[to]);
                }
                else if (onStack.Contains(to))
                {
                    low[node] = Math.Min(low[node], index[to]);
                }
            }
            if (low[node] == index[node])
            {
                var group = new List<string>();
                string member;
                do
                {
                    member = stack.Pop();
                    onStack.Remove(member);
                    group.Add(member);
                }
                while (member != node);
                if (group.Count > 1)
                {
                    groups.Add(Loop(group, next));
                }
            }
        }
        foreach (string node in nodes.Where(n => !index.ContainsKey(n)))
        {
            Visit(node);
        }
        return groups;
    }

    /// <summary>A loop through the group starting at its first member (breadth-first back to the start), for the message.</summary>
    private static List<string> Loop(List<string> group, Dictionary<string, List<string>> next)
    {
        string start = group.Min(StringComparer.Ordinal)!;
        var previous = new Dictionary<string, string>();
        var queue = new Queue<string>(new[] { start });
        while (queue.Count > 0)
        {
            string node = queue.Dequeue();
            foreach (string to in (next.GetValueOrDefault(node) ?? new List<string>()).Where(group.Contains))
            {
                if (to == start)
                {
                    var loop = new List<string> { node };
                    while (loop[^1] != start)
                    {
                        loop.Add(previous[loop[^1]]);
                    }
                    loop.Reverse();
                    return loop;
                }
                if (previous.TryAdd(to, node))
                {
                    queue.Enqueue(to);
                }
            }
        }
        return group;
    }
}

// The most that any quantization of a graph's weight products can give: the float32 export with every product by a
// constant weight matrix (the products int8 quantizes: Linear layers, the packed q/k/v, the tied output projection)
// replaced by a copy of its input cut or repeated to the product's width. Everything else (attention products, softmax,
// LayerNorm, GELU, biases, the scan's preprocessing, the patch convolution, the cache) is left as it is, so the bound
// graph runs the same steps on tensors of the same shapes: the time it saves over float32 is the whole of the products'
// time, and no int8 form can save more than that.
using Google.Protobuf;
using Onnx;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.Benchmarks;

internal static class ProductBound
{
    /// <summary>
    /// Writes <paramref name="path"/>: the graph of <paramref name="fp32"/> with each MatMul by a constant (K, N) matrix (an
    /// initializer, or the Transpose of one for a tied projection) replaced by its input repeated or cut to N columns.
    /// Returns how many products were replaced.
    /// </summary>
    public static int Write(string fp32, string path)
    {
        ModelProto model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(fp32));
        GraphProto graph = model.Graph;
        Dictionary<string, TensorProto> initializers = graph.Initializer.ToDictionary(t => t.Name);
        Dictionary<string, NodeProto> producers = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        var nodes = new List<NodeProto>();
        int replaced = 0;
        foreach (NodeProto node in graph.Node)
        {
            if (node.OpType != "MatMul" || node.Domain.Length > 0 || WeightShape(node.Input[1], initializers, producers) is not (long k, long n))
            {
                nodes.Add(node);
                continue;
            }
            replaced++;
            string x = node.Input[0], output = node.Output[0];
            if (n == k)
            {
                nodes.Add(Node("Identity", new[] { x }, output));
                continue;
            }
            string wide = x;
            if (n > k)
            {
                wide = output + "_repeated";
                NodeProto concat = Node("Concat", Enumerable.Repeat(x, (int)((n + k - 1) / k)), wide);
                concat.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
                nodes.Add(concat);
            }
            if (n % k != 0) // also n < k: the input cut to n columns
            {
                string starts = Longs(graph, output + "_starts", 0), ends = Longs(graph, output + "_ends", n), axes = Longs(graph, output + "_axes", -1);
                nodes.Add(Node("Slice", new[] { wide, starts, ends, axes }, output));
            }
            else
            {
                nodes[^1].Output[0] = output;
            }
        }
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        // The replaced products' weights (and a tied table's Transpose, now unused) go too, as ONNX Runtime would drop them.
        DropUnused(graph);
        OnnxGraph.Save(model, path);
        return replaced;
    }

    /// <summary>Removes nodes whose outputs nothing uses (and that are not graph outputs), then initializers nothing reads.</summary>
    private static void DropUnused(GraphProto graph)
    {
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        while (true)
        {
            var used = graph.Node.SelectMany(n => n.Input).Concat(outputs).ToHashSet();
            NodeProto[] dead = graph.Node.Where(n => n.Output.All(o => !used.Contains(o))).ToArray();
            if (dead.Length == 0)
            {
                foreach (TensorProto unread in graph.Initializer.Where(t => !used.Contains(t.Name)).ToArray())
                {
                    graph.Initializer.Remove(unread);
                }
                return;
            }
            foreach (NodeProto node in dead)
            {
                graph.Node.Remove(node);
            }
        }
    }

    /// <summary>(K, N) of a constant float matrix input: an initializer, or a Transpose (perm 1, 0) of one.</summary>
    private static (long K, long N)? WeightShape(string input, Dictionary<string, TensorProto> initializers, Dictionary<string, NodeProto> producers)
    {
        if (initializers.TryGetValue(input, out TensorProto? weight))
        {
            return weight.Dims.Count == 2 && weight.DataType == (int)TensorProto.Types.DataType.Float ? (weight.Dims[0], weight.Dims[1]) : null;
        }
        if (producers.TryGetValue(input, out NodeProto? transpose) && transpose.OpType == "Transpose"
            && initializers.TryGetValue(transpose.Input[0], out TensorProto? table) && table.Dims.Count == 2 && table.DataType == (int)TensorProto.Types.DataType.Float)
        {
            return (table.Dims[1], table.Dims[0]);
        }
        return null;
    }

    private static NodeProto Node(string opType, IEnumerable<string> inputs, string output)
    {
        var node = new NodeProto { OpType = opType, Name = output + "_bound" };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        return node;
    }

    private static string Longs(GraphProto graph, string name, long value)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(BitConverter.GetBytes(value)) };
        tensor.Dims.Add(1);
        graph.Initializer.Add(tensor);
        return name;
    }
}

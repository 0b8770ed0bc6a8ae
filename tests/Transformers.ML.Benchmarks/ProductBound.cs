// The most that any quantization of a graph's weight products can give: the float32 export with every product by a
// constant weight matrix (the products int8 quantizes: Linear layers, the packed q/k/v, the tied output projection)
// replaced by a copy of its input cut or repeated to the product's width. Everything else (attention products, softmax,
// LayerNorm, GELU, biases, the scan's preprocessing, the patch convolution, the cache) is left as it is, so the bound
// graph runs the same steps on tensors of the same shapes: the time it saves over float32 is the whole of the products'
// time, and no int8 form can save more than that. With everyProduct the graph goes further: the products of two
// activations (attention's q k^T and its weights times v) and the convolutions go too, so its time is what is left if every
// product of the graph, whatever quantized it, cost nothing.
using Google.Protobuf;
using Onnx;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.Benchmarks;

internal static class ProductBound
{
    /// <summary>
    /// Writes <paramref name="path"/>: the graph of <paramref name="fp32"/> with each MatMul by a constant (K, N) matrix (an
    /// initializer, or the Transpose of one for a tied projection) replaced by its input repeated or cut to N columns.
    /// With <paramref name="everyProduct"/>, also each other MatMul A (..., M, K) x B (..., K, N) by A's first column plus B's
    /// first row (an output-sized Add), and each 2-D Conv by a max pool of its input's first channel over the convolution's
    /// window plus a zero per output channel (the same output shape). Returns how many products (and convolutions) were replaced.
    /// </summary>
    public static int Write(string fp32, string path, bool everyProduct = false)
    {
        ModelProto model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(fp32));
        GraphProto graph = model.Graph;
        Dictionary<string, TensorProto> initializers = graph.Initializer.ToDictionary(t => t.Name);
        Dictionary<string, NodeProto> producers = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        var nodes = new List<NodeProto>();
        int replaced = 0;
        foreach (NodeProto node in graph.Node)
        {
            if (everyProduct && node.Domain.Length == 0 && Free(graph, node, initializers, producers) is NodeProto[] free)
            {
                replaced++;
                nodes.AddRange(free);
                continue;
            }
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

    /// <summary>
    /// The nodes standing for a product of two activations (a MatMul whose second input is not a constant matrix) or a
    /// 2-D convolution by a constant kernel, at the cost of writing the output once; null for any other node.
    /// </summary>
    private static NodeProto[]? Free(GraphProto graph, NodeProto node, Dictionary<string, TensorProto> initializers, Dictionary<string, NodeProto> producers)
    {
        string output = node.Output[0];
        if (node.OpType == "MatMul" && WeightShape(node.Input[1], initializers, producers) is null)
        {
            return new[]
            {
                Node("Slice", new[] { node.Input[0], Longs(graph, output + "_a_starts", 0), Longs(graph, output + "_a_ends", 1), Longs(graph, output + "_a_axes", -1) }, output + "_column"),
                Node("Slice", new[] { node.Input[1], Longs(graph, output + "_b_starts", 0), Longs(graph, output + "_b_ends", 1), Longs(graph, output + "_b_axes", -2) }, output + "_row"),
                Node("Add", new[] { output + "_column", output + "_row" }, output),
            };
        }
        if (node.OpType == "Conv" && initializers.TryGetValue(node.Input[1], out TensorProto? kernel) && kernel.Dims.Count == 4
            && node.Attribute.All(a => a.Name != "group" || a.I == 1) && node.Attribute.All(a => a.Name != "auto_pad" || a.S.ToStringUtf8() == "NOTSET"))
        {
            NodeProto pool = Node("MaxPool", new[] { output + "_channel" }, output + "_pooled");
            var window = new AttributeProto { Name = "kernel_shape", Type = AttributeProto.Types.AttributeType.Ints };
            window.Ints.AddRange(kernel.Dims.Skip(2));
            pool.Attribute.Add(window);
            pool.Attribute.AddRange(node.Attribute.Where(a => a.Name is "strides" or "pads" or "dilations").Select(a => a.Clone()));
            var zeros = new TensorProto { Name = output + "_zeros", DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(new byte[4 * kernel.Dims[0]]) };
            zeros.Dims.AddRange(new[] { kernel.Dims[0], 1L, 1L });
            graph.Initializer.Add(zeros);
            return new[]
            {
                Node("Slice", new[] { node.Input[0], Longs(graph, output + "_starts", 0), Longs(graph, output + "_ends", 1), Longs(graph, output + "_axes", 1) }, output + "_channel"),
                pool,
                Node("Add", new[] { output + "_pooled", output + "_zeros" }, output),
            };
        }
        return null;
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

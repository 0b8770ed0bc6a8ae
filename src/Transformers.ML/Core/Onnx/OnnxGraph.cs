// A small builder of ONNX graphs over the ONNX protobuf classes (OnnxSharp's generated types, Google.Protobuf):
// inputs and outputs with symbolic (dynamic) dimensions, weights as initializers, nodes with attributes, and a
// model with opset 17 and metadata. The exporters of every capability compose the blocks of OnnxBlocks on it.
using Google.Protobuf;
using Onnx;
using TorchSharp;
using Transformers.ML.Core.IO;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Transformers.ML.Core.Onnx;

internal sealed class OnnxGraph
{
    /// <summary>The opset the exports target: 17 has LayerNormalization; every op used here exists there.</summary>
    public const int Opset = 17;

    /// <summary>The domain of ONNX Runtime's contrib operators (opset 1).</summary>
    public const string RuntimeDomain = "com.microsoft";

    private readonly GraphProto _graph = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _renamed = new(StringComparer.Ordinal);
    private int _counter;

    public OnnxGraph(string name)
    {
        _graph.Name = name;
    }

    /// <summary>A graph input; a dimension is a fixed size (int or long) or a symbolic name (string) such as "batch".</summary>
    public string Input(string name, DataType type, params object[] dimensions)
    {
        _graph.Input.Add(ValueInfo(name, type, dimensions));
        Reserve(name);
        return name;
    }

    /// <summary>
    /// An int64 scalar input that a caller may leave out: an initializer of the same name holds its default (ONNX Runtime
    /// calls it an overridable initializer and does not fold it into constants).
    /// </summary>
    public string OptionalInput(string name, long defaultValue) => OptionalInput(name, Array.Empty<long>(), new[] { defaultValue });

    /// <summary>
    /// An int64 input of symbolic <paramref name="dimensions"/> that a caller may leave out: its default is
    /// <paramref name="defaultValues"/> of shape <paramref name="defaultShape"/>, which must broadcast as any fed value
    /// would (an overridable initializer, as <see cref="OptionalInput(string, long)"/>).
    /// </summary>
    public string OptionalInput(string name, long[] defaultShape, long[] defaultValues, params object[] dimensions)
    {
        Input(name, DataType.Int64, dimensions);
        return Initializer(name, DataType.Int64, defaultShape, defaultValues.SelectMany(BitConverter.GetBytes).ToArray(), reserved: true);
    }

    /// <summary>
    /// Makes <paramref name="value"/> the graph output <paramref name="name"/>. A node's output is renamed in place (the
    /// nodes that read it, and later ones through <see cref="Resolve"/>, use the new name): an Identity node would copy the
    /// tensor at every run, for a decoder's present keys and values the whole cache at every step. A graph input or a value
    /// that already is an output goes through Identity.
    /// </summary>
    public void Output(string value, string name, DataType type, params object[] dimensions)
    {
        value = Resolve(value);
        if (value != name)
        {
            Reserve(name);
            if (_producers.TryGetValue(value, out NodeProto? producer) && _graph.Output.All(o => o.Name != value))
            {
                producer.Output[producer.Output.IndexOf(value)] = name;
                foreach (NodeProto node in _graph.Node)
                {
                    for (int i = 0; i < node.Input.Count; i++)
                    {
                        if (node.Input[i] == value)
                        {
                            node.Input[i] = name;
                        }
                    }
                }
                _producers.Remove(value);
                _producers[name] = producer;
                _renamed[value] = name;
            }
            else
            {
                _graph.Node.Add(NewNode("Identity", new[] { value }, new[] { name }));
            }
        }
        _graph.Output.Add(ValueInfo(name, type, dimensions));
    }

    /// <summary>The current name of a value (<see cref="Output"/> may have renamed it).</summary>
    private string Resolve(string value) => _renamed.TryGetValue(value, out string? current) ? current : value;

    /// <summary>A float32 initializer with the values of <paramref name="tensor"/> (copied to the CPU, contiguous).</summary>
    public string Weight(string name, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        Tensor cpu = tensor.detach().to(ScalarType.Float32).cpu().contiguous();
        return Initializer(name, DataType.Float, cpu.shape, cpu.bytes.ToArray());
    }

    /// <summary>An int8 initializer from values and shape (quantized weights).</summary>
    public string Int8s(string name, sbyte[] values, params long[] shape)
    {
        var bytes = new byte[values.Length];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Initializer(name, DataType.Int8, shape, bytes);
    }

    /// <summary>A float32 initializer from values and shape.</summary>
    public string Floats(string name, float[] values, params long[] shape)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Initializer(name, DataType.Float, shape, bytes);
    }

    /// <summary>A shared int64 constant (e.g. a shape or an axis list).</summary>
    public string Longs(params long[] values)
    {
        string key = "i64:" + string.Join(",", values);
        if (!_constants.TryGetValue(key, out string? name))
        {
            var bytes = new byte[values.Length * 8];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            name = Initializer(Unique("const_i64"), DataType.Int64, new long[] { values.Length }, bytes, reserved: true);
            _constants[key] = name;
        }
        return name;
    }

    /// <summary>A shared float32 scalar constant.</summary>
    public string Scalar(float value)
    {
        string key = "f32:" + value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        if (!_constants.TryGetValue(key, out string? name))
        {
            name = Initializer(Unique("const_f32"), DataType.Float, Array.Empty<long>(), BitConverter.GetBytes(value), reserved: true);
            _constants[key] = name;
        }
        return name;
    }

    /// <summary>A shared uint8 scalar constant (a zero point).</summary>
    public string ByteScalar(byte value)
    {
        string key = "u8s:" + value;
        if (!_constants.TryGetValue(key, out string? name))
        {
            name = Initializer(Unique("const_u8s"), DataType.Uint8, Array.Empty<long>(), new[] { value }, reserved: true);
            _constants[key] = name;
        }
        return name;
    }

    /// <summary>A shared int64 scalar constant.</summary>
    public string LongScalar(long value)
    {
        string key = "i64s:" + value;
        if (!_constants.TryGetValue(key, out string? name))
        {
            name = Initializer(Unique("const_i64s"), DataType.Int64, Array.Empty<long>(), BitConverter.GetBytes(value), reserved: true);
            _constants[key] = name;
        }
        return name;
    }

    /// <summary>Adds a node with one output and returns the output's name. Attributes: long, float, string, long[], float[].</summary>
    public string Op(string opType, IReadOnlyList<string> inputs, params (string Name, object Value)[] attributes) =>
        OpN(opType, 1, inputs, attributes)[0];

    public string[] OpN(string opType, int outputs, IReadOnlyList<string> inputs, params (string Name, object Value)[] attributes) =>
        OpIn("", opType, outputs, inputs, attributes);

    /// <summary>A node of operator set <paramref name="domain"/> ("" for standard ONNX, <see cref="RuntimeDomain"/>); an empty input name leaves an optional input out.</summary>
    public string[] OpIn(string domain, string opType, int outputs, IReadOnlyList<string> inputs, params (string Name, object Value)[] attributes)
    {
        string[] names = Enumerable.Range(0, outputs).Select(_ => Unique(opType.ToLowerInvariant())).ToArray();
        NodeProto node = NewNode(opType, inputs.Select(Resolve), names);
        node.Domain = domain;
        foreach (string output in names)
        {
            _producers[output] = node;
        }
        foreach ((string name, object value) in attributes)
        {
            node.Attribute.Add(Attribute(name, value));
        }
        _graph.Node.Add(node);
        return names;
    }

    /// <summary>The model: IR version 8, opset 17, the producer and the metadata (configuration, tokenizer, classes...).</summary>
    public ModelProto ToModel(IReadOnlyDictionary<string, string> metadata)
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "Transformers.ML",
            ProducerVersion = typeof(OnnxGraph).Assembly.GetName().Version?.ToString() ?? "1.0",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        if (_graph.Node.Any(n => n.Domain == RuntimeDomain))
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = RuntimeDomain, Version = 1 });
        }
        foreach ((string key, string value) in metadata)
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }
        return model;
    }

    /// <summary>Writes the model to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Save(ModelProto model, string path) => AtomicFile.Write(path, stream => model.WriteTo(stream));

    private string Initializer(string name, DataType type, long[] shape, byte[] data, bool reserved = false)
    {
        if (!reserved)
        {
            Reserve(name);
        }
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(data) };
        tensor.Dims.AddRange(shape);
        _graph.Initializer.Add(tensor);
        return name;
    }

    private static NodeProto NewNode(string opType, IEnumerable<string> inputs, IEnumerable<string> outputs)
    {
        var node = new NodeProto { OpType = opType, Name = string.Join("_", outputs) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static AttributeProto Attribute(string name, object value)
    {
        var attribute = new AttributeProto { Name = name };
        switch (value)
        {
            case int i:
                attribute.Type = AttributeProto.Types.AttributeType.Int;
                attribute.I = i;
                break;
            case long l:
                attribute.Type = AttributeProto.Types.AttributeType.Int;
                attribute.I = l;
                break;
            case float f:
                attribute.Type = AttributeProto.Types.AttributeType.Float;
                attribute.F = f;
                break;
            case double d:
                attribute.Type = AttributeProto.Types.AttributeType.Float;
                attribute.F = (float)d;
                break;
            case string s:
                attribute.Type = AttributeProto.Types.AttributeType.String;
                attribute.S = ByteString.CopyFromUtf8(s);
                break;
            case long[] ls:
                attribute.Type = AttributeProto.Types.AttributeType.Ints;
                attribute.Ints.AddRange(ls);
                break;
            case float[] fs:
                attribute.Type = AttributeProto.Types.AttributeType.Floats;
                attribute.Floats.AddRange(fs);
                break;
            default:
                throw new ArgumentException($"Attribute '{name}' has an unsupported type {value.GetType().Name}.");
        }
        return attribute;
    }

    private static ValueInfoProto ValueInfo(string name, DataType type, object[] dimensions)
    {
        var shape = new TensorShapeProto();
        foreach (object d in dimensions)
        {
            shape.Dim.Add(d switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                int n => new TensorShapeProto.Types.Dimension { DimValue = n },
                long n => new TensorShapeProto.Types.Dimension { DimValue = n },
                _ => throw new ArgumentException($"Dimension of '{name}' must be a size or a name; found {d}."),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private string Unique(string prefix)
    {
        string name;
        do
        {
            name = $"{prefix}_{_counter++}";
        }
        while (_names.Contains(name));
        _names.Add(name);
        return name;
    }

    private void Reserve(string name)
    {
        if (!_names.Add(name))
        {
            throw new InvalidOperationException($"The ONNX graph already has a value named '{name}'.");
        }
    }
}

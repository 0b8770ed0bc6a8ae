// The Core's blocks written as ONNX nodes, once, from a module's own weights (by their PyTorch-style names):
// Linear, LayerNorm, the feed-forward network, multi-head attention (self or cross, with past keys/values and an
// additive mask), residual connections (pre- or post-LN), encoder and decoder layers and stacks. The ViT, GPT and
// translation exports compose them, as the TorchSharp models compose the Core's modules.
using static TorchSharp.torch;

namespace Transformers.ML.Core.Onnx;

/// <summary>Keys and values of one attention layer, (B, h, S, d_k) and (B, h, S, d_v).</summary>
internal readonly record struct KeyValue(string Key, string Value);

internal sealed class OnnxBlocks
{
    private readonly IReadOnlyDictionary<string, Tensor> _weights;
    private readonly bool _quantize;
    private readonly bool _perRow;
    private readonly Dictionary<string, (string Table, string Scales)> _quantizedTables = new(StringComparer.Ordinal);

    /// <param name="quantization">How the weights of Linear layers and the tied output projection are stored.</param>
    public OnnxBlocks(OnnxGraph graph, IReadOnlyDictionary<string, Tensor> weights, OnnxQuantization quantization = OnnxQuantization.None)
    {
        if (!Enum.IsDefined(quantization))
        {
            throw new ArgumentOutOfRangeException(nameof(quantization), quantization,
                $"OnnxExportOptions.Quantization must be one of {string.Join(", ", Enum.GetNames<OnnxQuantization>())}; found {quantization}.");
        }
        Graph = graph;
        _weights = weights;
        _quantize = quantization is OnnxQuantization.DynamicInt8 or OnnxQuantization.DynamicInt8PerRow;
        _perRow = quantization == OnnxQuantization.DynamicInt8PerRow;
    }

    public OnnxGraph Graph { get; }

    public Tensor Weight(string name) => _weights.TryGetValue(name, out Tensor? t) ? t
        : throw new InvalidOperationException($"ONNX export: the model has no weight '{name}' (it has {string.Join(", ", _weights.Keys.Take(8))}...).");

    public bool HasWeight(string name) => _weights.ContainsKey(name);

    /// <summary>x W^T + b: the weight is stored transposed (in, out) so that MatMul takes it as it is.</summary>
    public string Linear(string x, string prefix)
    {
        string y = MatMulByWeight(x, prefix + ".weight_t", Weight(prefix + ".weight").t());
        return HasWeight(prefix + ".bias") ? Graph.Op("Add", new[] { y, Graph.Weight(prefix + ".bias", Weight(prefix + ".bias")) }) : y;
    }

    /// <summary>x (..., in) times a constant (in, out) matrix: float32, or int8 with dynamically quantized activations.</summary>
    private string MatMulByWeight(string x, string name, Tensor matrix)
    {
        if (!_quantize)
        {
            return Graph.Op("MatMul", new[] { x, Graph.Weight(name, matrix) });
        }
        (sbyte[] values, float[] scales) = QuantizeColumns(matrix);
        string weight = Graph.Int8s(name + "_quantized", values, matrix.shape[0], matrix.shape[1]);
        return IntegerProduct(x, weight, Graph.Floats(name + "_scale", scales, scales.Length));
    }

    /// <summary>
    /// x (..., in) times an int8 (in, out) matrix with one scale per column: x quantized to uint8 at run time (per tensor),
    /// the integer product, and both scales applied (DynamicQuantizeLinear + MatMulInteger, which ONNX Runtime fuses).
    /// </summary>
    /// <param name="keep">Multiply only the last rows of x (<see cref="LastPositions"/>), after x is quantized as a whole, so
    /// that they get the integers and the scale they get without it (per row: before, which gives the same); null: every row.</param>
    private string IntegerProduct(string x, string weight, string scale, string? keep = null)
    {
        if (_perRow)
        {
            return RowwiseIntegerProduct(keep is null ? x : LastPositions(x, keep), weight, scale);
        }
        string[] quantized = Graph.OpN("DynamicQuantizeLinear", 3, new[] { x }); // uint8 x, its scale, its zero point
        string rows = keep is null ? quantized[0] : LastPositions(quantized[0], keep);
        string product = Graph.Op("MatMulInteger", new[] { rows, weight, quantized[2] });
        string floats = Graph.Op("Cast", new[] { product }, ("to", (long)global::Onnx.TensorProto.Types.DataType.Float));
        return Graph.Op("Mul", new[] { floats, Graph.Op("Mul", new[] { quantized[1], scale }) });
    }

    /// <summary>
    /// x (..., in) times an int8 (in, out) matrix with one scale per column, each row of x (a token) quantized on its own:
    /// symmetric, max |x| of the row maps to 127, stored as uint8 around 128 (the zero point MatMulInteger takes as one
    /// scalar). A row's integers and scale depend on that row alone, so its result does not depend on the rest of the
    /// batch. The two scales are applied one after the other: a Mul of the row scale and the column scales would match
    /// ONNX Runtime's MatMulIntegerToFloat fusion, whose kernel takes one scale for the whole input (tried with ONNX
    /// Runtime 1.31: it fused them and scaled every row alike, the logits off by up to 7.6 in a range of 25).
    /// </summary>
    private string RowwiseIntegerProduct(string x, string weight, string scale)
    {
        string largest = Graph.Op("ReduceMax", new[] { Graph.Op("Abs", new[] { x }) }, ("axes", new long[] { -1 }), ("keepdims", 1L));
        // A row of zeros gets a tiny scale instead of 0, so that it quantizes to 128 (zero) rather than to 0 / 0.
        string rowScale = Graph.Op("Mul", new[] { Graph.Op("Max", new[] { largest, Graph.Scalar(1e-30f) }), Graph.Scalar(1f / 127f) });
        // x / scale lies in [-127, 127]; QuantizeLinear with scale 1 rounds it half to even and adds 128.
        string integers = Graph.Op("QuantizeLinear", new[] { Graph.Op("Div", new[] { x, rowScale }), Graph.Scalar(1f), Graph.ByteScalar(128) });
        string product = Graph.Op("MatMulInteger", new[] { integers, weight, Graph.ByteScalar(128) });
        string floats = Graph.Op("Cast", new[] { product }, ("to", (long)global::Onnx.TensorProto.Types.DataType.Float));
        return Graph.Op("Mul", new[] { Graph.Op("Mul", new[] { floats, scale }), rowScale });
    }

    /// <summary>
    /// The token table (V, d) as int8 with one scale per token (symmetric, as <see cref="QuantizeColumns"/> per output channel
    /// of the tied projection, which is the same row): the lookup and the output projection share it. Written once per graph.
    /// </summary>
    private (string Table, string Scales) QuantizedTable(string prefix)
    {
        string name = prefix + ".tokens.weight_quantized";
        if (_quantizedTables.TryGetValue(name, out (string, string) made))
        {
            return made;
        }
        Tensor table = Weight(prefix + ".tokens.weight");
        (sbyte[] columns, float[] scales) = QuantizeColumns(table.t()); // (d, V): one scale per token
        int tokens = (int)table.shape[0], width = (int)table.shape[1];
        var rows = new sbyte[columns.Length];
        for (int d = 0; d < width; d++)
        {
            for (int v = 0; v < tokens; v++)
            {
                rows[v * width + d] = columns[d * tokens + v];
            }
        }
        made = (Graph.Int8s(name, rows, tokens, width), Graph.Floats(prefix + ".tokens.weight_scale", scales, tokens));
        _quantizedTables[name] = made;
        return made;
    }

    /// <summary>
    /// The largest |q| of an int8 weight: 63, seven bits, as ONNX Runtime's quantize_dynamic with reduce_range. x64 CPUs
    /// without VNNI (AVX2, or AVX-512 without VNNI: AMD Zen 1 to 3, Intel Haswell to Skylake) multiply uint8 activations by int8
    /// weights with VPMADDUBSW, which adds each pair of products in 16 bits and saturates: 255 * 127 * 2 = 64,770 does not
    /// fit in 32,767, 255 * 63 * 2 = 32,130 does. With full-range weights ONNX Runtime 1.31's MatMulInteger gave 1,048,544
    /// for 64 products of 255 and 127 on an AMD EPYC Zen 3 (2,072,640 exact), and the int8 exports' text and translations
    /// turned to repeats there; CPUs with VNNI, and ARM, are exact either way.
    /// </summary>
    internal const int WeightLimit = 63;

    /// <summary>Symmetric int8 per column (output channel): scale = max |w| / <see cref="WeightLimit"/>, q = round(w / scale) in [-63, 63].</summary>
    internal static (sbyte[] Values, float[] Scales) QuantizeColumns(Tensor matrix)
    {
        using var scope = NewDisposeScope();
        Tensor w = matrix.detach().to(ScalarType.Float32).cpu().contiguous();
        int rows = (int)w.shape[0], columns = (int)w.shape[1];
        float[] data = w.data<float>().ToArray();
        var scales = new float[columns];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                scales[c] = Math.Max(scales[c], Math.Abs(data[r * columns + c]));
            }
        }
        for (int c = 0; c < columns; c++)
        {
            scales[c] = scales[c] > 0 ? scales[c] / WeightLimit : 1f;
        }
        var values = new sbyte[data.Length];
        for (int i = 0; i < data.Length; i++)
        {
            values[i] = (sbyte)Math.Clamp(MathF.Round(data[i] / scales[i % columns]), -WeightLimit, WeightLimit);
        }
        return (values, scales);
    }

    public string LayerNorm(string x, string prefix, double epsilon) =>
        Graph.Op("LayerNormalization", new[] { x, Graph.Weight(prefix + ".weight", Weight(prefix + ".weight")), Graph.Weight(prefix + ".bias", Weight(prefix + ".bias")) },
            ("axis", -1L), ("epsilon", (float)epsilon));

    /// <summary>
    /// GELU, ReLU or GPT-2's tanh GELU, written with opset-17 ops in the exact forms ONNX Runtime's GeluFusion and
    /// FastGeluFusion recognise (x / sqrt 2, not x * (1 / sqrt 2); Pow(x, 3)), so that it runs them as one Gelu / FastGelu
    /// node (and folds the bias Add before them into BiasGelu) instead of five to eight element-wise passes.
    /// </summary>
    public string Activation(string x, FeedForwardActivation activation)
    {
        switch (activation)
        {
            case FeedForwardActivation.Relu:
                return Graph.Op("Relu", new[] { x });
            case FeedForwardActivation.Gelu:
            {
                // 0.5 x (1 + erf(x / sqrt 2))
                string erf = Graph.Op("Erf", new[] { Graph.Op("Div", new[] { x, Graph.Scalar((float)Math.Sqrt(2)) }) });
                return Graph.Op("Mul", new[] { Graph.Op("Mul", new[] { x, Graph.Scalar(0.5f) }), Graph.Op("Add", new[] { erf, Graph.Scalar(1f) }) });
            }
            case FeedForwardActivation.GeluTanh:
            {
                // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
                string cube = Graph.Op("Pow", new[] { x, Graph.Scalar(3f) });
                string inner = Graph.Op("Add", new[] { x, Graph.Op("Mul", new[] { cube, Graph.Scalar(0.044715f) }) });
                string tanh = Graph.Op("Tanh", new[] { Graph.Op("Mul", new[] { inner, Graph.Scalar((float)Math.Sqrt(2 / Math.PI)) }) });
                return Graph.Op("Mul", new[] { Graph.Op("Mul", new[] { x, Graph.Scalar(0.5f) }), Graph.Op("Add", new[] { tanh, Graph.Scalar(1f) }) });
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation.");
        }
    }

    public string FeedForward(string x, string prefix, TransformerConfig config) =>
        Linear(Activation(Linear(x, prefix + ".fc1"), config.Activation), prefix + ".fc2");

    /// <summary>(B, T, h * d) -> (B, h, T, d).</summary>
    public string SplitHeads(string x, int heads, int dimension) =>
        Graph.Op("Transpose", new[] { Graph.Op("Reshape", new[] { x, Graph.Longs(0, 0, heads, dimension) }) }, ("perm", new long[] { 0, 2, 1, 3 }));

    /// <summary>The projected keys and values of <paramref name="source"/> (for a cross-attention computed once).</summary>
    public KeyValue KeysAndValues(string source, string prefix, TransformerConfig config) => new(
        SplitHeads(Linear(source, prefix + ".k_proj"), config.NumHeads, config.HeadKeyDimension),
        SplitHeads(Linear(source, prefix + ".v_proj"), config.NumHeads, config.HeadValueDimension));

    /// <summary>
    /// Multi-head attention of <paramref name="query"/> (B, T, d) over <paramref name="keyValue"/>'s projections, or over
    /// <paramref name="given"/> keys and values; <paramref name="past"/> is prepended to the new ones (self-attention
    /// cache). <paramref name="mask"/> is added to the scores (0 or the lowest float). Returns the output and the keys and values used.
    /// </summary>
    public (string Output, KeyValue Present) Attention(string query, string? keyValue, string prefix, TransformerConfig config, string? mask,
        KeyValue? past = null, KeyValue? given = null)
    {
        int heads = config.NumHeads, dk = config.HeadKeyDimension, dv = config.HeadValueDimension;
        string q;
        KeyValue kv;
        if (given is null && keyValue == query && dk == dv)
        {
            (q, kv) = PackedProjections(query, prefix, config);
        }
        else
        {
            q = SplitHeads(Linear(query, prefix + ".q_proj"), heads, dk);
            kv = given ?? KeysAndValues(keyValue ?? throw new ArgumentNullException(nameof(keyValue)), prefix, config);
        }
        if (past is KeyValue p)
        {
            kv = new KeyValue(Graph.Op("Concat", new[] { p.Key, kv.Key }, ("axis", 2L)), Graph.Op("Concat", new[] { p.Value, kv.Value }, ("axis", 2L)));
        }
        string keysT = Graph.Op("Transpose", new[] { kv.Key }, ("perm", new long[] { 0, 1, 3, 2 }));
        string scores = Graph.Op("Mul", new[] { Graph.Op("MatMul", new[] { q, keysT }), Graph.Scalar((float)(1 / Math.Sqrt(dk))) });
        if (mask is not null)
        {
            scores = Graph.Op("Add", new[] { scores, mask });
        }
        string weights = Graph.Op("Softmax", new[] { scores }, ("axis", -1L));
        string context = Graph.Op("MatMul", new[] { weights, kv.Value });
        string merged = Graph.Op("Reshape", new[] { Graph.Op("Transpose", new[] { context }, ("perm", new long[] { 0, 2, 1, 3 })), Graph.Longs(0, 0, heads * dv) });
        return (Linear(merged, prefix + ".out_proj"), kv);
    }

    /// <summary>
    /// Self-attention's q, k and v projections of x (B, T, d) as one product with the three matrices side by side (d, 3 h d_k),
    /// then one Reshape, one Transpose and a Split into (B, h, T, d_k) each: five nodes instead of twelve, and for int8 one
    /// larger integer product instead of three small ones.
    /// </summary>
    private (string Query, KeyValue KeyValue) PackedProjections(string x, string prefix, TransformerConfig config)
    {
        string heads = Graph.Op("Transpose", new[] { Graph.Op("Reshape", new[] { PackedProduct(x, prefix), Graph.Longs(0, 0, 3 * config.NumHeads, config.HeadKeyDimension) }) },
            ("perm", new long[] { 0, 2, 1, 3 })); // (B, 3h, T, d_k)
        string[] qkv = Graph.OpN("Split", 3, new[] { heads }, ("axis", 1L));
        return (qkv[0], new KeyValue(qkv[1], qkv[2]));
    }

    /// <summary>x (B, T, d) times the q, k and v matrices side by side, plus their biases: (B, T, 3 h d_k), q first.</summary>
    private string PackedProduct(string x, string prefix)
    {
        string[] parts = { ".q_proj", ".k_proj", ".v_proj" };
        using var scope = NewDisposeScope();
        Tensor packed = cat(parts.Select(p => Weight(prefix + p + ".weight").t()).ToArray(), 1);
        string y = MatMulByWeight(x, prefix + ".qkv_weight_t", packed);
        if (parts.Any(p => HasWeight(prefix + p + ".bias")))
        {
            Tensor bias = cat(parts.Select(p => HasWeight(prefix + p + ".bias") ? Weight(prefix + p + ".bias")
                : zeros(Weight(prefix + p + ".weight").shape[0])).ToArray(), 0);
            y = Graph.Op("Add", new[] { y, Graph.Weight(prefix + ".qkv_bias", bias) });
        }
        return y;
    }

    /// <summary>
    /// Causal self-attention over a cache buffer that ONNX Runtime writes in place: its GroupQueryAttention (as many key/value
    /// heads as query heads) on the packed q/k/v product, with <paramref name="buffers"/> (B, h, context, d_k) as past and
    /// present, <paramref name="lengths"/> (B) int32 = past + new - 1 per row and <paramref name="total"/> (1) int32 = past + new.
    /// Returns the output (after the output projection) and the present names (the same buffers when bound so).
    /// </summary>
    private (string Output, KeyValue Present) SharedCacheAttention(string x, string prefix, TransformerConfig config, KeyValue buffers, string lengths, string total)
    {
        if (config.HeadKeyDimension != config.HeadValueDimension)
        {
            throw new NotSupportedException(
                $"SharedCacheBuffers needs keys and values of one head size; this model has {config.HeadKeyDimension} and {config.HeadValueDimension}. Export it without SharedCacheBuffers.");
        }
        string[] outputs = Graph.OpIn(OnnxGraph.RuntimeDomain, "GroupQueryAttention", 3,
            new[] { PackedProduct(x, prefix), "", "", buffers.Key, buffers.Value, lengths, total },
            ("num_heads", (long)config.NumHeads), ("kv_num_heads", (long)config.NumHeads), ("scale", (float)(1 / Math.Sqrt(config.HeadKeyDimension))));
        return (Linear(outputs[0], prefix + ".out_proj"), new KeyValue(outputs[1], outputs[2]));
    }

    /// <summary>
    /// The lengths a shared-buffer graph derives from its attention mask (B, past + new) of ones and the new tokens' count
    /// (an int64 scalar): the past length (int64 scalar, the positions' offset), each row's last position (B) int32 and the
    /// total length (1) int32, as <see cref="SharedCacheAttention"/> takes them.
    /// </summary>
    private (string PastLength, string LastPositions, string Total) SharedCacheLengths(string attentionMask, string newLength)
    {
        string total = Dimension(attentionMask, 1);
        string pastLength = Graph.Op("Sub", new[] { total, newLength });
        string lastPositions = Graph.Op("Cast", new[] { Graph.Op("Sub", new[] { Graph.Op("ReduceSum", new[] { attentionMask, Graph.Longs(1) }, ("keepdims", 0L)), Graph.LongScalar(1) }) },
            ("to", (long)global::Onnx.TensorProto.Types.DataType.Int32));
        string total32 = Graph.Op("Cast", new[] { Graph.Op("Unsqueeze", new[] { total, Graph.Longs(0) }) }, ("to", (long)global::Onnx.TensorProto.Types.DataType.Int32));
        return (pastLength, lastPositions, total32);
    }

    /// <summary>A residual connection around <paramref name="sublayer"/>: pre-LN x + f(LN(x)), or post-LN LN(x + f(x)).</summary>
    public string Residual(string x, string prefix, TransformerConfig config, Func<string, string> sublayer)
    {
        if (config.NormPosition == NormPosition.Pre)
        {
            return Graph.Op("Add", new[] { x, sublayer(LayerNorm(x, prefix + ".norm", config.LayerNormEpsilon)) });
        }
        return LayerNorm(Graph.Op("Add", new[] { x, sublayer(x) }), prefix + ".norm", config.LayerNormEpsilon);
    }

    public string EncoderLayer(string x, string prefix, TransformerConfig config, string? mask)
    {
        x = Residual(x, prefix + ".self_attn_residual", config, h => Attention(h, h, prefix + ".self_attn", config, mask).Output);
        return Residual(x, prefix + ".ffn_residual", config, h => FeedForward(h, prefix + ".ffn", config));
    }

    /// <summary>The encoder stack (with the final LayerNorm of a pre-LN stack).</summary>
    public string Encoder(string x, string prefix, TransformerConfig config, string? mask)
    {
        for (int i = 0; i < config.NumLayers; i++)
        {
            x = EncoderLayer(x, $"{prefix}.layers.{i}", config, mask);
        }
        return config.NormPosition == NormPosition.Pre ? LayerNorm(x, prefix + ".final_norm", config.LayerNormEpsilon) : x;
    }

    /// <summary>
    /// A decoder layer whose self-attention (normalised input -> output and present) is <paramref name="selfAttention"/>
    /// (over a concatenated or a shared-buffer cache) and, when <paramref name="cross"/> is given, with cross-attention to precomputed keys and values.
    /// </summary>
    public (string Output, KeyValue Present) DecoderLayer(string x, string prefix, TransformerConfig config, Func<string, (string Output, KeyValue Present)> selfAttention,
        KeyValue? cross, string? crossMask)
    {
        KeyValue present = default;
        x = Residual(x, prefix + ".self_attn_residual", config, h =>
        {
            (string output, KeyValue kv) = selfAttention(h);
            present = kv;
            return output;
        });
        if (cross is KeyValue c)
        {
            x = Residual(x, prefix + ".cross_attn_residual", config, h => Attention(h, null, prefix + ".cross_attn", config, crossMask, given: c).Output);
        }
        x = Residual(x, prefix + ".ffn_residual", config, h => FeedForward(h, prefix + ".ffn", config));
        return (x, present);
    }

    /// <summary>
    /// The decoder stack of an export with a key/value cache (the GPT, the translator's decoder): token ids
    /// <paramref name="ids"/> (B, T) int64 at the positions after the cached ones; inputs past_key_i / past_value_i, either
    /// the cache so far (B, h, past, d), concatenated with the new keys into present_key_i / present_value_i (B, h, past + T, d),
    /// or with <paramref name="sharedBuffers"/> buffers (B, h, capacity, d) that GroupQueryAttention writes in place, with
    /// an attention_mask input (B, past + T) of ones; when <paramref name="cross"/> is given, cross-attention to those
    /// keys and values under <paramref name="crossMask"/>. With a concatenated cache, <paramref name="attentionMask"/> (an
    /// int64 (B or 1, past + T or 1) input of 1 at tokens and 0 at padding, Hugging Face's attention_mask) blocks the
    /// padded slots and counts each row's positions over its tokens only (see <see cref="MaskedPositions"/>); the shared
    /// buffers make their own attention_mask input, which gives GroupQueryAttention each row's length and the positions
    /// too. Returns the hidden states (B, T, d), after the final LayerNorm of a pre-LN stack.
    /// </summary>
    public string CachedDecoder(string ids, Core.Modules.TokenEmbedding embedding, TransformerConfig config, bool sharedBuffers,
        IReadOnlyList<KeyValue>? cross = null, string? crossMask = null, string? attentionMask = null)
    {
        if (sharedBuffers && attentionMask is not null)
        {
            throw new ArgumentException("The shared-buffer decoder makes its own attention_mask input.", nameof(attentionMask));
        }
        const global::Onnx.TensorProto.Types.DataType Float = global::Onnx.TensorProto.Types.DataType.Float, Int64 = global::Onnx.TensorProto.Types.DataType.Int64;
        if (sharedBuffers)
        {
            attentionMask = Graph.Input(OnnxSharedCache.AttentionMask, Int64, "batch", "total");
        }
        string cacheLength = sharedBuffers ? "capacity" : "past", presentLength = sharedBuffers ? "capacity" : "total";
        var past = new KeyValue[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            past[i] = new KeyValue(Graph.Input(OnnxKeyValueCache.PastKey(i), Float, "batch", config.NumHeads, cacheLength, config.HeadKeyDimension),
                Graph.Input(OnnxKeyValueCache.PastValue(i), Float, "batch", config.NumHeads, cacheLength, config.HeadValueDimension));
        }
        string newLength = Dimension(ids, 1);
        string pastLength;
        Func<int, string, (string Output, KeyValue Present)> selfAttention;
        if (sharedBuffers)
        {
            // The past length is the mask's length minus the new tokens; GroupQueryAttention takes each row's last position
            // and the total length, and writes the new keys and values into the buffers at the past length.
            (pastLength, string lastPositions, string total) = SharedCacheLengths(attentionMask!, newLength);
            selfAttention = (i, h) => SharedCacheAttention(h, $"decoder.layers.{i}.self_attn", config, past[i], lastPositions, total);
        }
        else
        {
            pastLength = Dimension(past[0].Key, 2);
            string causal = CausalMask(newLength, pastLength, attentionMask);
            selfAttention = (i, h) => Attention(h, h, $"decoder.layers.{i}.self_attn", config, causal, past[i]);
        }
        string x = TokenEmbedding(ids, embedding, "embedding", config, pastLength, attentionMask);
        for (int i = 0; i < config.NumLayers; i++)
        {
            int layer = i;
            (x, KeyValue present) = DecoderLayer(x, $"decoder.layers.{i}", config, h => selfAttention(layer, h), cross?[i], crossMask);
            Graph.Output(present.Key, OnnxKeyValueCache.PresentKey(i), Float, "batch", config.NumHeads, presentLength, config.HeadKeyDimension);
            Graph.Output(present.Value, OnnxKeyValueCache.PresentValue(i), Float, "batch", config.NumHeads, presentLength, config.HeadValueDimension);
        }
        return config.NormPosition == NormPosition.Pre ? LayerNorm(x, "decoder.final_norm", config.LayerNormEpsilon) : x;
    }

    /// <summary>
    /// The additive causal mask (1, 1, T, P + T) for T new positions after P cached ones: query i (absolute position P + i)
    /// sees keys 0 .. P + i. <paramref name="newLength"/> and <paramref name="pastLength"/> are int64 scalars. With
    /// <paramref name="attentionMask"/> (B or 1, P + T or 1), (B, 1, T, P + T), also blocking the keys where it is 0
    /// (one blocked mask, so a padding query that sees only padding gets equal finite scores, not NaN).
    /// </summary>
    private string CausalMask(string newLength, string pastLength, string? attentionMask = null)
    {
        string total = Graph.Op("Add", new[] { newLength, pastLength });
        string rows = Graph.Op("Range", new[] { pastLength, total, Graph.LongScalar(1) });             // (T): absolute positions
        string columns = Graph.Op("Unsqueeze", new[] { Graph.Op("Range", new[] { Graph.LongScalar(0), total, Graph.LongScalar(1) }), Graph.Longs(0) }); // (1, P + T)
        string blocked = Graph.Op("Unsqueeze", new[] { Graph.Op("Greater", new[] { columns, Graph.Op("Unsqueeze", new[] { rows, Graph.Longs(1) }) }), Graph.Longs(0, 1) });
        if (attentionMask is not null)
        {
            string padding = Graph.Op("Equal", new[] { attentionMask, Graph.LongScalar(0) }); // (B, P + T)
            blocked = Graph.Op("Or", new[] { blocked, Graph.Op("Unsqueeze", new[] { padding, Graph.Longs(1, 2) }) });
        }
        return BlockedToAdditive(blocked);
    }

    /// <summary>A key padding mask (B, S) of 1 at padding (int64) -> the additive mask (B, 1, 1, S).</summary>
    public string PaddingMask(string padding) =>
        Graph.Op("Unsqueeze", new[] { BlockedToAdditive(Graph.Op("Cast", new[] { padding }, ("to", (long)TensorProtoBool))), Graph.Longs(1, 2) });

    private const int TensorProtoBool = (int)global::Onnx.TensorProto.Types.DataType.Bool;

    /// <summary>Boolean "blocked" -> 0 where allowed, the lowest float where blocked (finite, as the TorchSharp mask).</summary>
    private string BlockedToAdditive(string blocked) =>
        Graph.Op("Mul", new[] { Graph.Op("Cast", new[] { blocked }, ("to", (long)global::Onnx.TensorProto.Types.DataType.Float)), Graph.Scalar(float.MinValue) });

    /// <summary>Dimension <paramref name="axis"/> of <paramref name="x"/> as an int64 scalar.</summary>
    public string Dimension(string x, long axis) =>
        Graph.Op("Gather", new[] { Graph.Op("Shape", new[] { x }), Graph.LongScalar(axis) }, ("axis", 0L));

    /// <summary>
    /// Token ids (B, T) at positions offset .. offset + T - 1 -> embeddings (B, T, d), as TokenEmbedding: the token row
    /// (times sqrt(d) when the config scales), plus the position table (learned or sinusoidal, stored as it is). With
    /// <paramref name="attentionMask"/>, the positions of <see cref="MaskedPositions"/>.
    /// </summary>
    public string TokenEmbedding(string ids, Core.Modules.TokenEmbedding embedding, string prefix, TransformerConfig config, string offset, string? attentionMask = null)
    {
        string x;
        if (_quantize)
        {
            // int8 rows times their token's scale.
            (string table, string scales) = QuantizedTable(prefix);
            string rows = Graph.Op("Cast", new[] { Graph.Op("Gather", new[] { table, ids }, ("axis", 0L)) }, ("to", (long)global::Onnx.TensorProto.Types.DataType.Float));
            x = Graph.Op("Mul", new[] { rows, Graph.Op("Unsqueeze", new[] { Graph.Op("Gather", new[] { scales, ids }, ("axis", 0L)), Graph.Longs(-1) }) });
        }
        else
        {
            x = Graph.Op("Gather", new[] { Graph.Weight(prefix + ".tokens.weight", embedding.Weight), ids }, ("axis", 0L));
        }
        if (config.ScaleEmbeddings)
        {
            x = Graph.Op("Mul", new[] { x, Graph.Scalar((float)Math.Sqrt(config.ModelDimension)) });
        }
        using Tensor positions = embedding.Positions.Forward(0, embedding.Positions.MaxLength, CPU);
        string positionTable = Graph.Weight(prefix + ".position_table", positions);
        string length = Dimension(ids, 1);
        string range = Graph.Op("Range", new[] { offset, Graph.Op("Add", new[] { offset, length }), Graph.LongScalar(1) });
        if (attentionMask is not null)
        {
            range = MaskedPositions(range, attentionMask, length);
        }
        return Graph.Op("Add", new[] { x, Graph.Op("Gather", new[] { positionTable, range }, ("axis", 0L)) });
    }

    /// <summary>
    /// The positions (B or 1, T) of the slots <paramref name="slots"/> (T) under <paramref name="attentionMask"/> (B or 1,
    /// slots or 1): slot s less the zeros of its row up to s, that is the tokens before it (Hugging Face's cumsum of the
    /// mask less one), so that left padding, right padding and the holes a right-padded batch leaves behind as it grows
    /// (ONNX Runtime GenAI pads prompts on the right) all count a row's tokens only. A padding slot gets -1 or more
    /// (masked; Gather reads -1 as the last row, so no clamp, one op less per step). A mask of one column (the optional
    /// input's default 1) subtracts nothing.
    /// </summary>
    private string MaskedPositions(string slots, string attentionMask, string newLength)
    {
        string zeros = Graph.Op("Sub", new[] { Graph.LongScalar(1), attentionMask }); // 1 at padding (a mask of 0 and 1)
        string zerosUpTo = Graph.Op("CumSum", new[] { zeros, Graph.LongScalar(1) });
        // The new slots are the mask's last T columns (all of a one-column default, which broadcasts).
        return Graph.Op("Sub", new[] { slots, LastPositions(zerosUpTo, newLength) }); // (T) - (B or 1, T or 1)
    }

    /// <summary>
    /// The last <paramref name="keep"/> positions (axis 1) of (batch, sequence, ...) values, every position when keep is 0
    /// or at least the sequence (Hugging Face's logits_to_keep): a generator's prompt step needs only the last position's
    /// scores, and the mask's positions only the new slots'.
    /// </summary>
    private string LastPositions(string hidden, string keep)
    {
        string start = Graph.Op("Neg", new[] { Graph.Op("Unsqueeze", new[] { keep, Graph.Longs(0) }) });
        return Graph.Op("Slice", new[] { hidden, start, Graph.Longs(long.MaxValue), Graph.Longs(1) });
    }

    /// <summary>
    /// The tied pre-softmax projection: hidden (B, T, d) x token table^T -> logits (B, T, V). It reuses the table of
    /// <see cref="TokenEmbedding"/> (called first; for int8 its int8 rows and scales) through a Transpose node, which ONNX
    /// Runtime folds once at load: the file holds the matrix once. With <paramref name="keep"/> (an int64 scalar,
    /// <see cref="LastPositions"/>) only the last positions' scores, the very values of those rows of every position's:
    /// DynamicInt8 quantizes the whole input first and then multiplies the kept rows; DynamicInt8PerRow keeps the rows
    /// first, since each row's integers depend on that row alone.
    /// </summary>
    public string TiedLogits(string hidden, string prefix, string? keep = null)
    {
        if (!_quantize)
        {
            string rows = keep is null ? hidden : LastPositions(hidden, keep);
            return Graph.Op("MatMul", new[] { rows, Graph.Op("Transpose", new[] { prefix + ".tokens.weight" }, ("perm", new long[] { 1, 0 })) });
        }
        (string table, string scales) = QuantizedTable(prefix);
        return IntegerProduct(hidden, Graph.Op("Transpose", new[] { table }, ("perm", new long[] { 1, 0 })), scales, keep);
    }
}

// The hyper-parameters of "Attention Is All You Need" (Vaswani et al. 2017), Table 3:
// N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls and the kind of positional encoding, plus the
// few switches that turn the same blocks into GPT-2 (pre-LN, GELU, learned positions) or ViT.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Transformers.ML;

/// <summary>How token positions enter the model.</summary>
public enum PositionalEncodingKind
{
    /// <summary>Fixed sinusoids, PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (the paper's base model).</summary>
    Sinusoidal,

    /// <summary>A learned embedding per position (Table 3, row E; GPT-2; ViT).</summary>
    Learned,
}

/// <summary>Where the layer normalisation sits around each residual sub-layer.</summary>
public enum NormPosition
{
    /// <summary>LayerNorm(x + Sublayer(x)), as in the paper.</summary>
    Post,

    /// <summary>x + Sublayer(LayerNorm(x)) with a final LayerNorm after the stack, as in GPT-2 and ViT.</summary>
    Pre,
}

/// <summary>The non-linearity of the position-wise feed-forward network.</summary>
public enum FeedForwardActivation
{
    /// <summary>max(0, x), as in the paper.</summary>
    Relu,

    /// <summary>Gaussian error linear unit, exact (erf) form, as in BERT and ViT.</summary>
    Gelu,

    /// <summary>GELU with the tanh approximation, as in GPT-2.</summary>
    GeluTanh,
}

/// <summary>
/// The architecture of a Transformer: the knobs of Vaswani et al. (2017), Table 3, and the switches
/// that the decoder-only (GPT-2) and encoder-only (ViT) variants need. One instance describes the
/// encoder and the decoder stacks alike.
/// </summary>
public sealed class TransformerConfig
{
    /// <summary>N: layers in each stack (encoder and decoder). Range 1..1000; default 6.</summary>
    public int NumLayers { get; set; } = 6;

    /// <summary>d_model: width of every residual stream, embedding and sub-layer output. Range 1..65536; default 512.</summary>
    public int ModelDimension { get; set; } = 512;

    /// <summary>d_ff: inner width of the position-wise feed-forward network. Range 1..1048576; default 2048.</summary>
    public int FeedForwardDimension { get; set; } = 2048;

    /// <summary>h: attention heads. Must divide d_model unless d_k and d_v are set. Default 8.</summary>
    public int NumHeads { get; set; } = 8;

    /// <summary>d_k: width of each head's queries and keys; null means d_model / h (default).</summary>
    public int? KeyDimension { get; set; }

    /// <summary>d_v: width of each head's values; null means d_model / h (default).</summary>
    public int? ValueDimension { get; set; }

    /// <summary>P_drop: dropout on each sub-layer output and on the embedding sums. Range [0, 1); default 0.1.</summary>
    public double Dropout { get; set; } = 0.1;

    /// <summary>Dropout on the attention probabilities (not in the paper; GPT-2 uses P_drop). Range [0, 1); default 0.</summary>
    public double AttentionDropout { get; set; }

    /// <summary>eps_ls: label smoothing of the training loss. Range [0, 1); default 0.1.</summary>
    public double LabelSmoothing { get; set; } = 0.1;

    /// <summary>Positional encoding kind (Table 3, row E). Default <see cref="PositionalEncodingKind.Sinusoidal"/>.</summary>
    public PositionalEncodingKind PositionalEncoding { get; set; } = PositionalEncodingKind.Sinusoidal;

    /// <summary>Longest sequence, in tokens (or patches), the positional encoding covers. Range 1..1048576; default 512.</summary>
    public int MaxSequenceLength { get; set; } = 512;

    /// <summary>Post-LN (the paper, default) or pre-LN (GPT-2, ViT).</summary>
    public NormPosition NormPosition { get; set; } = NormPosition.Post;

    /// <summary>Feed-forward non-linearity. Default <see cref="FeedForwardActivation.Relu"/> (the paper).</summary>
    public FeedForwardActivation Activation { get; set; } = FeedForwardActivation.Relu;

    /// <summary>Epsilon of every LayerNorm. Range (0, 1); default 1e-5 (PyTorch and GPT-2).</summary>
    public double LayerNormEpsilon { get; set; } = 1e-5;

    /// <summary>Multiply token embeddings by sqrt(d_model) (paper, section 3.4). Default true.</summary>
    public bool ScaleEmbeddings { get; set; } = true;

    /// <summary>Share the token embedding matrix with the pre-softmax projection (paper, section 3.4). Default true.</summary>
    public bool TieEmbeddings { get; set; } = true;

    /// <summary>Bias terms in the attention projections. Default true.</summary>
    public bool AttentionBias { get; set; } = true;

    /// <summary>The per-head query/key width actually used: d_k, or d_model / h when unset.</summary>
    [JsonIgnore]
    public int HeadKeyDimension => KeyDimension ?? ModelDimension / Math.Max(NumHeads, 1);

    /// <summary>The per-head value width actually used: d_v, or d_model / h when unset.</summary>
    [JsonIgnore]
    public int HeadValueDimension => ValueDimension ?? ModelDimension / Math.Max(NumHeads, 1);

    /// <summary>The base model of Table 3: N=6, d_model=512, d_ff=2048, h=8, d_k=d_v=64, P_drop=0.1, eps_ls=0.1 (65M parameters).</summary>
    public static TransformerConfig Base() => new();

    /// <summary>The big model of Table 3: N=6, d_model=1024, d_ff=4096, h=16, d_k=d_v=64, P_drop=0.3, eps_ls=0.1 (213M parameters).</summary>
    public static TransformerConfig Big() => new()
    {
        ModelDimension = 1024,
        FeedForwardDimension = 4096,
        NumHeads = 16,
        Dropout = 0.3,
    };

    /// <summary>A copy of this configuration.</summary>
    public TransformerConfig Clone() => (TransformerConfig)MemberwiseClone();

    /// <summary>
    /// Checks every field; throws <see cref="ArgumentException"/> naming the first option out of range,
    /// with the value found and the range expected.
    /// </summary>
    public void Validate()
    {
        CheckRange(nameof(NumLayers), NumLayers, 1, 1000);
        CheckRange(nameof(ModelDimension), ModelDimension, 1, 65536);
        CheckRange(nameof(FeedForwardDimension), FeedForwardDimension, 1, 1 << 20);
        CheckRange(nameof(NumHeads), NumHeads, 1, 1024);
        CheckRange(nameof(MaxSequenceLength), MaxSequenceLength, 1, 1 << 20);
        if (KeyDimension is int dk)
        {
            CheckRange(nameof(KeyDimension), dk, 1, 65536);
        }
        if (ValueDimension is int dv)
        {
            CheckRange(nameof(ValueDimension), dv, 1, 65536);
        }
        if ((KeyDimension is null || ValueDimension is null) && ModelDimension % NumHeads != 0)
        {
            throw new ArgumentException(
                $"{nameof(ModelDimension)} ({ModelDimension}) must be divisible by {nameof(NumHeads)} ({NumHeads}) " +
                $"unless {nameof(KeyDimension)} and {nameof(ValueDimension)} are both set.");
        }
        CheckProbability(nameof(Dropout), Dropout);
        CheckProbability(nameof(AttentionDropout), AttentionDropout);
        CheckProbability(nameof(LabelSmoothing), LabelSmoothing);
        if (!(LayerNormEpsilon > 0 && LayerNormEpsilon < 1))
        {
            throw new ArgumentException($"{nameof(LayerNormEpsilon)} must be in (0, 1); found {LayerNormEpsilon}.");
        }
        if (!Enum.IsDefined(PositionalEncoding) || !Enum.IsDefined(NormPosition) || !Enum.IsDefined(Activation))
        {
            throw new ArgumentException(
                $"Unknown enum value: {nameof(PositionalEncoding)}={PositionalEncoding}, {nameof(NormPosition)}={NormPosition}, {nameof(Activation)}={Activation}.");
        }
    }

    /// <summary>
    /// Parameters of the encoder-decoder model of the paper for a vocabulary of <paramref name="vocabularySize"/>
    /// tokens shared by source and target: embeddings, N encoder layers, N decoder layers, and the pre-softmax
    /// projection (free only when <see cref="TieEmbeddings"/> is false). Counted from the formula; the tests check
    /// it against the modules.
    /// </summary>
    public long CountEncoderDecoderParameters(int vocabularySize)
    {
        long embeddings = EmbeddingParameters(vocabularySize);
        long output = TieEmbeddings ? 0 : (long)vocabularySize * ModelDimension;
        return embeddings + NumLayers * (EncoderLayerParameters() + DecoderLayerParameters(crossAttention: true))
            + 2 * FinalNormParameters() + output;
    }

    /// <summary>Parameters of one encoder layer: self-attention, feed-forward, two LayerNorms.</summary>
    public long EncoderLayerParameters() => AttentionParameters() + FeedForwardParameters() + 2 * LayerNormParameters();

    /// <summary>Parameters of one decoder layer: self-attention, optional cross-attention, feed-forward, LayerNorms.</summary>
    public long DecoderLayerParameters(bool crossAttention) => crossAttention
        ? 2 * AttentionParameters() + FeedForwardParameters() + 3 * LayerNormParameters()
        : EncoderLayerParameters();

    /// <summary>Parameters of one multi-head attention: W^Q, W^K (d_model x h*d_k), W^V (d_model x h*d_v), W^O (h*d_v x d_model).</summary>
    public long AttentionParameters()
    {
        long hk = (long)NumHeads * HeadKeyDimension;
        long hv = (long)NumHeads * HeadValueDimension;
        long bias = AttentionBias ? 2 * hk + hv + ModelDimension : 0;
        return 2 * ModelDimension * hk + ModelDimension * hv + hv * ModelDimension + bias;
    }

    /// <summary>Parameters of the position-wise feed-forward network: two linear maps with biases.</summary>
    public long FeedForwardParameters() => 2L * ModelDimension * FeedForwardDimension + FeedForwardDimension + ModelDimension;

    /// <summary>Parameters of the token (and, when learned, position) embeddings.</summary>
    public long EmbeddingParameters(int vocabularySize) => (long)vocabularySize * ModelDimension
        + (PositionalEncoding == PositionalEncodingKind.Learned ? (long)MaxSequenceLength * ModelDimension : 0);

    /// <summary>Parameters of the LayerNorm that closes a pre-LN stack (none for post-LN).</summary>
    public long FinalNormParameters() => NormPosition == NormPosition.Pre ? LayerNormParameters() : 0;

    private long LayerNormParameters() => 2L * ModelDimension;

    /// <summary>The configuration as JSON (enum names as strings), as stored in model files.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a configuration written by <see cref="ToJson"/> and validates it.</summary>
    public static TransformerConfig FromJson(string json)
    {
        TransformerConfig config;
        try
        {
            config = JsonSerializer.Deserialize<TransformerConfig>(json, JsonOptions)
                ?? throw new FormatException("The Transformer configuration is empty (JSON 'null').");
        }
        catch (JsonException e)
        {
            throw new FormatException($"The Transformer configuration is not valid JSON: {e.Message}", e);
        }
        config.Validate();
        return config;
    }

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    private static void CheckRange(string name, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [{min}, {max}]; found {value}.");
        }
    }

    private static void CheckProbability(string name, double value)
    {
        if (!(value >= 0 && value < 1))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [0, 1); found {value}.");
        }
    }
}

// Positional encodings, Vaswani et al. (2017), section 3.5. Attention is order-blind, so each
// position adds a vector to its token's embedding: fixed sinusoids (the paper) or learned
// vectors (Table 3, row E, "nearly identical results"; GPT-2 and ViT use them).
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

/// <summary>Maps positions offset .. offset + length - 1 to (length, d_model) vectors.</summary>
internal abstract class PositionalEncoding : nn.Module
{
    protected PositionalEncoding(string name, int maxLength)
        : base(name)
    {
        MaxLength = maxLength;
    }

    /// <summary>Positions covered: 0 .. MaxLength - 1.</summary>
    public int MaxLength { get; }

    /// <summary>The encodings of positions offset .. offset + length - 1 on <paramref name="device"/>, shape (length, d_model).</summary>
    public Tensor Forward(long offset, long length, Device device)
    {
        CheckRange(offset, length);
        return Encode(offset, length, device);
    }

    /// <summary>Throws, naming the setting to change, unless positions offset .. offset + length - 1 lie within MaxLength.</summary>
    public void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length),
                $"Positions {offset}..{offset + length - 1} are beyond the positional encoding's {MaxLength} positions " +
                $"({nameof(TransformerConfig.MaxSequenceLength)}); crop the input or raise {nameof(TransformerConfig.MaxSequenceLength)}.");
        }
    }

    protected abstract Tensor Encode(long offset, long length, Device device);

    /// <summary>
    /// The encodings of per-row positions (B, T) int64 (a left-padded batch, whose rows start at different slots), shape
    /// (B, T, d_model). Every position must lie in 0 .. MaxLength - 1.
    /// </summary>
    public Tensor Forward(Tensor positions)
    {
        if (positions.dim() != 2)
        {
            throw new ArgumentException($"{GetName()}: expected positions of shape (batch, length); found ({string.Join(", ", positions.shape)}).");
        }
        // Indexing rather than index_select: the same lookup, with a meta kernel.
        return Encode(0, MaxLength, positions.device)[positions];
    }

    public static PositionalEncoding Create(TransformerConfig config) => config.PositionalEncoding switch
    {
        PositionalEncodingKind.Sinusoidal => new SinusoidalPositionalEncoding(config.MaxSequenceLength, config.ModelDimension),
        PositionalEncodingKind.Learned => new LearnedPositionalEmbedding(config.MaxSequenceLength, config.ModelDimension),
        _ => throw new ArgumentOutOfRangeException(nameof(config), config.PositionalEncoding, "Unknown positional encoding kind."),
    };
}

/// <summary>PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).</summary>
internal sealed class SinusoidalPositionalEncoding : PositionalEncoding
{
    // The table is a function of its shape, so it is neither a parameter nor a saved buffer: it is computed
    // once and copied once to each device that asks for it (kept in a dictionary, not a Tensor field, so
    // that RegisterComponents does not turn it into a persistent buffer).
    private readonly Dictionary<string, Tensor> _tables = new(StringComparer.Ordinal);
    private readonly int _modelDim;

    public SinusoidalPositionalEncoding(int maxLength, int modelDim)
        : base("sinusoidal_position", maxLength)
    {
        _modelDim = modelDim;
        RegisterComponents();
    }

    protected override Tensor Encode(long offset, long length, Device device)
    {
        string key = device.ToString();
        if (!_tables.TryGetValue(key, out Tensor? table))
        {
            using Tensor cpu = Table(MaxLength, _modelDim);
            table = cpu.to(device).DetachFromDisposeScope();
            _tables[key] = table;
        }
        return table.narrow(0, offset, length);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (Tensor table in _tables.Values)
            {
                table.Dispose();
            }
            _tables.Clear();
        }
        base.Dispose(disposing);
    }

    /// <summary>The (maxLength, d_model) table, computed in double precision and stored as float32.</summary>
    internal static Tensor Table(int maxLength, int modelDim)
    {
        using var noScope = NewDisposeScope();
        var values = new float[maxLength * modelDim];
        for (int pos = 0; pos < maxLength; pos++)
        {
            for (int i = 0; 2 * i < modelDim; i++)
            {
                // The wavelengths form a geometric progression from 2*pi to 10000 * 2*pi.
                double angle = pos / Math.Pow(10000.0, 2.0 * i / modelDim);
                values[pos * modelDim + 2 * i] = (float)Math.Sin(angle);
                if (2 * i + 1 < modelDim)
                {
                    values[pos * modelDim + 2 * i + 1] = (float)Math.Cos(angle);
                }
            }
        }
        return tensor(values, new long[] { maxLength, modelDim }).MoveToOuterDisposeScope();
    }
}

/// <summary>A learned vector per position.</summary>
internal sealed class LearnedPositionalEmbedding : PositionalEncoding
{
    [ComponentName(Name = "embedding")]
    private readonly Embedding _embedding;

    public LearnedPositionalEmbedding(int maxLength, int modelDim)
        : base("learned_position", maxLength)
    {
        _embedding = nn.Embedding(maxLength, modelDim);
        RegisterComponents();
        using (no_grad())
        {
            nn.init.normal_(_embedding.weight!, 0.0, 0.02);
        }
    }

    protected override Tensor Encode(long offset, long length, Device device) => _embedding.weight!.narrow(0, offset, length);
}

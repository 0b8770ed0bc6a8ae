// Embeddings and softmax, Vaswani et al. (2017), section 3.4: learned token embeddings multiplied
// by sqrt(d_model), plus the positional encoding, then dropout (section 5.4: "we apply dropout to
// the sums of the embeddings and the positional encodings"). The same matrix can serve as the
// pre-softmax linear transformation (weight tying, Press and Wolf 2017).
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

internal sealed class TokenEmbedding : nn.Module
{
    [ComponentName(Name = "tokens")]
    private readonly Embedding _tokens;

    [ComponentName(Name = "positions")]
    private readonly PositionalEncoding _positions;

    [ComponentName(Name = "dropout")]
    private readonly StepDropout _dropout;

    private readonly double _scale;

    public TokenEmbedding(string name, int vocabularySize, TransformerConfig config)
        : base(name)
    {
        VocabularySize = vocabularySize;
        _tokens = nn.Embedding(vocabularySize, config.ModelDimension);
        _positions = PositionalEncoding.Create(config);
        _dropout = new StepDropout(config.Dropout);
        _scale = config.ScaleEmbeddings ? Math.Sqrt(config.ModelDimension) : 1.0;
        RegisterComponents();
        using (no_grad())
        {
            // With the sqrt(d_model) scale, N(0, d^-1/2) gives unit-variance inputs (as fairseq); GPT-2 uses N(0, 0.02).
            nn.init.normal_(_tokens.weight!, 0.0, config.ScaleEmbeddings ? 1.0 / Math.Sqrt(config.ModelDimension) : 0.02);
        }
    }

    public int VocabularySize { get; }

    /// <summary>The (vocabulary, d_model) token matrix, shared with the output projection when tied.</summary>
    public Parameter Weight => _tokens.weight!;

    public PositionalEncoding Positions => _positions;

    /// <summary>
    /// Token ids (B, T) at positions offset .. offset + T - 1 -> (B, T, d_model). With <paramref name="leftPadding"/> (B)
    /// int64, row b's first leftPadding[b] slots (counted from slot 0, before the offset) are padding: its slot s sits at
    /// position s - leftPadding[b], and the padding slots at position 0 (masked from attention by the caller).
    /// </summary>
    public Tensor Forward(Tensor tokenIds, long positionOffset = 0, Tensor? leftPadding = null)
    {
        if (tokenIds.dim() != 2)
        {
            throw new ArgumentException($"{GetName()}: expected token ids of shape (batch, length); found ({string.Join(", ", tokenIds.shape)}).");
        }
        using var scope = NewDisposeScope();
        // libtorch has no meta kernel for index_select (behind nn.Embedding); indexing is the same lookup and has one.
        Tensor x = tokenIds.device_type == DeviceType.META ? _tokens.weight![tokenIds] : _tokens.forward(tokenIds);
        if (_scale != 1.0)
        {
            x = x.Times(_scale);
        }
        long length = tokenIds.shape[1];
        Tensor positions;
        if (leftPadding is null)
        {
            positions = _positions.Forward(positionOffset, length, x.device); // (T, d)
        }
        else
        {
            // A padded row's positions lie below its slots, so the slots' range check covers them.
            _positions.CheckRange(positionOffset, length);
            Tensor slots = arange(positionOffset, positionOffset + length, ScalarType.Int64, x.device).unsqueeze(0);
            positions = _positions.Forward((slots - leftPadding.to(ScalarType.Int64).unsqueeze(1)).clamp_min(0)); // (B, T, d)
        }
        x = x.add(positions, Scalars.One);
        return _dropout.forward(x).MoveToOuterDisposeScope();
    }

    /// <summary>The pre-softmax projection with the tied matrix: (B, T, d_model) -> (B, T, vocabulary) logits.</summary>
    public Tensor Logits(Tensor hidden) => F.linear(hidden, _tokens.weight!);
}

// The Transformer of Vaswani et al. (2017), Figure 1: source and target embeddings (one shared
// matrix over a joint source/target vocabulary, section 3.4), the encoder and decoder stacks, and
// the pre-softmax projection tied to the embeddings.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.Core.Modules;

internal sealed class EncoderDecoderTransformer : nn.Module
{
    [ComponentName(Name = "embedding")]
    private readonly TokenEmbedding _embedding;

    [ComponentName(Name = "encoder")]
    private readonly TransformerEncoder _encoder;

    [ComponentName(Name = "decoder")]
    private readonly TransformerDecoder _decoder;

    [ComponentName(Name = "output_proj")]
    private readonly Linear? _outputProjection;

    public EncoderDecoderTransformer(string name, TransformerConfig config, int vocabularySize)
        : base(name)
    {
        config.Validate();
        if (vocabularySize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "The vocabulary must hold at least one token.");
        }
        Config = config.Clone();
        _embedding = new TokenEmbedding("embedding", vocabularySize, config);
        _encoder = new TransformerEncoder("encoder", config);
        _decoder = new TransformerDecoder("decoder", config, crossAttention: true);
        if (!config.TieEmbeddings)
        {
            _outputProjection = nn.Linear(config.ModelDimension, vocabularySize, hasBias: false);
        }
        RegisterComponents();
    }

    public TransformerConfig Config { get; }

    public TransformerDecoder Decoder => _decoder;

    /// <summary>The shared token and position embeddings (for the ONNX export).</summary>
    public TokenEmbedding Embedding => _embedding;

    /// <summary>Source ids (B, S) -> encoder output (B, S, d_model).</summary>
    public Tensor Encode(Tensor sourceIds, Tensor? sourcePaddingMask) =>
        _encoder.Forward(_embedding.Forward(sourceIds), sourcePaddingMask).Hidden;

    /// <summary>
    /// Target ids (B, T) and the encoder output -> logits (B, T, vocabulary). With a cache, targetIds are only the
    /// new positions (usually one per step).
    /// </summary>
    public Tensor Decode(Tensor targetIds, Tensor? memory, Tensor? sourcePaddingMask, Tensor? targetPaddingMask = null, KeyValueCache? cache = null)
    {
        using var scope = NewDisposeScope();
        long offset = cache?.Length ?? 0;
        Tensor hidden = _decoder.Forward(_embedding.Forward(targetIds, offset), targetPaddingMask, memory, sourcePaddingMask, cache).Hidden;
        Tensor logits = _outputProjection is null ? _embedding.Logits(hidden) : _outputProjection.forward(hidden);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The attention of a (source, target) pair, (1, S) and (1, T) ids: the encoder's self-attention (each (1, h, S, S)),
    /// the decoder's causal self-attention ((1, h, T, T)) and its cross-attention over the source ((1, h, T, S)), per layer.
    /// </summary>
    public (IReadOnlyList<Tensor> Encoder, IReadOnlyList<Tensor> DecoderSelf, IReadOnlyList<Tensor> Cross) Attention(Tensor sourceIds, Tensor targetIds)
    {
        using var scope = NewDisposeScope();
        StackOutput encoded = _encoder.Forward(_embedding.Forward(sourceIds), null, needWeights: true);
        StackOutput decoded = _decoder.Forward(_embedding.Forward(targetIds, 0), null, encoded.Hidden, null, null, needWeights: true);
        static IReadOnlyList<Tensor> Keep(IReadOnlyList<Tensor> weights) => weights.Select(w => w.MoveToOuterDisposeScope()).ToList();
        return (Keep(encoded.SelfAttentionWeights!), Keep(decoded.SelfAttentionWeights!), Keep(decoded.CrossAttentionWeights!));
    }

    /// <summary>Teacher-forced forward pass: (B, S) source and (B, T) target ids -> (B, T, vocabulary) logits.</summary>
    public Tensor Forward(Tensor sourceIds, Tensor targetIds, Tensor? sourcePaddingMask = null, Tensor? targetPaddingMask = null)
    {
        using var scope = NewDisposeScope();
        Tensor memory = Encode(sourceIds, sourcePaddingMask);
        return Decode(targetIds, memory, sourcePaddingMask, targetPaddingMask).MoveToOuterDisposeScope();
    }
}

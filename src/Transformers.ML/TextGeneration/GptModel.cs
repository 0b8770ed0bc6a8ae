// A GPT-2 style language model (Radford et al. 2019; nanoGPT's model.py): token and learned position
// embeddings, a stack of pre-LN decoder blocks with causal self-attention and GELU, a final LayerNorm,
// and the output projection tied to the token embedding. Built from the Core blocks: TokenEmbedding,
// TransformerDecoder (without cross-attention), the key/value cache.
using TorchSharp;
using TorchSharp.Utils;
using Transformers.ML.Core.Generation;
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.TextGeneration;

internal sealed class GptModel : nn.Module, ICausalLanguageModel
{
    [ComponentName(Name = "embedding")]
    private readonly TokenEmbedding _embedding;

    [ComponentName(Name = "decoder")]
    private readonly TransformerDecoder _decoder;

    public GptModel(TransformerConfig config, int vocabularySize)
        : base("gpt")
    {
        config.Validate();
        Config = config.Clone();
        VocabularySize = vocabularySize;
        _embedding = new TokenEmbedding("embedding", vocabularySize, config);
        _decoder = new TransformerDecoder("decoder", config, crossAttention: false);
        RegisterComponents();
        InitializeWeights();
    }

    public TransformerConfig Config { get; }

    public int VocabularySize { get; }

    public int ContextLength => Config.MaxSequenceLength;

    public KeyValueCache CreateCache() => _decoder.CreateCache();

    /// <summary>The token and position embeddings (for the ONNX export).</summary>
    internal TokenEmbedding Embedding => _embedding;

    /// <summary>
    /// Token ids (B, T) -> logits (B, T, vocabulary). With a cache, the ids are the positions after the cached
    /// ones (a prompt, then one token per step) and the cache grows by T.
    /// </summary>
    public Tensor Forward(Tensor ids, KeyValueCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return _embedding.Logits(Hidden(ids, cache)).MoveToOuterDisposeScope(); // (B, T, V)
    }

    /// <summary>
    /// Token ids (B, T) -> the logits of the last position (B, vocabulary), the cache growing as in <see cref="Forward"/>.
    /// A prompt's other positions skip the output projection: with GPT-2's 50,257 tokens that is a third of the prompt's
    /// work, and (B, T, V) logits that are 200 MB a row at T = 1,024. <paramref name="leftPadding"/>: see
    /// <see cref="ICausalLanguageModel.NextTokenLogits"/>.
    /// </summary>
    public Tensor NextTokenLogits(Tensor ids, KeyValueCache? cache = null, Tensor? leftPadding = null)
    {
        using var scope = NewDisposeScope();
        return _embedding.Logits(Hidden(ids, cache, leftPadding).select(1, -1)).MoveToOuterDisposeScope(); // (B, V)
    }

    private Tensor Hidden(Tensor ids, KeyValueCache? cache, Tensor? leftPadding = null)
    {
        long offset = cache?.Length ?? 0;
        Tensor? paddingMask = null;
        if (leftPadding is not null)
        {
            // (B, past + T): true at the padding slots, which no query attends to.
            paddingMask = arange(offset + ids.shape[1], ScalarType.Int64, ids.device).unsqueeze(0).lt(leftPadding.to(ScalarType.Int64).unsqueeze(1));
        }
        return _decoder.Forward(_embedding.Forward(ids, offset, leftPadding), selfPaddingMask: paddingMask, cache: cache).Hidden; // (B, T, d)
    }

    /// <summary>Token ids (1, T) -> the causal self-attention probabilities of every layer, each (1, h, T, T) (explicit attention).</summary>
    public IReadOnlyList<Tensor> Attention(Tensor ids)
    {
        using var scope = NewDisposeScope();
        StackOutput output = _decoder.Forward(_embedding.Forward(ids, 0), needWeights: true);
        return output.SelfAttentionWeights!.Select(w => w.MoveToOuterDisposeScope()).ToList();
    }

    /// <summary>
    /// GPT-2's initialisation: N(0, 0.02) for weights and embeddings, zero biases, and the projections that
    /// write into the residual stream (attention output, second FFN layer) scaled by 1/sqrt(2 N), because
    /// each of the 2 N residual branches adds variance.
    /// </summary>
    private void InitializeWeights()
    {
        double residualStd = 0.02 / Math.Sqrt(2.0 * Config.NumLayers);
        using var noGrad = no_grad();
        foreach ((string name, TorchSharp.Modules.Parameter p) in named_parameters())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal))
            {
                p.zero_();
            }
            else if (name.Contains("norm", StringComparison.Ordinal))
            {
                p.fill_(1.0);
            }
            else
            {
                bool residual = name.EndsWith("out_proj.weight", StringComparison.Ordinal) || name.EndsWith("fc2.weight", StringComparison.Ordinal);
                nn.init.normal_(p, 0.0, residual ? residualStd : 0.02);
            }
        }
    }
}

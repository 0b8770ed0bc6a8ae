// The encoder and decoder stacks, Vaswani et al. (2017), section 3.1: "a stack of N = 6 identical
// layers". A pre-LN stack ends with one more LayerNorm (GPT-2's ln_f, ViT's final norm), because its
// residual stream is never normalised inside the layers.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Modules;

/// <summary>Hidden states of a stack and, when asked for, the attention probabilities of each layer.</summary>
internal sealed record StackOutput(Tensor Hidden, IReadOnlyList<Tensor>? SelfAttentionWeights, IReadOnlyList<Tensor>? CrossAttentionWeights);

internal sealed class TransformerEncoder : nn.Module
{
    [ComponentName(Name = "layers")]
    private readonly ModuleList<EncoderLayer> _layers;

    [ComponentName(Name = "final_norm")]
    private readonly TransformerLayerNorm? _finalNorm;

    public TransformerEncoder(string name, TransformerConfig config)
        : base(name)
    {
        config.Validate();
        _layers = new ModuleList<EncoderLayer>(Enumerable.Range(0, config.NumLayers).Select(i => new EncoderLayer($"layer{i}", config)).ToArray());
        if (config.NormPosition == NormPosition.Pre)
        {
            _finalNorm = new TransformerLayerNorm(config.ModelDimension, config.LayerNormEpsilon);
        }
        RegisterComponents();
    }

    public int NumLayers => _layers.Count;

    /// <summary>(B, S, d_model) embeddings -> (B, S, d_model); <paramref name="paddingMask"/> (B, S) is true at padding.</summary>
    public StackOutput Forward(Tensor x, Tensor? paddingMask = null, bool needWeights = false)
    {
        using var scope = NewDisposeScope();
        var weights = needWeights ? new List<Tensor>() : null;
        foreach (EncoderLayer layer in _layers)
        {
            AttentionOutput output = layer.Forward(x, paddingMask, needWeights);
            x = output.Output;
            weights?.Add(output.Weights!);
        }
        if (_finalNorm is not null)
        {
            x = _finalNorm.forward(x);
        }
        x.MoveToOuterDisposeScope();
        weights?.ForEach(w => w.MoveToOuterDisposeScope());
        return new StackOutput(x, weights, null);
    }
}

internal sealed class TransformerDecoder : nn.Module
{
    [ComponentName(Name = "layers")]
    private readonly ModuleList<DecoderLayer> _layers;

    [ComponentName(Name = "final_norm")]
    private readonly TransformerLayerNorm? _finalNorm;

    /// <param name="crossAttention">True for the paper's decoder (attends to an encoder); false for a GPT-style stack.</param>
    public TransformerDecoder(string name, TransformerConfig config, bool crossAttention)
        : base(name)
    {
        config.Validate();
        _layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, config.NumLayers).Select(i => new DecoderLayer($"layer{i}", config, crossAttention)).ToArray());
        if (config.NormPosition == NormPosition.Pre)
        {
            _finalNorm = new TransformerLayerNorm(config.ModelDimension, config.LayerNormEpsilon);
        }
        RegisterComponents();
    }

    public int NumLayers => _layers.Count;

    /// <summary>A fresh key/value cache sized for this stack.</summary>
    public KeyValueCache CreateCache() => new(NumLayers);

    /// <summary>
    /// (B, T, d_model) embeddings -> (B, T, d_model). With a <paramref name="cache"/>, x holds only the new
    /// positions and attends to the cached ones too; <paramref name="selfPaddingMask"/> then covers past and new
    /// positions (B, past + T).
    /// </summary>
    public StackOutput Forward(Tensor x, Tensor? selfPaddingMask = null, Tensor? memory = null, Tensor? memoryPaddingMask = null,
        KeyValueCache? cache = null, bool needWeights = false)
    {
        if (cache is not null && cache.SelfAttention.Length != _layers.Count)
        {
            throw new ArgumentException($"{GetName()}: the cache has {cache.SelfAttention.Length} layers; the decoder has {_layers.Count}.");
        }
        using var scope = NewDisposeScope();
        var selfWeights = needWeights ? new List<Tensor>() : null;
        var crossWeights = needWeights && _layers.Count > 0 && _layers[0].HasCrossAttention ? new List<Tensor>() : null;
        for (int i = 0; i < _layers.Count; i++)
        {
            DecoderLayerOutput output = _layers[i].Forward(x, selfPaddingMask, memory, memoryPaddingMask,
                cache?.SelfAttention[i], cache?.CrossAttention[i], needWeights);
            x = output.Output;
            selfWeights?.Add(output.SelfAttentionWeights!);
            crossWeights?.Add(output.CrossAttentionWeights!);
        }
        if (_finalNorm is not null)
        {
            x = _finalNorm.forward(x);
        }
        x.MoveToOuterDisposeScope();
        selfWeights?.ForEach(w => w.MoveToOuterDisposeScope());
        crossWeights?.ForEach(w => w.MoveToOuterDisposeScope());
        return new StackOutput(x, selfWeights, crossWeights);
    }
}

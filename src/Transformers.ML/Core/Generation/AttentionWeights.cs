namespace Transformers.ML;

/// <summary>
/// The attention probabilities of one attention block for one text, per layer and head: row i is how position i (the
/// query) spreads its attention over the positions (the keys); each row sums to 1. A causal block has zeros above the
/// diagonal. <see cref="Charts.SaveHeatmap"/> draws a head, with the tokens as labels.
/// </summary>
public sealed class AttentionWeights
{
    private readonly float[] _weights;

    internal AttentionWeights(string name, IReadOnlyList<string> queryTokens, IReadOnlyList<string> keyTokens, int layers, int heads, float[] weights)
    {
        if (weights.Length != layers * heads * queryTokens.Count * keyTokens.Count)
        {
            throw new ArgumentException($"Expected {layers} x {heads} x {queryTokens.Count} x {keyTokens.Count} weights; found {weights.Length}.", nameof(weights));
        }
        Name = name;
        QueryTokens = queryTokens;
        KeyTokens = keyTokens;
        Layers = layers;
        Heads = heads;
        _weights = weights;
    }

    /// <summary>Which attention this is, e.g. "decoder cross-attention".</summary>
    public string Name { get; }

    /// <summary>The tokens that attend (rows), as text.</summary>
    public IReadOnlyList<string> QueryTokens { get; }

    /// <summary>The tokens attended to (columns), as text.</summary>
    public IReadOnlyList<string> KeyTokens { get; }

    /// <summary>Layers.</summary>
    public int Layers { get; }

    /// <summary>Heads per layer.</summary>
    public int Heads { get; }

    /// <summary>The weights of one layer and head, row-major (queries x keys).</summary>
    public float[] Head(int layer, int head)
    {
        if (layer < 0 || layer >= Layers || head < 0 || head >= Heads)
        {
            throw new ArgumentOutOfRangeException(nameof(layer), $"Layer {layer} and head {head} must be in [0, {Layers}) and [0, {Heads}).");
        }
        int size = QueryTokens.Count * KeyTokens.Count;
        return _weights.AsSpan((layer * Heads + head) * size, size).ToArray();
    }

    /// <summary>The weights of one layer averaged over its heads, row-major (queries x keys).</summary>
    public float[] LayerAverage(int layer)
    {
        int size = QueryTokens.Count * KeyTokens.Count;
        var average = new float[size];
        for (int h = 0; h < Heads; h++)
        {
            float[] head = Head(layer, h);
            for (int i = 0; i < size; i++)
            {
                average[i] += head[i] / Heads;
            }
        }
        return average;
    }

    /// <summary>How query token <paramref name="query"/> spreads its attention over the keys, in one layer and head.</summary>
    public float[] From(int query, int layer, int head) => Head(layer, head).AsSpan(query * KeyTokens.Count, KeyTokens.Count).ToArray();

    /// <summary>The weights of per-layer tensors (1, h, Tq, Tk), flattened layer by layer.</summary>
    internal static AttentionWeights From(string name, IReadOnlyList<string> queries, IReadOnlyList<string> keys, IReadOnlyList<TorchSharp.torch.Tensor> perLayer)
    {
        float[] all = perLayer.SelectMany(w => w.detach().cpu().to(TorchSharp.torch.ScalarType.Float32).contiguous().data<float>().ToArray()).ToArray();
        int heads = perLayer.Count == 0 ? 0 : (int)perLayer[0].shape[1];
        return new AttentionWeights(name, queries, keys, perLayer.Count, heads, all);
    }

    /// <summary>Each token of <paramref name="ids"/> as its own text (a piece of a word for BPE; control characters shown escaped).</summary>
    internal static string[] TokenTexts(Core.Tokenization.TextTokenizer tokenizer, IEnumerable<int> ids) =>
        ids.Select(id => tokenizer.Decode(new[] { id }).Replace("\r", "\\r").Replace("\n", "\\n")).ToArray();
}

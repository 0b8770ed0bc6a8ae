// The GPT model as one ONNX graph with a key/value cache (the layout of Hugging Face's decoder exports):
// input_ids (batch, sequence) int64 and past_key_i / past_value_i (batch, heads, past, head_dim) -> logits
// (batch, sequence, vocabulary) and present_key_i / present_value_i (batch, heads, past + sequence, head_dim).
// A first call passes a past of length 0. The tokenizer and the configuration travel in the model's metadata.
using Onnx;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.TextGeneration;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.TextGeneration;

internal static class GptOnnxExport
{
    public const string InputIds = "input_ids";

    /// <summary>Output name of the next-token scores (batch, sequence, vocabulary).</summary>
    public const string Logits = "logits";

    public static ModelProto Build(GptModel model, TextTokenizer tokenizer, OnnxExportOptions? options = null)
    {
        TransformerConfig config = model.Config;
        var graph = new OnnxGraph("gpt");
        OnnxQuantization quantization = options?.Quantization ?? OnnxQuantization.None;
        var blocks = new OnnxBlocks(graph, ModuleState.Of(model), quantization);
        bool shared = options?.SharedCacheBuffers ?? false;
        string ids = graph.Input(InputIds, DataType.Int64, "batch", "sequence");
        string? attentionMask = shared ? graph.Input(OnnxSharedCache.AttentionMask, DataType.Int64, "batch", "total") : null;
        string cacheLength = shared ? "context" : "past", presentLength = shared ? "context" : "total";
        var past = new KeyValue[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            past[i] = new KeyValue(graph.Input(OnnxKeyValueCache.PastKey(i), DataType.Float, "batch", config.NumHeads, cacheLength, config.HeadKeyDimension),
                graph.Input(OnnxKeyValueCache.PastValue(i), DataType.Float, "batch", config.NumHeads, cacheLength, config.HeadValueDimension));
        }
        string newLength = blocks.Dimension(ids, 1);
        Func<int, string, (string Output, KeyValue Present)> selfAttention;
        string pastLength;
        if (attentionMask is not null)
        {
            // Shared buffers: the past length is the mask's length minus the new tokens; GroupQueryAttention takes each row's
            // last position and the total length, and writes the new keys and values into the buffers at the past length.
            (pastLength, string lastPositions, string total32) = blocks.SharedCacheLengths(attentionMask, newLength);
            selfAttention = (i, h) => blocks.SharedCacheAttention(h, $"decoder.layers.{i}.self_attn", config, past[i], lastPositions, total32);
        }
        else
        {
            pastLength = blocks.Dimension(past[0].Key, 2);
            string mask = blocks.CausalMask(newLength, pastLength);
            selfAttention = (i, h) => blocks.Attention(h, h, $"decoder.layers.{i}.self_attn", config, mask, past[i]);
        }
        string x = blocks.TokenEmbedding(ids, model.Embedding, "embedding", config, pastLength);
        for (int i = 0; i < config.NumLayers; i++)
        {
            int layer = i;
            (x, KeyValue present) = blocks.DecoderLayer(x, $"decoder.layers.{i}", config, h => selfAttention(layer, h), cross: null, crossMask: null);
            graph.Output(present.Key, OnnxKeyValueCache.PresentKey(i), DataType.Float, "batch", config.NumHeads, presentLength, config.HeadKeyDimension);
            graph.Output(present.Value, OnnxKeyValueCache.PresentValue(i), DataType.Float, "batch", config.NumHeads, presentLength, config.HeadValueDimension);
        }
        if (config.NormPosition == NormPosition.Pre)
        {
            x = blocks.LayerNorm(x, "decoder.final_norm", config.LayerNormEpsilon);
        }
        graph.Output(blocks.TiedLogits(x, "embedding"), Logits, DataType.Float, "batch", "sequence", model.VocabularySize);
        return graph.ToModel(new Dictionary<string, string>
        {
            ["capability"] = TextGenerationTransformer.Capability,
            ["config"] = config.ToJson(),
            ["tokenizer"] = tokenizer.Definition.ToJson(),
            ["quantization"] = quantization.ToString(),
            [OnnxSharedCache.MetadataKey] = shared ? OnnxSharedCache.SharedBuffers : OnnxSharedCache.Concatenated,
            ["vocabulary_size"] = model.VocabularySize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
    }
}

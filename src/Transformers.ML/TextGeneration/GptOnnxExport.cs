// The GPT model as one ONNX graph with a key/value cache (the layout of Hugging Face's decoder exports):
// input_ids (batch, sequence) int64 and past_key_i / past_value_i (batch, heads, past, head_dim) -> logits
// (batch, sequence, vocabulary) and present_key_i / present_value_i (batch, heads, past + sequence, head_dim).
// A first call passes a past of length 0. An optional int64 scalar logits_to_keep (Hugging Face's name; default 0, every
// position) asks for the scores of the last positions only: a generator feeds 1, so that a long prompt's step does not
// project every position onto the vocabulary. An optional int64 vector left_padding (default one 0: none; concatenated
// cache only) says per row how many of its first cached and new slots are padding, so that prompts of different lengths
// decode in one batch, aligned on the right. The tokenizer and the configuration travel in the model's metadata.
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

    /// <summary>Optional input: how many of the last positions get scores (0, the default: all).</summary>
    public const string LogitsToKeep = "logits_to_keep";

    /// <summary>
    /// Optional input (concatenated cache only): per row, the padding slots before its first token, which nothing
    /// attends to and which positions do not count; default one 0, no padding.
    /// </summary>
    public const string LeftPadding = "left_padding";

    public static ModelProto Build(GptModel model, TextTokenizer tokenizer, OnnxExportOptions? options = null)
    {
        options?.RejectImageOptions("GPT");
        TransformerConfig config = model.Config;
        var graph = new OnnxGraph("gpt");
        OnnxQuantization quantization = options?.Quantization ?? OnnxQuantization.None;
        var blocks = new OnnxBlocks(graph, ModuleState.Of(model), quantization);
        bool shared = options?.SharedCacheBuffers ?? false;
        string ids = graph.Input(InputIds, DataType.Int64, "batch", "sequence");
        // GroupQueryAttention's shared buffers take each row's length from attention_mask instead.
        string? leftPadding = shared ? null : graph.OptionalVectorInput(LeftPadding, "padding_rows", 0);
        string x = blocks.CachedDecoder(ids, model.Embedding, config, shared, leftPadding: leftPadding);
        string logits = blocks.TiedLogits(x, "embedding", graph.OptionalInput(LogitsToKeep, 0));
        graph.Output(logits, Logits, DataType.Float, "batch", "kept_sequence", model.VocabularySize);
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

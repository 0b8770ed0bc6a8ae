// The GPT model as one ONNX graph with a key/value cache (the layout of Hugging Face's decoder exports):
// input_ids (batch, sequence) int64 and past_key_i / past_value_i (batch, heads, past, head_dim) -> logits
// (batch, sequence, vocabulary) and present_key_i / present_value_i (batch, heads, past + sequence, head_dim).
// A first call passes a past of length 0. An optional int64 scalar logits_to_keep (Hugging Face's name; default 0, every
// position) asks for the scores of the last positions only: a generator feeds 1, so that a long prompt's step does not
// project every position onto the vocabulary. An optional int64 attention_mask (batch, past + sequence) of ones for tokens
// and zeros for padding (Hugging Face's input; default a single 1: no padding) lets prompts of different lengths decode
// in one batch: no position attends to the padding, and each row's positions count its tokens only. (With
// SharedCacheBuffers attention_mask is required: GroupQueryAttention's row lengths, and the positions too.) The
// tokenizer and the configuration travel in the model's metadata.
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
    /// Input (batch, past + sequence): 1 at the tokens, 0 at padding. Optional (default no padding) in the
    /// concatenated-cache graph, where it lets prompts of different lengths decode together; required with shared buffers.
    /// </summary>
    public const string AttentionMask = OnnxSharedCache.AttentionMask;

    /// <summary>Metadata key saying how the graph counts positions (<see cref="PositionsFromMask"/> since attention_mask).</summary>
    public const string PositionsMetadataKey = "positions";

    /// <summary>Positions are counted over attention_mask's ones: the graph takes padded batches (left or right).</summary>
    public const string PositionsFromMask = "attention-mask";

    /// <param name="generation">The model's generation settings, written to the metadata as the model file holds them; null writes none.</param>
    /// <param name="requireAttentionMask">
    /// Make the concatenated-cache graph's attention_mask a required input: ONNX Runtime GenAI feeds only the inputs a
    /// session lists as its own, which leave out those with a default (see <see cref="GenAiExport"/>).
    /// </param>
    public static ModelProto Build(GptModel model, TextTokenizer tokenizer, OnnxExportOptions? options = null, bool requireAttentionMask = false,
        GenerationOptions? generation = null)
    {
        options?.RejectImageOptions("GPT");
        TransformerConfig config = model.Config;
        var graph = new OnnxGraph("gpt");
        OnnxQuantization quantization = options?.Quantization ?? OnnxQuantization.None;
        var blocks = new OnnxBlocks(graph, ModuleState.Of(model), quantization);
        bool shared = options?.SharedCacheBuffers ?? false;
        string ids = graph.Input(InputIds, DataType.Int64, "batch", "sequence");
        // The shared buffers make their own (required) attention_mask, GroupQueryAttention's row lengths (CachedDecoder).
        string? mask = shared ? null
            : requireAttentionMask ? graph.Input(AttentionMask, DataType.Int64, "batch", "total")
            : graph.OptionalInput(AttentionMask, new long[] { 1, 1 }, new long[] { 1 }, "batch", "total");
        string x = blocks.CachedDecoder(ids, model.Embedding, config, shared, attentionMask: mask);
        string logits = blocks.TiedLogits(x, "embedding", graph.OptionalInput(LogitsToKeep, 0));
        graph.Output(logits, Logits, DataType.Float, "batch", "kept_sequence", model.VocabularySize);
        var metadata = new Dictionary<string, string>
        {
            ["capability"] = TextGenerationTransformer.Capability,
            ["config"] = config.ToJson(),
            ["tokenizer"] = tokenizer.Definition.ToJson(),
            ["quantization"] = quantization.ToString(),
            [PositionsMetadataKey] = PositionsFromMask,
            [OnnxSharedCache.MetadataKey] = shared ? OnnxSharedCache.SharedBuffers : OnnxSharedCache.Concatenated,
            ["vocabulary_size"] = model.VocabularySize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (generation is not null)
        {
            generation.Validate();
            metadata[TextGenerationTransformer.GenerationKey] = System.Text.Json.JsonSerializer.Serialize(generation);
        }
        return graph.ToModel(metadata);
    }
}

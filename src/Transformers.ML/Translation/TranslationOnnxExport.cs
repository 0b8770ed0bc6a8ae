// The encoder-decoder as two ONNX graphs, so that a deployed translator runs the encoder once per batch and the
// decoder once per token with its key/value cache:
//   encoder.onnx: source_ids (batch, source) int64, source_padding (batch, source) int64 (1 at padding)
//                 -> cross_key_i / cross_value_i (batch, heads, source, head_dim): the decoder's cross-attention keys
//                 and values of the encoder output, computed once.
//   decoder.onnx: target_ids (batch, sequence) int64, source_padding, cross_key_i / cross_value_i, past_key_i /
//                 past_value_i (batch, heads, past, head_dim) -> log_probs (batch, sequence, vocabulary) and
//                 present_key_i / present_value_i (batch, heads, past + sequence, head_dim). With SharedCacheBuffers
//                 the pasts are buffers (batch, heads, capacity, head_dim) that the presents are bound to, and an
//                 attention_mask (batch, past + sequence) of ones gives the past length (as the GPT's export).
// Both carry the configuration and the tokenizer in their metadata.
using Onnx;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Modules;
using Transformers.ML.Translation;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.Translation;

internal static class TranslationOnnxExport
{
    public const string EncoderFile = "encoder.onnx";
    public const string DecoderFile = "decoder.onnx";
    public const string SourceIds = "source_ids";
    public const string SourcePadding = "source_padding";
    public const string TargetIds = "target_ids";
    public const string LogProbabilities = "log_probs";

    public static string CrossKey(int layer) => $"cross_key_{layer}";

    public static string CrossValue(int layer) => $"cross_value_{layer}";

    public static (ModelProto Encoder, ModelProto Decoder) Build(EncoderDecoderTransformer model, TranslationCodec codec, TranslatorSettings settings, OnnxExportOptions? options = null)
    {
        options?.RejectImageOptions("translator");
        TransformerConfig config = model.Config;
        Dictionary<string, Tensor> weights = ModuleState.Of(model);
        var metadata = new Dictionary<string, string>
        {
            ["capability"] = TranslationTransformer.Capability,
            ["config"] = config.ToJson(),
            ["tokenizer"] = codec.Tokenizer.Definition.ToJson(),
            ["max_sentence_tokens"] = codec.MaxSentenceTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["quantization"] = (options?.Quantization ?? OnnxQuantization.None).ToString(),
            [OnnxSharedCache.MetadataKey] = options?.SharedCacheBuffers == true ? OnnxSharedCache.SharedBuffers : OnnxSharedCache.Concatenated,
        };
        metadata.Add(codec.CopyVerbatimSpansEntry.Key, codec.CopyVerbatimSpansEntry.Value);
        foreach ((string key, string value) in settings.Metadata())
        {
            metadata[key] = value;
        }
        OnnxQuantization quantization = options?.Quantization ?? OnnxQuantization.None;

        // Encoder.
        var encoderGraph = new OnnxGraph("translation_encoder");
        var encoder = new OnnxBlocks(encoderGraph, weights, quantization);
        string source = encoderGraph.Input(SourceIds, DataType.Int64, "batch", "source");
        string padding = encoderGraph.Input(SourcePadding, DataType.Int64, "batch", "source");
        string paddingMask = encoder.PaddingMask(padding);
        string memory = encoder.Encoder(encoder.TokenEmbedding(source, model.Embedding, "embedding", config, encoderGraph.LongScalar(0)), "encoder", config, paddingMask);
        for (int i = 0; i < config.NumLayers; i++)
        {
            KeyValue cross = encoder.KeysAndValues(memory, $"decoder.layers.{i}.cross_attn", config);
            encoderGraph.Output(cross.Key, CrossKey(i), DataType.Float, "batch", config.NumHeads, "source", config.HeadKeyDimension);
            encoderGraph.Output(cross.Value, CrossValue(i), DataType.Float, "batch", config.NumHeads, "source", config.HeadValueDimension);
        }

        // Decoder with its cache: concatenated (standard ONNX) or buffers written in place (SharedCacheBuffers).
        var decoderGraph = new OnnxGraph("translation_decoder");
        var decoder = new OnnxBlocks(decoderGraph, weights, quantization);
        string target = decoderGraph.Input(TargetIds, DataType.Int64, "batch", "sequence");
        string crossMask = decoder.PaddingMask(decoderGraph.Input(SourcePadding, DataType.Int64, "batch", "source"));
        var crossKv = new KeyValue[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            crossKv[i] = new KeyValue(decoderGraph.Input(CrossKey(i), DataType.Float, "batch", config.NumHeads, "source", config.HeadKeyDimension),
                decoderGraph.Input(CrossValue(i), DataType.Float, "batch", config.NumHeads, "source", config.HeadValueDimension));
        }
        string x = decoder.CachedDecoder(target, model.Embedding, config, options?.SharedCacheBuffers ?? false, crossKv, crossMask);
        string logits = config.TieEmbeddings ? decoder.TiedLogits(x, "embedding") : decoder.Linear(x, "output_proj");
        string logProbs = decoderGraph.Op("LogSoftmax", new[] { logits }, ("axis", -1L));
        decoderGraph.Output(logProbs, LogProbabilities, DataType.Float, "batch", "sequence", codec.VocabularySize);
        return (encoderGraph.ToModel(metadata), decoderGraph.ToModel(metadata));
    }
}

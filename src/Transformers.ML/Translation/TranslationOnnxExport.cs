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

    /// <summary>Metadata key of <see cref="TranslationTransformer.SplitSentences"/> ("true" or "false"; absent before 2026-12-07: true), in the export and the model file.</summary>
    public const string SplitSentencesKey = "split_sentences";

    /// <summary>
    /// Metadata key of the model's decoding settings, [<see cref="TranslationTransformer.BeamSize"/>,
    /// <see cref="TranslationTransformer.LengthPenalty"/>] in JSON, in the export and the model file (absent from exports
    /// written before it was recorded: beam 4, length penalty 0.6).
    /// </summary>
    public const string DecodingKey = "decoding";

    /// <summary>The <see cref="DecodingKey"/> value of a beam size and length penalty.</summary>
    public static string Decoding(int beamSize, double lengthPenalty) => System.Text.Json.JsonSerializer.Serialize(new[] { beamSize, lengthPenalty });

    /// <summary>
    /// Reads a <see cref="DecodingKey"/> value of an export or a model file (null: absent, beam 4 and length penalty 0.6);
    /// an unreadable one or one out of range fails with an <see cref="InvalidDataException"/> that names
    /// <paramref name="source"/>.
    /// </summary>
    public static (int BeamSize, double LengthPenalty) ParseDecoding(string? value, string source)
    {
        if (value is null)
        {
            return (4, 0.6);
        }
        double[]? decoding = null;
        try
        {
            decoding = System.Text.Json.JsonSerializer.Deserialize<double[]>(value);
        }
        catch (System.Text.Json.JsonException)
        {
        }
        return decoding is [>= 1 and <= 64, >= 0 and <= 10] && decoding[0] == Math.Floor(decoding[0])
            ? ((int)decoding[0], decoding[1])
            : throw new InvalidDataException($"'{source}' has unreadable decoding settings (metadata '{DecodingKey}' is '{value}'; expected [beam size 1..64, length penalty 0..10]).");
    }

    public static string CrossKey(int layer) => $"cross_key_{layer}";

    public static string CrossValue(int layer) => $"cross_value_{layer}";

    public static (ModelProto Encoder, ModelProto Decoder) Build(EncoderDecoderTransformer model, TranslationCodec codec, bool splitSentences, int beamSize, double lengthPenalty, OnnxExportOptions? options = null)
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
            [SplitSentencesKey] = splitSentences ? "true" : "false",
            [DecodingKey] = Decoding(beamSize, lengthPenalty),
            ["quantization"] = (options?.Quantization ?? OnnxQuantization.None).ToString(),
            [OnnxSharedCache.MetadataKey] = options?.SharedCacheBuffers == true ? OnnxSharedCache.SharedBuffers : OnnxSharedCache.Concatenated,
        };
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

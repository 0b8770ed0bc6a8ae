// The GPT in the folder layout ONNX Runtime GenAI loads (Microsoft.ML.OnnxRuntimeGenAI's Model(folder)): model.onnx (our
// export: input_ids and past_key_i / past_value_i in, logits and present_key_i / present_value_i out; positions and the
// causal mask come from the past length inside the graph, so it needs no attention_mask or position_ids input),
// genai_config.json naming those inputs and outputs and the sizes GenAI allocates its cache with, and, for a byte-level
// BPE tokenizer, the GPT-2 tokenizer files.
using System.Text.Json;
using System.Text.Json.Nodes;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.TextGeneration;

internal static class GenAiExport
{
    public const string ModelFile = "model.onnx";
    public const string ConfigFile = "genai_config.json";

    public static void Write(TextGenerationTransformer model, string folder, OnnxExportOptions options)
    {
        AtomicFile.CreateFolder(folder, "ExportToOnnxRuntimeGenAI");
        TransformerConfig c = model.Model.Config;
        int endOfText = model.Tokenizer.EndOfTextId;
        bool shared = options.SharedCacheBuffers;
        OnnxGraph.Save(GptOnnxExport.Build(model.Model, model.Tokenizer, options), Path.Combine(folder, ModelFile));
        var config = new JsonObject
        {
            ["model"] = new JsonObject
            {
                // A decoder-only model with separate key and value caches (GenAI's "gpt2" type expects GPT-2's combined past_i).
                ["type"] = "llama",
                ["bos_token_id"] = endOfText,
                ["eos_token_id"] = endOfText,
                ["pad_token_id"] = endOfText,
                ["context_length"] = c.MaxSequenceLength,
                ["vocab_size"] = model.Model.VocabularySize,
                ["decoder"] = new JsonObject
                {
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["filename"] = ModelFile,
                    ["head_size"] = c.HeadKeyDimension,
                    ["hidden_size"] = c.ModelDimension,
                    ["num_attention_heads"] = c.NumHeads,
                    ["num_key_value_heads"] = c.NumHeads,
                    ["num_hidden_layers"] = c.NumLayers,
                    ["inputs"] = shared
                        ? new JsonObject
                        {
                            ["input_ids"] = GptOnnxExport.InputIds,
                            ["attention_mask"] = OnnxSharedCache.AttentionMask,
                            ["past_key_names"] = "past_key_%d",
                            ["past_value_names"] = "past_value_%d",
                        }
                        : new JsonObject
                        {
                            ["input_ids"] = GptOnnxExport.InputIds,
                            ["past_key_names"] = "past_key_%d",
                            ["past_value_names"] = "past_value_%d",
                        },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = GptOnnxExport.Logits,
                        ["present_key_names"] = "present_key_%d",
                        ["present_value_names"] = "present_value_%d",
                    },
                },
            },
            ["search"] = new JsonObject
            {
                ["do_sample"] = false,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["max_length"] = c.MaxSequenceLength,
                ["min_length"] = 0,
                ["temperature"] = 1.0,
                ["top_k"] = 1,
                ["top_p"] = 1.0,
                ["repetition_penalty"] = 1.0,
                ["length_penalty"] = 1.0,
                ["no_repeat_ngram_size"] = 0,
                ["diversity_penalty"] = 0.0,
                ["early_stopping"] = true,
                // With SharedCacheBuffers GenAI allocates (batch, heads, max_length, head size) buffers and binds them as past and present.
                ["past_present_share_buffer"] = shared,
            },
        };
        if (OnnxKeyValueCache.PastKey(0) != "past_key_0" || OnnxKeyValueCache.PresentValue(0) != "present_value_0")
        {
            throw new InvalidOperationException("The cache names of the export changed: genai_config.json must follow them.");
        }
        AtomicFile.Write(Path.Combine(folder, ConfigFile), s => JsonSerializer.Serialize(s, config, new JsonSerializerOptions { WriteIndented = true }));
        HuggingFaceGpt2.WriteGpt2TokenizerFiles(model.Tokenizer, folder);
    }
}

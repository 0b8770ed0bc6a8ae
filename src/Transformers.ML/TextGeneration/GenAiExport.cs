// The GPT in the folder layout ONNX Runtime GenAI loads (Microsoft.ML.OnnxRuntimeGenAI's Model(folder)): model.onnx (our
// export: input_ids, attention_mask and past_key_i / past_value_i in, logits and present_key_i / present_value_i out;
// positions and the causal mask come from the past length and the mask inside the graph (GenAI pads a batch on the
// right, and the graph counts each row's positions over the mask's ones), so it needs no position_ids input),
// genai_config.json naming those inputs and outputs and the sizes GenAI allocates its cache with, and, for a byte-level
// BPE tokenizer, the GPT-2 tokenizer files.
using System.Text.Json;
using System.Text.Json.Nodes;
using Onnx;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Onnx;

namespace Transformers.ML.TextGeneration;

internal static class GenAiExport
{
    public const string ModelFile = "model.onnx";
    public const string ConfigFile = "genai_config.json";

    /// <summary>
    /// GenAI's search section: the model's saved generation settings as GenAI's defaults, in the names and meanings it shares
    /// with Hugging Face's generation config (do_sample, temperature, top_k, top_p, repetition_penalty, no_repeat_ngram_size,
    /// random_seed), so that a Generator made without search options decodes as the model's own Generate does. GenAI has no
    /// min-p (GenAI 0.20 applies no_repeat_ngram_size; 0.18 parsed it without applying it; see <see cref="TextGenerationTransformer.ExportToOnnxRuntimeGenAI"/>).
    /// max_length is the context length: GenAI counts the prompt in it and does not slide the window; it counts the prompt
    /// in min_length too, which therefore cannot say MinNewTokens (the same for every prompt) and stays 0.
    /// </summary>
    internal static JsonObject Search(GenerationOptions generation, int contextLength, bool sharedBuffers)
    {
        generation.Validate();
        bool sample = !generation.IsGreedy;
        return new JsonObject
        {
            ["do_sample"] = sample,
            ["num_beams"] = 1,
            ["num_return_sequences"] = 1,
            ["max_length"] = contextLength,
            ["min_length"] = 0,
            // GenAI rejects a temperature of 0 or less when it samples; greedy decoding does not read it.
            ["temperature"] = sample ? generation.Temperature : 1.0,
            // 0 is GenAI's "no top-k" too (it then samples from top_p's nucleus, the whole vocabulary at 1).
            ["top_k"] = sample ? generation.TopK : 1,
            ["top_p"] = generation.TopP,
            ["repetition_penalty"] = generation.RepetitionPenalty,
            ["length_penalty"] = 1.0,
            ["no_repeat_ngram_size"] = generation.NoRepeatNgramSize,
            ["diversity_penalty"] = 0.0,
            ["early_stopping"] = true,
            // -1: GenAI draws a fresh seed for each Generator, as a null Seed does here.
            ["random_seed"] = generation.Seed ?? -1,
            // With SharedCacheBuffers GenAI allocates (batch, heads, max_length, head size) buffers and binds them as past and present.
            ["past_present_share_buffer"] = sharedBuffers,
        };
    }

    public static void Write(TextGenerationTransformer model, string folder, OnnxExportOptions options)
    {
        // attention_mask required: GenAI feeds only the inputs a session lists as its own, and it pads a batch of prompts of
        // different lengths on the right, which the graph reads from the mask. Checks the options before the folder is made.
        ModelProto graph = GptOnnxExport.Build(model.Model, model.Tokenizer, options, requireAttentionMask: true, generation: model.Generation);
        AtomicFile.CreateFolder(folder, "ExportToOnnxRuntimeGenAI");
        TransformerConfig c = model.Model.Config;
        int endOfText = model.Tokenizer.EndOfTextId;
        bool shared = options.SharedCacheBuffers;
        OnnxGraph.Save(graph, Path.Combine(folder, ModelFile));
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
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = GptOnnxExport.InputIds,
                        ["attention_mask"] = GptOnnxExport.AttentionMask,
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
            ["search"] = Search(model.Generation, c.MaxSequenceLength, shared),
        };
        if (OnnxKeyValueCache.PastKey(0) != "past_key_0" || OnnxKeyValueCache.PresentValue(0) != "present_value_0")
        {
            throw new InvalidOperationException("The cache names of the export changed: genai_config.json must follow them.");
        }
        AtomicFile.Write(Path.Combine(folder, ConfigFile), s => JsonSerializer.Serialize(s, config, new JsonSerializerOptions { WriteIndented = true }));
        HuggingFaceGpt2.WriteGpt2TokenizerFiles(model.Tokenizer, folder);
    }
}

// Hugging Face interop for GPT-2 checkpoints: a folder with config.json and model.safetensors, with
// GPT-2's own weight names (wte, wpe, h.N.ln_1, h.N.attn.c_attn, ...). GPT-2 stores its projections as
// Conv1D layers, whose weights are (in, out), the transpose of a Linear's (out, in); c_attn holds
// W^Q, W^K and W^V side by side.
using System.Text.Json;
using System.Text.Json.Nodes;
using Transformers.ML.Core.IO;
using Transformers.ML.Core.Tokenization;
using static TorchSharp.torch;

namespace Transformers.ML.TextGeneration;

internal static class HuggingFaceGpt2
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = "model.safetensors";
    public const string TokenizerFile = "transformers_ml_tokenizer.json";

    /// <summary>Reads a GPT-2 checkpoint folder: the model's architecture, weights (in our names) and tokenizer.</summary>
    public static (GptModel Model, TextTokenizer Tokenizer) Import(string folder)
    {
        string configPath = Path.Combine(folder, ConfigFile);
        string weightsPath = Path.Combine(folder, WeightsFile);
        if (!File.Exists(configPath) || !File.Exists(weightsPath))
        {
            throw new FileNotFoundException($"'{folder}' is not a Hugging Face GPT-2 checkpoint: it needs {ConfigFile} and {WeightsFile}.");
        }
        JsonNode json = JsonNode.Parse(File.ReadAllText(configPath)) ?? throw new InvalidDataException($"'{configPath}' is empty.");
        string? type = (string?)json["model_type"];
        if (type is not null && type != "gpt2")
        {
            throw new InvalidDataException($"'{configPath}' describes a '{type}' model; only 'gpt2' checkpoints can be imported.");
        }
        if ((bool?)json["scale_attn_by_inverse_layer_idx"] == true || (bool?)json["scale_attn_weights"] == false || (bool?)json["add_cross_attention"] == true)
        {
            throw new InvalidDataException($"'{configPath}': scale_attn_by_inverse_layer_idx, unscaled attention and cross-attention are GPT-2 variants this library does not build.");
        }
        int Int(string name, int? fallback = null) => (int?)json[name] ?? fallback ?? throw new InvalidDataException($"'{configPath}' has no '{name}'.");
        int width = Int("n_embd");
        int vocabulary = Int("vocab_size");
        string activation = (string?)json["activation_function"] ?? "gelu_new";
        var config = TextGenerationOptions.Gpt(Int("n_layer"), Int("n_head"), width, Int("n_positions", (int?)json["n_ctx"]), (double?)json["resid_pdrop"] ?? 0.1);
        config.FeedForwardDimension = (int?)json["n_inner"] ?? 4 * width;
        config.LayerNormEpsilon = (double?)json["layer_norm_epsilon"] ?? 1e-5;
        config.AttentionDropout = (double?)json["attn_pdrop"] ?? config.Dropout;
        config.Activation = activation switch
        {
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => FeedForwardActivation.GeluTanh,
            "gelu" => FeedForwardActivation.Gelu,
            "relu" => FeedForwardActivation.Relu,
            _ => throw new InvalidDataException($"'{configPath}': activation_function '{activation}' is not supported (gelu_new, gelu, relu are)."),
        };

        TextTokenizer tokenizer = ReadTokenizer(folder, vocabulary);
        var model = new GptModel(config, vocabulary);
        Dictionary<string, Tensor> hf = SafeTensors.Open(weightsPath).ReadAll();
        try
        {
            ModelFile.RefuseNonFinite(weightsPath, hf);
            ModelFile.LoadInto(model, ToOurs(hf, config.NumLayers, weightsPath), weightsPath);
        }
        finally
        {
            foreach (Tensor t in hf.Values)
            {
                t.Dispose();
            }
        }
        return (model, tokenizer);
    }

    /// <summary>Writes config.json, model.safetensors (GPT-2 names, Conv1D layout) and the tokenizer into <paramref name="folder"/>.</summary>
    public static void Export(GptModel model, TextTokenizer tokenizer, string folder)
    {
        AtomicFile.CreateFolder(folder, "ExportToHuggingFace");
        TransformerConfig c = model.Config;
        if (c.NormPosition != NormPosition.Pre || c.PositionalEncoding != PositionalEncodingKind.Learned || !c.TieEmbeddings || c.ScaleEmbeddings
            || c.KeyDimension is not null || c.ValueDimension is not null || !c.AttentionBias)
        {
            throw new InvalidOperationException("Only GPT-2 shaped models (pre-LN, learned positions, tied embeddings, d_k = d_v = d_model/h) can be written in GPT-2's layout.");
        }
        var config = new JsonObject
        {
            ["model_type"] = "gpt2",
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["vocab_size"] = model.VocabularySize,
            ["n_positions"] = c.MaxSequenceLength,
            ["n_ctx"] = c.MaxSequenceLength,
            ["n_embd"] = c.ModelDimension,
            ["n_layer"] = c.NumLayers,
            ["n_head"] = c.NumHeads,
            ["n_inner"] = c.FeedForwardDimension,
            ["activation_function"] = c.Activation switch
            {
                FeedForwardActivation.GeluTanh => "gelu_new",
                FeedForwardActivation.Gelu => "gelu",
                _ => "relu",
            },
            ["resid_pdrop"] = c.Dropout,
            ["embd_pdrop"] = c.Dropout,
            ["attn_pdrop"] = c.AttentionDropout,
            ["layer_norm_epsilon"] = c.LayerNormEpsilon,
            ["initializer_range"] = 0.02,
            ["bos_token_id"] = tokenizer.EndOfTextId,
            ["eos_token_id"] = tokenizer.EndOfTextId,
            ["tie_word_embeddings"] = true,
        };
        Dictionary<string, Tensor> ours = ModuleState.Of(model);
        var hf = new List<KeyValuePair<string, Tensor>>();
        using var scope = NewDisposeScope();
        void Put(string name, Tensor value) => hf.Add(new("transformer." + name, value.contiguous()));
        Put("wte.weight", ours["embedding.tokens.weight"]);
        Put("wpe.weight", ours["embedding.positions.embedding.weight"]);
        for (int i = 0; i < c.NumLayers; i++)
        {
            string o = $"decoder.layers.{i}.", h = $"h.{i}.";
            Put(h + "ln_1.weight", ours[o + "self_attn_residual.norm.weight"]);
            Put(h + "ln_1.bias", ours[o + "self_attn_residual.norm.bias"]);
            Put(h + "attn.c_attn.weight", cat(new[] { ours[o + "self_attn.q_proj.weight"], ours[o + "self_attn.k_proj.weight"], ours[o + "self_attn.v_proj.weight"] }, 0).t());
            Put(h + "attn.c_attn.bias", cat(new[] { ours[o + "self_attn.q_proj.bias"], ours[o + "self_attn.k_proj.bias"], ours[o + "self_attn.v_proj.bias"] }, 0));
            Put(h + "attn.c_proj.weight", ours[o + "self_attn.out_proj.weight"].t());
            Put(h + "attn.c_proj.bias", ours[o + "self_attn.out_proj.bias"]);
            Put(h + "ln_2.weight", ours[o + "ffn_residual.norm.weight"]);
            Put(h + "ln_2.bias", ours[o + "ffn_residual.norm.bias"]);
            Put(h + "mlp.c_fc.weight", ours[o + "ffn.fc1.weight"].t());
            Put(h + "mlp.c_fc.bias", ours[o + "ffn.fc1.bias"]);
            Put(h + "mlp.c_proj.weight", ours[o + "ffn.fc2.weight"].t());
            Put(h + "mlp.c_proj.bias", ours[o + "ffn.fc2.bias"]);
        }
        Put("ln_f.weight", ours["decoder.final_norm.weight"]);
        Put("ln_f.bias", ours["decoder.final_norm.bias"]);

        SafeTensors.Write(Path.Combine(folder, WeightsFile), hf, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.Write(Path.Combine(folder, ConfigFile), s => JsonSerializer.Serialize(s, config, new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.Write(Path.Combine(folder, TokenizerFile), s => s.Write(System.Text.Encoding.UTF8.GetBytes(tokenizer.Definition.ToJson())));
        WriteGpt2TokenizerFiles(tokenizer, folder);
    }

    /// <summary>
    /// For a byte-level BPE tokenizer (learned, or GPT-2's): vocab.json and merges.txt (Hugging Face's GPT2Tokenizer),
    /// tokenizer.json (its fast tokenizer's one file, which ONNX Runtime GenAI's Tokenizer reads) and tokenizer_config.json,
    /// end-of-text included. Returns false (and writes nothing) for a character tokenizer.
    /// </summary>
    internal static bool WriteGpt2TokenizerFiles(TextTokenizer tokenizer, string folder)
    {
        if (tokenizer.BpeTables() is not var (learned, merges))
        {
            return false;
        }
        var vocabulary = new Dictionary<string, int>(learned) { [ByteLevelBpe.EndOfText] = tokenizer.EndOfTextId };
        AtomicFile.Write(Path.Combine(folder, "vocab.json"), s => JsonSerializer.Serialize(s, vocabulary));
        AtomicFile.Write(Path.Combine(folder, "merges.txt"), s => s.Write(System.Text.Encoding.UTF8.GetBytes("#version: 0.2\n" + string.Join("\n", merges) + "\n")));
        var config = new Dictionary<string, object>
        {
            ["tokenizer_class"] = "GPT2Tokenizer",
            ["bos_token"] = ByteLevelBpe.EndOfText,
            ["eos_token"] = ByteLevelBpe.EndOfText,
            ["unk_token"] = ByteLevelBpe.EndOfText,
            ["add_prefix_space"] = false,
            ["model_max_length"] = 1_000_000,
        };
        AtomicFile.Write(Path.Combine(folder, "tokenizer_config.json"), s => JsonSerializer.Serialize(s, config, new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.Write(Path.Combine(folder, "tokenizer.json"), s => JsonSerializer.Serialize(s, FastTokenizer(vocabulary, merges, tokenizer.EndOfTextId)));
        return true;
    }

    /// <summary>
    /// Hugging Face tokenizers' tokenizer.json of a byte-level BPE as GPT-2's: GPT-2's pre-tokenization pattern over UTF-8
    /// bytes (ByteLevel, no prefix space), the BPE vocabulary and merges, end-of-text as the one special token.
    /// </summary>
    private static JsonObject FastTokenizer(Dictionary<string, int> vocabulary, IReadOnlyList<string> merges, int endOfText)
    {
        JsonObject ByteLevel(bool addPrefixSpace, bool trimOffsets) => new()
        {
            ["type"] = "ByteLevel",
            ["add_prefix_space"] = addPrefixSpace,
            ["trim_offsets"] = trimOffsets,
            ["use_regex"] = true,
        };
        var vocab = new JsonObject();
        foreach ((string token, int id) in vocabulary.OrderBy(p => p.Value))
        {
            vocab[token] = id;
        }
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = endOfText,
                ["content"] = ByteLevelBpe.EndOfText,
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = true,
                ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(addPrefixSpace: false, trimOffsets: true),
            ["post_processor"] = ByteLevel(addPrefixSpace: true, trimOffsets: false),
            ["decoder"] = ByteLevel(addPrefixSpace: true, trimOffsets: true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
            },
        };
    }

    /// <summary>GPT-2's tensors (with or without the "transformer." prefix) under our names.</summary>
    private static Dictionary<string, Tensor> ToOurs(Dictionary<string, Tensor> hf, int layers, string source)
    {
        Tensor Get(string name) => hf.TryGetValue(name, out Tensor? t) ? t : hf.TryGetValue("transformer." + name, out t) ? t
            : throw new InvalidDataException($"'{source}' has no tensor '{name}' (nor 'transformer.{name}'): not a GPT-2 checkpoint, or another number of layers.");
        var ours = new Dictionary<string, Tensor>
        {
            ["embedding.tokens.weight"] = Get("wte.weight"),
            ["embedding.positions.embedding.weight"] = Get("wpe.weight"),
            ["decoder.final_norm.weight"] = Get("ln_f.weight"),
            ["decoder.final_norm.bias"] = Get("ln_f.bias"),
        };
        for (int i = 0; i < layers; i++)
        {
            string o = $"decoder.layers.{i}.", h = $"h.{i}.";
            ours[o + "self_attn_residual.norm.weight"] = Get(h + "ln_1.weight");
            ours[o + "self_attn_residual.norm.bias"] = Get(h + "ln_1.bias");
            Tensor[] qkv = Get(h + "attn.c_attn.weight").t().chunk(3, 0); // (in, 3 out) -> 3 x (out, in)
            Tensor[] qkvBias = Get(h + "attn.c_attn.bias").chunk(3, 0);
            string[] names = { "q_proj", "k_proj", "v_proj" };
            for (int k = 0; k < 3; k++)
            {
                ours[o + $"self_attn.{names[k]}.weight"] = qkv[k];
                ours[o + $"self_attn.{names[k]}.bias"] = qkvBias[k];
            }
            ours[o + "self_attn.out_proj.weight"] = Get(h + "attn.c_proj.weight").t();
            ours[o + "self_attn.out_proj.bias"] = Get(h + "attn.c_proj.bias");
            ours[o + "ffn_residual.norm.weight"] = Get(h + "ln_2.weight");
            ours[o + "ffn_residual.norm.bias"] = Get(h + "ln_2.bias");
            ours[o + "ffn.fc1.weight"] = Get(h + "mlp.c_fc.weight").t();
            ours[o + "ffn.fc1.bias"] = Get(h + "mlp.c_fc.bias");
            ours[o + "ffn.fc2.weight"] = Get(h + "mlp.c_proj.weight").t();
            ours[o + "ffn.fc2.bias"] = Get(h + "mlp.c_proj.bias");
        }
        return ours;
    }

    private static TextTokenizer ReadTokenizer(string folder, int vocabulary)
    {
        string ours = Path.Combine(folder, TokenizerFile);
        if (File.Exists(ours))
        {
            TextTokenizer tokenizer = TextTokenizer.FromDefinition(TokenizerDefinition.FromJson(File.ReadAllText(ours), ours), ours);
            if (tokenizer.VocabularySize > vocabulary)
            {
                throw new InvalidDataException($"'{ours}' has {tokenizer.VocabularySize} tokens but the model's vocab_size is {vocabulary}.");
            }
            return tokenizer;
        }
        if (vocabulary == TextTokenizer.Gpt2VocabularySize)
        {
            return TextTokenizer.FromDefinition(new TokenizerDefinition { Kind = TokenizerKind.Gpt2 });
        }
        throw new InvalidDataException(
            $"'{folder}' has no {TokenizerFile} and its vocab_size ({vocabulary}) is not GPT-2's ({TextTokenizer.Gpt2VocabularySize}): the tokenizer is unknown.");
    }
}

namespace Transformers.ML;

/// <summary>Options of the ONNX exports. The image options (ImageSize, InputHeight, InputWidth, InputChannels) are the ViT's: a GPT or translator export refuses them, naming the one set.</summary>
public sealed class OnnxExportOptions
{
    /// <summary>
    /// ViT: side of the images the graph takes; null: the model's own. Another size interpolates the position embeddings
    /// (as fine-tuning at a new resolution does); ONNX inputs then have that fixed height and width.
    /// </summary>
    public int? ImageSize { get; set; }

    /// <summary>
    /// ViT: height of the images the graph takes, with <see cref="InputWidth"/> (both or neither); null: the size the model
    /// resamples an image to first (ImageClassificationTransformer.OnnxInputSize without these options). Set both to your
    /// images' own size (496 x 512 for most OCT scans) and the graph does that first resampling itself, as the model does
    /// (area averaging to shrink, bilinear to enlarge): ML.NET's ResizeImages then leaves images of that size as they are,
    /// and ApplyOnnxModel gives the TorchSharp model's probabilities for them. (ResizeImages resamples differently from the
    /// model: at the default size it changed the class of 13 of 600 real OCT scans.) Costs the graph its larger input
    /// (about 1.3-1.4x the time at 496 x 512 against the OCT recipe's 213 x 256). A model that pads whole images to a square
    /// (ImageFit.Pad without a band) needs them: the graph then pads as the model does.
    /// </summary>
    public int? InputHeight { get; set; }

    /// <summary>ViT: width of the images the graph takes, with <see cref="InputHeight"/> (both or neither; see there).</summary>
    public int? InputWidth { get; set; }

    /// <summary>
    /// ViT: channels of the "pixels" input: 3 (RGB in [0, 1], as ML.NET's ExtractPixels with scaleImage 1/255; converted to
    /// luma in the graph for a grayscale model, as the TorchSharp model does) or the model's own channel count. Default 3.
    /// </summary>
    public int InputChannels { get; set; } = 3;

    /// <summary>
    /// Weights of the exported matrix products (every Linear layer, the token tables and the output projection): float32 (default) or int8
    /// with dynamic quantization of the activations, per tensor (<see cref="OnnxQuantization.DynamicInt8"/>, the fastest) or per
    /// row (<see cref="OnnxQuantization.DynamicInt8PerRow"/>, whose rows do not depend on their batch). Applies to all three models.
    /// </summary>
    public OnnxQuantization Quantization { get; set; } = OnnxQuantization.None;

    /// <summary>
    /// GPT and translator (its decoder): self-attention caches as buffers that ONNX Runtime writes in place, so that no step
    /// copies the cache. The graph then uses ONNX Runtime's GroupQueryAttention (domain com.microsoft; the file runs in ONNX
    /// Runtime only) and takes an attention_mask (batch, past + new) of ones and past_key_i / past_value_i buffers of shape
    /// (batch, heads, capacity, head size); present_key_i / present_value_i are the same buffers, bound as both input and
    /// output (IOBinding), which <see cref="TextGeneration.OnnxTextGenerator"/> and <see cref="Translation.OnnxTranslator"/>
    /// do (the translator reorders the buffers' rows in place for beam search; the generator always keeps its cache: the
    /// graph has no form without one, so GenerationOptions.UseKeyValueCache = false changes nothing for it). Default false:
    /// standard ONNX, pasts and new keys concatenated into a new present at every step (the layout of Hugging Face's exports
    /// and of ExportToOnnxRuntimeGenAI).
    /// </summary>
    public bool SharedCacheBuffers { get; set; }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first image option set for an export of <paramref name="model"/>,
    /// which takes no image (the GPT, the translator): an option that would be ignored there is a mistake to say.
    /// </summary>
    internal void RejectImageOptions(string model)
    {
        string? set = ImageSize is not null ? $"ImageSize ({ImageSize})"
            : InputHeight is not null ? $"InputHeight ({InputHeight})"
            : InputWidth is not null ? $"InputWidth ({InputWidth})"
            : InputChannels != 3 ? $"InputChannels ({InputChannels})"
            : null;
        if (set is not null)
        {
            throw new ArgumentException($"OnnxExportOptions.{set} applies to the image classifier's export; the {model} takes no image (leave it unset, or 3 for InputChannels).", "options");
        }
    }
}

/// <summary>How an ONNX export stores the weights of its matrix products.</summary>
public enum OnnxQuantization
{
    /// <summary>float32, as trained.</summary>
    None,

    /// <summary>
    /// int8 weights with one scale per output channel (symmetric: max |w| of the channel maps to 63, seven bits, so that x64
    /// CPUs without VNNI, whose integer product adds pairs of products in 16 bits, cannot saturate), and activations
    /// quantized to uint8 at run time, per tensor (ONNX DynamicQuantizeLinear + MatMulInteger, the pattern of ONNX Runtime's
    /// quantize_dynamic, which ONNX Runtime fuses into one kernel): about 4x smaller matrices and faster products on CPUs
    /// with integer dot-product instructions. Token tables are int8 too, with one scale per token, shared by the lookup and
    /// the tied output projection. Softmax, normalisation, attention scores, position tables and convolutions stay float32.
    /// </summary>
    DynamicInt8,

    /// <summary>
    /// As <see cref="DynamicInt8"/>, but each row of a product's input (each token of each sequence, each image patch) is
    /// quantized with its own scale (symmetric: max |x| of the row maps to 127), so that a row's result does not depend on
    /// the other rows of its batch: a prompt generates in a padded batch the text it generates alone, a sentence and each of
    /// its beams translate as they would alone. ONNX Runtime has no fused kernel for it (about ten nodes per product instead of
    /// one), so it is slower than <see cref="DynamicInt8"/>, most for small models where each node's overhead weighs most.
    /// </summary>
    DynamicInt8PerRow,
}

namespace Transformers.ML;

/// <summary>Options of the ONNX exports.</summary>
public sealed class OnnxExportOptions
{
    /// <summary>
    /// ViT: side of the images the graph takes; null: the model's own. Another size interpolates the position embeddings
    /// (as fine-tuning at a new resolution does); ONNX inputs then have that fixed height and width.
    /// </summary>
    public int? ImageSize { get; set; }

    /// <summary>
    /// ViT: channels of the "pixels" input: 3 (RGB in [0, 1], as ML.NET's ExtractPixels with scaleImage 1/255; converted to
    /// luma in the graph for a grayscale model, as the TorchSharp model does) or the model's own channel count. Default 3.
    /// </summary>
    public int InputChannels { get; set; } = 3;
}

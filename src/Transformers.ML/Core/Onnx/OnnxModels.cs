using Microsoft.ML.OnnxRuntime;

namespace Transformers.ML.Core.Onnx;

/// <summary>Loading exported models into ONNX Runtime and reading their metadata.</summary>
internal static class OnnxModels
{
    public static InferenceSession Session(string path, SessionOptions? options)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        }
        try
        {
            options ??= new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
            return new InferenceSession(path, options);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            // The library references ONNX Runtime's managed API only; the application chooses the native runtime.
            throw new InvalidOperationException(
                "ONNX Runtime's native library could not be loaded: add the package Microsoft.ML.OnnxRuntime (CPU) or " +
                $"Microsoft.ML.OnnxRuntime.Gpu to the application ({e.GetType().Name}: {e.Message}).", e);
        }
    }

    /// <summary>The custom metadata, after checking that the model was exported by <paramref name="capability"/>.</summary>
    public static IReadOnlyDictionary<string, string> Metadata(InferenceSession session, string source, string capability)
    {
        Dictionary<string, string> metadata = session.ModelMetadata.CustomMetadataMap;
        string found = metadata.TryGetValue("capability", out string? c) ? c : "missing";
        if (found != capability)
        {
            throw new InvalidDataException($"'{source}' holds an ONNX model of kind '{found}'; expected a Transformers.ML export of kind '{capability}'.");
        }
        return metadata;
    }
}

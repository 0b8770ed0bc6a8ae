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
            // Errors only, as ONNX Runtime GenAI logs: at the default level ONNX Runtime warns on every load of a GPT export
            // that its optional input logits_to_keep (an initializer listed among the inputs, ONNX's way to give an input a
            // default) "will not be treated as constant", which is what that input is for.
            options ??= new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
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

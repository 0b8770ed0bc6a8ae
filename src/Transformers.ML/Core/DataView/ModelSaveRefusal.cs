namespace Transformers.ML.Core.DataView;

/// <summary>
/// The answer of every transformer of this library to <c>mlContext.Model.Save</c>: ML.NET's model format cannot hold
/// components from outside ML.NET (its writers are internal), so the message names the model's own Save and the loader.
/// </summary>
internal static class ModelSaveRefusal
{
    /// <param name="type">The transformer's type, named in the message.</param>
    /// <param name="loader">The catalog method that loads the model ("LoadTranslation").</param>
    /// <param name="alternative">What else holds the model in an ML.NET pipeline (", or export to ONNX ..."), or "".</param>
    public static NotSupportedException For(Type type, string loader, string alternative = "") => new(
        $"{("AEIOU".Contains(type.Name[0]) ? "An" : "A")} {type.Name} cannot be written by mlContext.Model.Save (ML.NET keeps the writers of its model format internal). " +
        $"Use model.Save(path) and mlContext.Transformers().{loader}(path){alternative}.");
}

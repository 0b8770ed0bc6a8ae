using Microsoft.ML;
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Tests.TextGeneration;

/// <summary>
/// A GPT whose greedy text varies from prompt to prompt and position to position, for the tests that compare greedy
/// text made two ways (with and without the cache, batched and alone, TorchSharp and ONNX Runtime). Briefly trained
/// models answer every prompt greedily with one repeated character ("eeee", "////"), which a cache at the wrong
/// position, a dropped mask or wrong positions give as well, so such comparisons could not fail. This one is the Tiny
/// preset (characters, a 64-token context) trained until it nearly knows the first 1,000 characters of Shakespeare by
/// heart: 600 batches at a learning rate of 1e-2, about 5 s, once per test run; each caller loads a copy of its own.
/// </summary>
internal static class VariedGpt
{
    private static readonly Lazy<string> SavedFile = TestUtil.TrainedOnce((ml, path) =>
    {
        TextGenerationOptions options = TextGenerationTests.Tiny();
        options.Epochs = 1;
        options.BatchesPerEpoch = 600;
        options.LearningRate = 1e-2;
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(TextGenerationTests.Load(ml, TrainingText));
        model.Save(path);
    });

    /// <summary>The text it learns: Shakespeare's first 1,000 characters.</summary>
    public static string TrainingText => TestData.ShakespeareHead[..1_000];

    /// <summary>A copy of the model of its own for the caller (disposed by the caller).</summary>
    public static TextGenerationTransformer Load(MLContext ml) => ml.Transformers().LoadTextGeneration(SavedFile.Value);
}

using Microsoft.ML;
using Transformers.ML.Translation;

namespace Transformers.ML.Tests.Translation;

/// <summary>
/// A translator whose outputs differ from sentence to sentence, for the tests that compare translations made two ways
/// (TorchSharp and ONNX Runtime, float32 and int8). Trained briefly (3 epochs of 1,500 pairs) a Tiny translator answered
/// every sentence with one word ("Ie." greedy, "Tom." with beams: 2 distinct of 26), which a wrong mask or cache would
/// give as well. This one is <see cref="TranslationTests"/>' recipe (the Tiny model, 12 epochs of the 4,000 pairs, about
/// 10 s), trained once per test run and saved; each caller loads a copy of its own. The pairs are its training pairs.
/// </summary>
internal static class VariedTranslator
{
    public static IReadOnlyList<Pair> Pairs { get; } = TestData.SentencePairLines
        .Select(l => l.Split('\t')).Select(p => new Pair { English = p[0], Spanish = p[1] }).ToList();

    private static readonly Lazy<string> SavedFile = TestUtil.TrainedOnce((ml, path) =>
    {
        using TranslationTransformer model = ml.Transformers().Translation(TranslationTests.Tiny()).Fit(ml.Data.LoadFromEnumerable(Pairs));
        model.Save(path);
    });

    /// <summary>A copy of the model of its own for the caller (disposed by the caller).</summary>
    public static TranslationTransformer Load(MLContext ml) => ml.Transformers().LoadTranslation(SavedFile.Value);
}

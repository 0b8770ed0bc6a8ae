using Microsoft.ML;
using Transformers.ML.Core.Tokenization;
using Transformers.ML.TextGeneration;

namespace Transformers.ML.Tests.TextGeneration;

/// <summary>End-to-end quality: minutes of training, so not in the default run (dotnet test --filter TestCategory=Slow).</summary>
[TestClass]
public sealed class TextGenerationSlowTests
{
    [TestMethod]
    [TestCategory("Slow")]
    public void CharacterModelLearnsShakespeareLikeNanoGptAndBpeTrainsToo()
    {
        var ml = new MLContext(seed: 1);
        string text = TestData.Shakespeare;
        IDataView data = TextGenerationTests.Load(ml, text);
        var options = new TextGenerationOptions
        {
            Preset = GptPreset.Small,
            BatchSize = 12,
            Epochs = 20,
            BatchesPerEpoch = 100,
            LearningRate = 1e-3,
            WarmupSteps = 100,
            ValidationBatches = 20,
        };
        options.Model = TextGenerationOptions.PresetConfig(GptPreset.Small);
        options.Model.MaxSequenceLength = 64;
        options.Model.Dropout = 0;
        options.Model.AttentionDropout = 0;
        using TextGenerationTransformer model = ml.Transformers().TextGeneration(options).Fit(data);
        double loss = model.EpochReports[^1].ValidationValue!.Value;
        // nanoGPT's CPU run reaches 1.88 after these 2000 steps; this model gets 1.87 (about 1.5 minutes here).
        Assert.IsLessThan(1.95, loss, $"validation loss after 2000 steps: {loss:F3}");

        options.Tokenizer = TokenizerKind.BytePairEncoding;
        options.VocabularySize = 1000;
        options.Epochs = 3;
        using TextGenerationTransformer bpe = ml.Transformers().TextGeneration(options).Fit(data);
        var reports = bpe.EpochReports;
        Assert.IsLessThan(reports[0].ValidationValue!.Value, reports[^1].ValidationValue!.Value);
        Assert.AreEqual(1000, bpe.VocabularySize);
    }
}

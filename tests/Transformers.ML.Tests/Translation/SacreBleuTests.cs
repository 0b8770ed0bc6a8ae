using Transformers.ML.Translation;

namespace Transformers.ML.Tests.Translation;

/// <summary>Our BLEU and chrF against the numbers sacreBLEU publishes for its own examples.</summary>
[TestClass]
public sealed class SacreBleuTests
{
    private static readonly string[] Hypotheses = { "The dog bit the man.", "It wasn't surprising.", "The man had just bitten him." };

    private static readonly string[][] References =
    {
        new[] { "The dog bit the man.", "It was not unexpected.", "The man bit him first." },
        new[] { "The dog had bit the man.", "No one was surprised.", "The man had bitten the dog." },
    };

    [TestMethod]
    public void BleuEqualsSacreBleusReadmeExample()
    {
        // sacreBLEU README: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)
        TranslationMetrics m = SacreBleu.Score(Hypotheses, References);
        Assert.AreEqual(48.530827, m.Bleu, 1e-5);
        Assert.AreEqual(82.4, m.Precisions[0], 0.05);
        Assert.AreEqual(50.0, m.Precisions[1], 0.05);
        Assert.AreEqual(45.5, m.Precisions[2], 0.05);
        Assert.AreEqual(37.5, m.Precisions[3], 0.05);
        Assert.AreEqual(0.943, m.BrevityPenalty, 5e-4);
        Assert.AreEqual(17, m.HypothesisLength);
        Assert.AreEqual(18, m.ReferenceLength);
    }

    [TestMethod]
    public void ChrFEqualsSacreBleusReadmeExampleAndHuggingFacesExamples()
    {
        Assert.AreEqual(59.73, SacreBleu.Score(Hypotheses, References).ChrF, 0.005);
        // Hugging Face's metric card for chrF (sacreBLEU underneath).
        Assert.AreEqual(61.576379378113785, SacreBleu.Score(
            new[] { "The relationship between Obama and Netanyahu is not exactly friendly." },
            new[] { new[] { "The ties between Obama and Netanyahu are not particularly friendly." } }).ChrF, 1e-9);
        Assert.AreEqual(84.64214891738334, SacreBleu.Score(
            new[] { "The relationship between cats and dogs is not exactly friendly.", "a good bookshop is just a genteel black hole that knows how to read." },
            new[] { new[] { "The relationship between dogs and cats is not exactly friendly.", "A good bookshop is just a genteel Black Hole that knows how to read." } }).ChrF, 1e-9);
    }

    [TestMethod]
    public void Tokenizer13aSplitsPunctuationButNotNumbersOrApostrophes()
    {
        CollectionAssert.AreEqual(new[] { "It", "wasn't", "3.5", "or", "1,000", "(", "no", ")", "!", "a-b", "3", "-", "4" },
            SacreBleu.Tokenize13a("It wasn't 3.5 or 1,000 (no)! a-b 3-4"));
        CollectionAssert.AreEqual(new[] { "\"", "x", "&", "y", "\"", "." }, SacreBleu.Tokenize13a("&quot;x &amp; y&quot;."));
    }

    [TestMethod]
    public void PerfectAndEmptyTranslationsScoreAtTheEnds()
    {
        var refs = new[] { new[] { "I am a student.", "The cat sleeps on the big red sofa." } };
        TranslationMetrics perfect = SacreBleu.Score(refs[0], refs);
        Assert.AreEqual(100.0, perfect.Bleu, 1e-9);
        Assert.AreEqual(100.0, perfect.ChrF, 1e-9);
        TranslationMetrics empty = SacreBleu.Score(new[] { "", "" }, refs);
        Assert.AreEqual(0.0, empty.Bleu, 1e-9);
        Assert.AreEqual(0.0, empty.ChrF, 1e-9);
        Assert.ThrowsExactly<ArgumentException>(() => SacreBleu.Score(new[] { "a" }, refs));
    }
}

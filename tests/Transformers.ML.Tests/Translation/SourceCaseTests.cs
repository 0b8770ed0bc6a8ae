using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Translation;

namespace Transformers.ML.Tests.Translation;

/// <summary>Sentences typed in lower case or in capitals, put in the case of the training sources before translation.</summary>
[TestClass]
public sealed class SourceCaseTests
{
    [TestMethod]
    [DataRow("hola, ¿cómo estás?", "Hola, ¿cómo estás?", false)]
    [DataRow("¿dónde está la biblioteca?", "¿Dónde está la biblioteca?", false)]
    [DataRow("  «ñandú» es una palabra.", "  «Ñandú» es una palabra.", false)]
    [DataRow("HOLA, ¿CÓMO ESTÁS?", "Hola, ¿cómo estás?", true)]
    [DataRow("¡CUIDADO!", "¡Cuidado!", true)]
    [DataRow("EL ÑANDÚ CORRE.", "El ñandú corre.", true)]
    [DataRow("Soy un estudiante", "Soy un estudiante", false)]
    [DataRow("La ONU y la OTAN firmaron.", "La ONU y la OTAN firmaron.", false)]
    [DataRow("iPhone es caro.", "iPhone es caro.", false)]
    [DataRow("3 gatos duermen.", "3 gatos duermen.", false)]
    [DataRow("A", "A", false)]
    [DataRow("¿?", "¿?", false)]
    [DataRow("", "", false)]
    public void ASentenceIsPutInSentenceCaseWhenItsFirstWordIsInLowerCaseOrItIsAllCapitals(string typed, string expected, bool allCapitals)
    {
        Assert.AreEqual(expected, SourceCase.Normalize(typed, out bool capitals));
        Assert.AreEqual(allCapitals, capitals);
    }

    [TestMethod]
    public void TheDefaultFollowsWhetherTheTrainingSourcesBeginWithACapital()
    {
        string[] capitalised = Enumerable.Range(0, 95).Select(i => $"Frase {i}.").Concat(Enumerable.Range(0, 5).Select(i => $"frase {i}.")).ToArray();
        Assert.IsTrue(SourceCase.IsCapitalised(capitalised.Append("123.").Append("¿?"), out double share)); // no letter first: not counted
        Assert.AreEqual(0.95, share, 1e-12);
        Assert.IsFalse(SourceCase.IsCapitalised(capitalised.Select(s => s.ToLowerInvariant()), out share));
        Assert.AreEqual(0, share);
        Assert.IsFalse(SourceCase.IsCapitalised(capitalised.Take(85).Concat(capitalised.Skip(95)).Concat(Enumerable.Repeat("frase.", 5)), out share));
        Assert.AreEqual(85 / 95.0, share, 1e-12);
        Assert.IsFalse(SourceCase.IsCapitalised(new[] { "123", "" }, out share));
    }

    [TestMethod]
    public void SentencesTypedInLowerCaseOrCapitalsTranslateAsTheSentenceCaseOnesOnBothRuntimes()
    {
        var ml = new MLContext(seed: 1);
        using TranslationTransformer model = VariedTranslator.Load(ml);
        Assert.IsTrue(model.NormalizeSourceCase, "the test pairs' sources begin with capitals, so Fit turned it on");
        // Held-out sentences whose only capital is their first letter: sentence case is exactly how they are written.
        string[] written = VariedTranslator.Pairs.Skip(700).Select(p => p.Spanish).Where(s => s.Count(char.IsUpper) == 1 && char.IsUpper(s[0])).Take(12).ToArray();
        Assert.HasCount(12, written);
        string[] lower = written.Select(s => char.ToLowerInvariant(s[0]) + s[1..]).ToArray();
        string[] capitals = written.Select(s => s.ToUpperInvariant()).ToArray();
        string[] expected = model.Translate(written).ToArray();
        Assert.IsTrue(expected.Distinct().Count() >= 6, "the model's translations vary with the sentence");
        CollectionAssert.AreEqual(expected, model.Translate(lower).ToArray(), "first letter in lower case");
        CollectionAssert.AreEqual(expected.Select(t => t.ToUpperInvariant()).ToArray(), model.Translate(capitals).ToArray(), "in capitals");
        IReadOnlyList<TranslationCandidate> nBest = model.TranslateNBest(capitals[0], 2);
        Assert.AreEqual(expected[0].ToUpperInvariant(), nBest[0].Text, "the n-best list too");
        Assert.IsTrue(nBest.All(c => c.Text == c.Text.ToUpperInvariant()), string.Join(" | ", nBest.Select(c => c.Text)));
        CollectionAssert.AreEqual(expected.Select(t => t.ToUpperInvariant()).ToArray(),
            model.Transform(ml.Data.LoadFromEnumerable(capitals.Select(s => new Pair { Spanish = s }))).GetColumn<string>("Translation").ToArray(), "Transform");
        // A text of two sentences, each typed its way.
        Assert.AreEqual($"{expected[0]} {expected[1].ToUpperInvariant()}", model.Translate($"{lower[0]} {capitals[1]}"));
        // A paragraph typed all in lower case is cut at its sentences' ends all the same, and each gets its capital.
        int[] ended = Enumerable.Range(0, written.Length).Where(i => written[i][^1] is '.' or '?' or '!' && !written[i].EndsWith("..", StringComparison.Ordinal)).Take(3).ToArray();
        Assert.HasCount(3, ended);
        string typedParagraph = string.Join(" ", ended.Select(i => written[i].ToLowerInvariant()));
        Assert.AreEqual(string.Join(" ", ended.Select(i => expected[i])), model.Translate(typedParagraph));
        // The attention is the model's for the sentence it reads.
        TranslationAttention attention = model.Attention(lower[0]);
        Assert.AreEqual(expected[0], attention.Translation);
        CollectionAssert.AreEqual(model.Attention(written[0]).Encoder.KeyTokens.ToArray(), attention.Encoder.KeyTokens.ToArray());

        // Off: sentences as typed, which this model, like the example's, translates otherwise.
        model.NormalizeSourceCase = false;
        CollectionAssert.AreEqual(expected, model.Translate(written).ToArray());
        string[] typed = model.Translate(capitals).ToArray();
        Assert.IsTrue(typed.Zip(expected).Count(p => p.First != p.Second.ToUpperInvariant()) >= 6, string.Join(" | ", typed));

        // The export translates as the model does, with the setting it was exported with.
        model.NormalizeSourceCase = true;
        string folder = TestUtil.TempPath("");
        model.ExportToOnnx(folder);
        using OnnxTranslator translator = OnnxTranslator.Load(folder);
        Assert.IsTrue(translator.NormalizeSourceCase);
        CollectionAssert.AreEqual(expected, translator.Translate(lower).ToArray(), "ONNX Runtime, lower case");
        Assert.AreEqual(string.Join(" ", ended.Select(i => expected[i])), translator.Translate(typedParagraph), "ONNX Runtime, a paragraph in lower case");
        CollectionAssert.AreEqual(expected.Select(t => t.ToUpperInvariant()).ToArray(), translator.Translate(capitals).ToArray(), "ONNX Runtime, capitals");
        translator.NormalizeSourceCase = false;
        CollectionAssert.AreEqual(typed, translator.Translate(capitals).ToArray(), "ONNX Runtime, as typed");
    }
}

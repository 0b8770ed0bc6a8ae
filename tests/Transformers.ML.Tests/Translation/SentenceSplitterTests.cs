using Transformers.ML.Translation;

namespace Transformers.ML.Tests.Translation;

/// <summary>Where a text is cut into sentences for translation, and how the translations are joined again.</summary>
[TestClass]
public sealed class SentenceSplitterTests
{
    private static string[] Sentences(string text) => SentenceSplitter.Split(text).Select(s => s.Text).ToArray();

    [TestMethod]
    [DataRow("Estoy en problemas. Necesito tu ayuda.", "Estoy en problemas.|Necesito tu ayuda.")]
    [DataRow("¡Vamos! No puedo esperar más.", "¡Vamos!|No puedo esperar más.")]
    [DataRow("La radio está muy fuerte. ¿Puedes bajarle un poquito?", "La radio está muy fuerte.|¿Puedes bajarle un poquito?")]
    [DataRow("Estoy confusa. ¿Ahora qué hago? ¡Socorro!", "Estoy confusa.|¿Ahora qué hago?|¡Socorro!")]
    [DataRow("Espera... ¿Qué pasó?!? Nada.", "Espera...|¿Qué pasó?!?|Nada.")]
    [DataRow("Dijo: \"Me voy.\" Luego se fue.", "Dijo: \"Me voy.\"|Luego se fue.")]
    [DataRow("Tengo 3 gatos. 2 son negros.", "Tengo 3 gatos.|2 son negros.")]
    [DataRow("No. Gracias.", "No.|Gracias.")]
    [DataRow("Vive en EE. UU. Es médico.", "Vive en EE. UU.|Es médico.")]
    [DataRow("Trabaja en Acme Inc. Le gusta.", "Trabaja en Acme Inc.|Le gusta.")]
    [DataRow("She works for Acme Ltd. Her boss is Dr. Smith.", "She works for Acme Ltd.|Her boss is Dr. Smith.")]
    [DataRow("Soy un estudiante", "Soy un estudiante")]
    public void SentencesEndAtTerminalPunctuationBeforeACapitalOrDigit(string text, string expected) =>
        CollectionAssert.AreEqual(expected.Split('|'), Sentences(text));

    [TestMethod]
    [DataRow("El Sr. García vive en EE. UU. desde 2010.")]
    [DataRow("Los EE. UU. y Acme Inc. y Acme Corp. firmaron.")]
    [DataRow("La Dra. Pérez y el Dr. Gómez llegaron.")]
    [DataRow("J. K. Rowling escribió siete libros.")]
    [DataRow("Mr. Smith met Mrs. Jones at St. Paul's.")]
    [DataRow("El precio es 3.50 euros, etc. y nada más.")]
    [DataRow("Bueno... tal vez mañana.")]
    [DataRow("¿Vienes? ¿no?")]
    [DataRow("Me gusta\nleer libros   por la noche.")]
    public void AbbreviationsInitialsDecimalsLowerCaseAndLineWrapsDoNotEndASentence(string text) =>
        Assert.HasCount(1, Sentences(text), string.Join(" | ", Sentences(text)));

    [TestMethod]
    [DataRow("hola. ¿cómo estás? me llamo juan.", "hola.|¿cómo estás?|me llamo juan.")]
    [DataRow("tengo hambre! vamos a comer.", "tengo hambre!|vamos a comer.")]
    [DataRow("no. gracias.", "no.|gracias.")]
    [DataRow("hola. Me llamo Juan. vivo en Madrid.", "hola.|Me llamo Juan.|vivo en Madrid.")]
    [DataRow("¿vienes? ¿no?", "¿vienes?|¿no?")]
    [DataRow("3 gatos duermen. me gustan.", "3 gatos duermen.|me gustan.")]
    [DataRow("espera... ¿qué pasó?!? nada.", "espera... ¿qué pasó?!?|nada.")]
    [DataRow("vive en ee. uu. Es médico.", "vive en ee. uu.|Es médico.")]
    [DataRow("estoy cansado.\n\nHola. me voy.", "estoy cansado.|Hola. me voy.")]
    public void InAParagraphThatBeginsInLowerCaseASentenceMayBeginWithAnyLetter(string text, string expected) =>
        CollectionAssert.AreEqual(expected.Split('|'), Sentences(text));

    [TestMethod]
    [DataRow("el sr. garcía vive en ee. uu. desde 2010.")]
    [DataRow("compré pan, leche, etc. y nada más.")]
    [DataRow("trabaja en acme inc. y le gusta.")]
    [DataRow("j. k. rowling escribió siete libros.")]
    [DataRow("la dra. pérez llegó.")]
    [DataRow("bueno... tal vez mañana.")]
    [DataRow("vale… nos vemos.")]
    [DataRow("Hola. me llamo Juan.")]
    public void InLowerCaseAbbreviationsInitialsPausesAndListEndsDoNotEndASentence(string text) =>
        Assert.HasCount(1, Sentences(text), string.Join(" | ", Sentences(text)));

    [TestMethod]
    public void WhiteSpaceIsCollapsedInsideAndKeptBetween()
    {
        List<TextSentence> sentences = SentenceSplitter.Split("  Hola.  ¿Qué tal?\nMuy bien,\n  gracias.\n\n \n Adiós.\t ");
        CollectionAssert.AreEqual(new[]
        {
            new TextSentence("Hola.", "  "),
            new TextSentence("¿Qué tal?", "\n"),
            new TextSentence("Muy bien, gracias.", "\n\n \n "),
            new TextSentence("Adiós.", ""),
        }, sentences);
        Assert.AreEqual("Hi.  How are you?\nFine, thanks.\n\n \n Bye.",
            SentenceSplitter.Join(sentences, new[] { "Hi.", "How are you?", "Fine, thanks.", "Bye." }));
        // An empty translation is left out with its separator; a prefix of the sentences joins as far as it goes.
        Assert.AreEqual("Hi.\n\n \n Bye.", SentenceSplitter.Join(sentences, new[] { "Hi.", "", "", "Bye." }));
        Assert.AreEqual("Hi.  How are you?", SentenceSplitter.Join(sentences, new[] { "Hi.", "How are you?" }));
        Assert.AreEqual("", SentenceSplitter.Join(sentences, new[] { "", "", "", "" }));
    }

    [TestMethod]
    [DataRow("")]
    [DataRow("   ")]
    [DataRow(" \n\n\t\r\n ")]
    public void AWhiteSpaceTextHasNoSentences(string text) => Assert.IsEmpty(SentenceSplitter.Split(text));

    [TestMethod]
    public void ParagraphBreaksEndSentencesWithoutPunctuation()
    {
        // Windows line ends, and a line holding only a no-break space, are blank lines too.
        List<TextSentence> sentences = SentenceSplitter.Split("\n\nCapítulo uno\r\n\u00A0\r\nEra de noche. Llovía\n\n");
        CollectionAssert.AreEqual(new[] { "Capítulo uno", "Era de noche.", "Llovía" }, sentences.Select(s => s.Text).ToArray());
        CollectionAssert.AreEqual(new[] { "\r\n\u00A0\r\n", " ", "" }, sentences.Select(s => s.Separator).ToArray());
    }
}

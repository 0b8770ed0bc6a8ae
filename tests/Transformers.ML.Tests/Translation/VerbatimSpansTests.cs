using Microsoft.ML;
using Transformers.ML.Translation;

namespace Transformers.ML.Tests.Translation;

/// <summary>Numbers, addresses, symbols and emoji carried into the translation as written (<see cref="TranslationOptions.CopyVerbatimSpans"/>).</summary>
[TestClass]
public sealed class VerbatimSpansTests
{

    [TestMethod]
    [DataRow("Nací en 1987.", "Nací en ⓪.", "1987")]
    [DataRow("El tren sale a las 10:45.", "El tren sale a las ⓪.", "10:45")]
    [DataRow("Cuesta 3,50 euros; antes 1.000.", "Cuesta ⓪ euros; antes ⓪.", "3,50|1.000")]
    [DataRow("Llama al 555-1234 el 15/03/2024.", "Llama al ⓪ el ⓪.", "555-1234|15/03/2024")]
    [DataRow("Compré 2 manzanas y 3 naranjas.", "Compré ⓪ manzanas y ⓪ naranjas.", "2|3")]
    [DataRow("Visita www.ejemplo.com, o https://ejemplo.com/a?b=1.", "Visita ⓪, o ⓪.", "www.ejemplo.com|https://ejemplo.com/a?b=1")]
    [DataRow("Escribe a juan.perez@ejemplo.es.", "Escribe a ⓪.", "juan.perez@ejemplo.es")]
    [DataRow("Me gusta el café ☕😀.", "Me gusta el café ⓿.", "☕😀")]
    [DataRow("Hace 25°C.", "Hace ⓪C.", "25°")]
    [DataRow("Un mp3 y la COVID19, a las 10:45h.", "Un mp3 y la COVID19, a las 10:45h.", "")]
    [DataRow("Escribe ⓪ y ⓿ así.", "Escribe ⓿ y ⓿ así.", "⓪|⓿")]
    [DataRow("Son 3 ☕ y 2 🍰.", "Son ⓪ ⓿ y ⓪ ⓿.", "3|☕|2|🍰")]
    [DataRow("Soy un estudiante.", "Soy un estudiante.", "")]
    [DataRow("", "", "")]
    public void NumbersAddressesSymbolsAndEmojiAreMaskedByClassInOrderAndThoseThatTouchAreOne(string text, string masked, string spans)
    {
        Assert.AreEqual(masked, VerbatimSpans.Mask(text, out string[] found));
        CollectionAssert.AreEqual(spans.Length == 0 ? Array.Empty<string>() : spans.Split('|'), found);
        Assert.AreEqual(text.Trim(), VerbatimSpans.Restore(masked, found), "restoring the masked text gives it back");
    }

    [TestMethod]
    [DataRow("Tengo 25 años.", "I'm 25 years old.", "Tengo ⓪ años.", "I'm ⓪ years old.")]
    [DataRow("Hay 7 días en una semana.", "There are seven days in a week.", "Hay 7 días en una semana.", "There are seven days in a week.")]
    [DataRow("Cuesta 3,50 euros.", "It costs 3.50 euros.", "Cuesta 3,50 euros.", "It costs 3.50 euros.")]
    [DataRow("Entre 3 y 5.", "Between 3 and 5.", "Entre ⓪ y ⓪.", "Between ⓪ and ⓪.")]
    [DataRow("Entre 5 y 3.", "Between 3 and 5.", "Entre ⓪ y 3.", "Between 3 and ⓪.")] // crossing: the second pair would come out of order
    [DataRow("Tengo 2 perros y 2 gatos.", "I have 2 dogs and two cats.", "Tengo ⓪ perros y 2 gatos.", "I have ⓪ dogs and two cats.")]
    [DataRow("Tom es mi amigo.", "Tom is my friend.", "Tom es mi amigo.", "Tom is my friend.")]
    public void ATrainingPairMasksTheSpansBothSidesHoldInTheSameOrder(string source, string target, string maskedSource, string maskedTarget)
    {
        Assert.AreEqual((maskedSource, maskedTarget), VerbatimSpans.MaskPair(source, target));
        // As the model reads a source when it translates: every source span masked.
        (string read, string written, string[] sourceSpans, string[] targetSpans) = VerbatimSpans.MaskPair(source, target, everySourceSpan: true);
        Assert.AreEqual(VerbatimSpans.Mask(source, out string[] all), read);
        CollectionAssert.AreEqual(all, sourceSpans);
        Assert.AreEqual(maskedTarget, written);
        Assert.AreEqual(target, VerbatimSpans.Restore(written, targetSpans));
    }

    [TestMethod]
    [DataRow("I was born in ⓪.", "1987", "I was born in 1987.")]
    [DataRow("⓪ and ⓪ and ⓪.", "2|3", "2 and 3 and.")] // a placeholder past the spans is dropped with its space
    [DataRow("I have ⓪ dogs.", "2|3", "I have 2 dogs.")] // a span the translation left out is lost
    [DataRow("I like coffee.", "☕", "I like coffee.")]
    [DataRow("I have ⓪ cakes ⓿ and ⓪ coffees ⓿.", "3|☕|2|🍰", "I have 3 cakes ☕ and 2 coffees 🍰.")] // each class in its order
    [DataRow("⓿ I have ⓪.", "7", "I have 7.")]
    [DataRow("⓪", "", "")]
    public void TheTranslationsPlaceholdersTakeTheSpansInOrder(string translation, string spans, string expected)
    {
        Assert.AreEqual(expected, VerbatimSpans.Restore(translation, spans.Length == 0 ? Array.Empty<string>() : spans.Split('|')));
    }

    [TestMethod]
    [DataRow("Gracias.", "Thanks.", "Gracias ⓿.", "Thanks ⓿.")]
    [DataRow("¿Vienes?", "Are you coming?", "¿Vienes ⓿?", "Are you coming ⓿?")]
    [DataRow("Dijo \"hola\".", "He said \"hello.\"", "Dijo \"hola ⓿\".", "He said \"hello ⓿.\"")]
    [DataRow("Hola ", "Hi", "Hola ⓿", "Hi ⓿")]
    public void SomeTrainingPairsGetAPlaceholderAtTheirEndBeforeTheirFinalPunctuation(string source, string target, string expectedSource, string expectedTarget)
    {
        Assert.AreEqual((expectedSource, expectedTarget), VerbatimSpans.AppendPlaceholder(source, target));
    }

    [TestMethod]
    public void TheSettingIsReadFromTheMetadataAndAbsentMeansAModelTrainedWithoutIt()
    {
        Assert.IsFalse(TranslationCodec.ReadCopyVerbatimSpans(new Dictionary<string, string>(), "old.safetensors"));
        Assert.IsTrue(TranslationCodec.ReadCopyVerbatimSpans(new Dictionary<string, string> { [TranslationCodec.CopyVerbatimSpansKey] = "true" }, "m"));
        var bad = Assert.ThrowsExactly<InvalidDataException>(() =>
            TranslationCodec.ReadCopyVerbatimSpans(new Dictionary<string, string> { [TranslationCodec.CopyVerbatimSpansKey] = "yes" }, "m.safetensors"));
        StringAssert.Contains(bad.Message, "copy_verbatim_spans");
        StringAssert.Contains(bad.Message, "m.safetensors");
    }

    // Sentences whose numbers a model copies: the templates of the training pairs, with numbers of one to three digits
    // (times of two), and held-out sentences with numbers of five to seven digits that no training pair holds.
    private static readonly (string Spanish, string English)[] Templates =
    {
        ("Tengo {0} libros.", "I have {0} books."),
        ("Costó {0} dólares.", "It cost {0} dollars."),
        ("Hay {0} personas aquí.", "There are {0} people here."),
        ("El tren sale a las {0}.", "The train leaves at {0}."),
        ("Mi número es el {0}.", "My number is {0}."),
        ("Nos vemos a las {0}.", "See you at {0}."),
    };

    private static string Number(Random random, int template, bool heldOut) => template is 3 or 5
        ? $"{random.Next(heldOut ? 10 : 1, heldOut ? 24 : 13)}:{random.Next(heldOut ? 0 : 10, 60):00}" + (heldOut ? $":{random.Next(10, 60)}" : "")
        : random.Next(heldOut ? 10_000 : 1, heldOut ? 10_000_000 : 1_000).ToString(System.Globalization.CultureInfo.InvariantCulture);

    [TestMethod]
    public void AModelTrainedWithPlaceholdersCopiesNumbersItNeverSawOnBothRuntimes()
    {
        var random = new Random(7);
        // A third of them end with an emoji on both sides, as a corpus of chats would (Tatoeba has none).
        string[] emoji = { "📚", "👍", "☕", "❤️", "🙂" };
        var numbered = Enumerable.Range(0, 900).Select(i =>
        {
            string n = Number(random, i % Templates.Length, heldOut: false);
            string end = i % 3 == 0 ? " " + emoji[i / 3 % emoji.Length] + "." : ".";
            return new Pair { Spanish = string.Format(Templates[i % Templates.Length].Spanish, n)[..^1] + end, English = string.Format(Templates[i % Templates.Length].English, n)[..^1] + end };
        });
        var train = VariedTranslator.Pairs.Take(2000).Concat(numbered).ToList();
        var heldOut = Enumerable.Range(0, 24).Select(i => (Template: i % Templates.Length, Number: Number(random, i % Templates.Length, heldOut: true))).ToList();
        string[] sources = heldOut.Select(h => string.Format(Templates[h.Template].Spanish, h.Number)).ToArray();

        var ml = new MLContext(seed: 1);
        var logged = new List<string>();
        ml.Log += (_, e) => { lock (logged) { logged.Add(e.Message); } };
        using TranslationTransformer copying = ml.Transformers().Translation(TranslationTests.Tiny()).Fit(ml.Data.LoadFromEnumerable(train));
        Assert.IsTrue(copying.CopiesVerbatimSpans);
        string said = logged.Single(m => m.Contains("training pair(s) hold a number", StringComparison.Ordinal));
        var count = System.Text.RegularExpressions.Regex.Match(said, @"(\d+) of 2900 training pair");
        Assert.IsTrue(count.Success && int.Parse(count.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) is >= 900 and < 950, said);
        string[] translations = copying.Translate(sources).ToArray();
        int copied = translations.Zip(heldOut).Count(t => t.First.Contains(t.Second.Number, StringComparison.Ordinal));
        Assert.IsGreaterThanOrEqualTo(22, copied, string.Join(" | ", translations));
        Assert.IsFalse(translations.Any(VerbatimSpans.HasPlaceholder), "no placeholder reaches the user");
        // A sentence without a letter is its own translation, alone or in a text.
        CollectionAssert.AreEqual(new[] { "48213", "10:45", "😀", "?!" }, copying.Translate(new[] { "48213", " 10:45 ", "😀", "?!" }).ToArray());
        Assert.AreEqual($"{translations[0]} 123", copying.Translate($"{sources[0]} 123"));
        // An emoji at the end of sentences that held none in training (the template pairs' and those given a placeholder
        // at their end taught it).
        Assert.IsTrue(count.Success && System.Text.RegularExpressions.Regex.Match(said, @"and (\d+) more get one at their end") is { Success: true } more
            && int.Parse(more.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) is >= 20 and <= 70, said);
        string[] ended = VariedTranslator.Pairs.Skip(2000).Select(p => p.Spanish).Where(s => s.EndsWith('.') && s.Length < 30).Take(12).ToArray();
        string[] withEmoji = copying.Translate(ended.Select(s => s[..^1] + " 😀.").ToList()).ToArray();
        Assert.IsGreaterThanOrEqualTo(10, withEmoji.Count(t => t.Contains("😀", StringComparison.Ordinal)), string.Join(" | ", withEmoji));

        // The setting travels with the model file and the export, which translate alike.
        string path = TestUtil.TempPath(".safetensors");
        copying.Save(path);
        using (TranslationTransformer reloaded = ml.Transformers().LoadTranslation(path))
        {
            Assert.IsTrue(reloaded.CopiesVerbatimSpans);
            CollectionAssert.AreEqual(translations, reloaded.Translate(sources).ToArray());
        }
        string folder = TestUtil.TempPath("");
        copying.ExportToOnnx(folder);
        using (OnnxTranslator translator = OnnxTranslator.Load(folder))
        {
            Assert.IsTrue(translator.CopiesVerbatimSpans);
            CollectionAssert.AreEqual(translations, translator.Translate(sources).ToArray(), "ONNX Runtime");
            Assert.AreEqual("48213", translator.Translate("48213"));
        }
        // Two sentences of one text, each with its own numbers; the attention labels the placeholder with its span.
        Assert.AreEqual($"{translations[0]} {translations[1]}", copying.Translate($"{sources[0]} {sources[1]}"));
        TranslationAttention attention = copying.Attention(sources[0]);
        Assert.AreEqual(translations[0], attention.Translation);
        CollectionAssert.Contains(attention.Encoder.KeyTokens.Select(t => t.Trim()).ToArray(), heldOut[0].Number, string.Join(" ", attention.Encoder.KeyTokens));

        // The same training without placeholders has to spell the numbers, and gets most of these wrong.
        TranslationOptions plain = TranslationTests.Tiny();
        plain.CopyVerbatimSpans = false;
        using TranslationTransformer spelling = new MLContext(seed: 1).Transformers().Translation(plain).Fit(ml.Data.LoadFromEnumerable(train));
        Assert.IsFalse(spelling.CopiesVerbatimSpans);
        string[] spelled = spelling.Translate(sources).ToArray();
        int right = spelled.Zip(heldOut).Count(t => t.First.Contains(t.Second.Number, StringComparison.Ordinal));
        Assert.IsLessThan(copied - 8, right, string.Join(" | ", spelled));
    }
}

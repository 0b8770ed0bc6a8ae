// The settings a translator decodes with, which travel with the model: written into its file and into both graphs of
// its ONNX export, and read back from either, here once for both.
namespace Transformers.ML.Translation;

/// <summary>
/// A translator's decoding settings: <see cref="TranslationTransformer.BeamSize"/>, <see cref="TranslationTransformer.LengthPenalty"/>,
/// <see cref="TranslationTransformer.SplitSentences"/> and <see cref="TranslationTransformer.NormalizeSourceCase"/>.
/// </summary>
internal sealed record TranslatorSettings(int BeamSize, double LengthPenalty, bool SplitSentences, bool NormalizeSourceCase)
{
    /// <summary>
    /// Metadata key of [beam size, length penalty] in JSON (absent from files and exports written before 2026-12-07:
    /// beam 4, length penalty 0.6).
    /// </summary>
    public const string DecodingKey = "decoding";

    /// <summary>Metadata key of <see cref="SplitSentences"/>, "true" or "false" (absent before 2026-12-07: true).</summary>
    public const string SplitSentencesKey = "split_sentences";

    /// <summary>Metadata key of <see cref="NormalizeSourceCase"/>, "true" or "false" (absent before 2026-12-07: true).</summary>
    public const string NormalizeSourceCaseKey = "normalize_source_case";

    /// <summary>The metadata entries of these settings, as the model file and the export write them.</summary>
    public IEnumerable<KeyValuePair<string, string>> Metadata()
    {
        yield return new(DecodingKey, System.Text.Json.JsonSerializer.Serialize(new[] { BeamSize, LengthPenalty }));
        yield return new(SplitSentencesKey, SplitSentences ? "true" : "false");
        yield return new(NormalizeSourceCaseKey, NormalizeSourceCase ? "true" : "false");
    }

    /// <summary>
    /// The settings in a model file's or an export's metadata (an absent one: its default); an unreadable value or one
    /// out of range fails with an <see cref="InvalidDataException"/> that names <paramref name="source"/>.
    /// </summary>
    public static TranslatorSettings Read(IReadOnlyDictionary<string, string> metadata, string source)
    {
        (int beamSize, double lengthPenalty) = Decoding(metadata.GetValueOrDefault(DecodingKey), source);
        return new TranslatorSettings(beamSize, lengthPenalty, Flag(metadata, SplitSentencesKey, source, absent: true), Flag(metadata, NormalizeSourceCaseKey, source, absent: true));
    }

    private static (int BeamSize, double LengthPenalty) Decoding(string? value, string source)
    {
        if (value is null)
        {
            return (4, 0.6);
        }
        double[]? decoding = null;
        try
        {
            decoding = System.Text.Json.JsonSerializer.Deserialize<double[]>(value);
        }
        catch (System.Text.Json.JsonException)
        {
        }
        return decoding is [>= 1 and <= 64, >= 0 and <= 10] && decoding[0] == Math.Floor(decoding[0])
            ? ((int)decoding[0], decoding[1])
            : throw new InvalidDataException($"'{source}' has unreadable decoding settings (metadata '{DecodingKey}' is '{value}'; expected [beam size 1..64, length penalty 0..10]).");
    }

    /// <summary>
    /// A "true" or "false" setting of a model file's or an export's metadata, <paramref name="absent"/> when the file does
    /// not record it; another value fails with an <see cref="InvalidDataException"/> that names <paramref name="source"/>.
    /// </summary>
    internal static bool Flag(IReadOnlyDictionary<string, string> metadata, string key, string source, bool absent) => metadata.GetValueOrDefault(key) switch
    {
        null => absent,
        "true" => true,
        "false" => false,
        string value => throw new InvalidDataException($"'{source}' has an unreadable setting (metadata '{key}' is '{value}'; expected true or false)."),
    };
}

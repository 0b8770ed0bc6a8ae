// Row classes of the data sets under shared/data that more than one program loads through ML.NET.
using Microsoft.ML.Data;

namespace Transformers.ML.Examples;

/// <summary>A line of the Tatoeba sentence-pair file (spa-eng.txt from manythings.org): English, tab, Spanish, tab, attribution.</summary>
public sealed class SentencePair
{
    [LoadColumn(0)]
    public string English { get; set; } = "";

    [LoadColumn(1)]
    public string Spanish { get; set; } = "";
}

/// <summary>One text document, e.g. a whole book, as one row.</summary>
public sealed class BookText
{
    public string Text { get; set; } = "";
}

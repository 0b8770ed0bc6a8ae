using Microsoft.ML;
using Microsoft.ML.Data;

namespace Transformers.ML.Core.DataView;

/// <summary>Reading and describing the text columns that the capabilities train on and add.</summary>
internal static class TextColumns
{
    /// <summary>Every value of a Text column; the message names the column and what the data has when it is missing or not text.</summary>
    public static List<string> Read(IDataView data, string name)
    {
        DataViewSchema.Column column = TextColumn(data, name);
        var values = new List<string>();
        using DataViewRowCursor cursor = data.GetRowCursor(new[] { column });
        ValueGetter<ReadOnlyMemory<char>> getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            values.Add(value.ToString());
        }
        return values;
    }

    /// <summary>The Text column <paramref name="name"/> of <paramref name="data"/>; the message names what the data has when it is missing or not text.</summary>
    public static DataViewSchema.Column TextColumn(IDataView data, string name)
    {
        DataViewSchema.Column column = data.Schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(name), $"The data has no column '{name}'; it has: {string.Join(", ", data.Schema.Select(c => c.Name))}.");
        if (column.Type is not TextDataViewType)
        {
            throw new ArgumentOutOfRangeException(nameof(name), $"Column '{name}' is {column.Type}; expected Text (string).");
        }
        return column;
    }

    /// <summary>
    /// The values of a Text column row by row, one string at a time (a corpus larger than memory streams through). A row
    /// that cannot be read, or holds text that is not valid Unicode (a lone surrogate: it has no UTF-8 form), is refused
    /// with its row number; <paramref name="onReplacement"/> hears of rows holding U+FFFD, the mark of undecodable bytes.
    /// </summary>
    public static IEnumerable<string> Stream(IDataView data, string name, Action<long>? onReplacement = null)
    {
        DataViewSchema.Column column = TextColumn(data, name);
        return Rows();

        IEnumerable<string> Rows()
        {
            using DataViewRowCursor cursor = data.GetRowCursor(new[] { column });
            ValueGetter<ReadOnlyMemory<char>> getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> value = default;
            long row = 0;
            while (true)
            {
                string text = "";
                bool more;
                try
                {
                    more = cursor.MoveNext();
                    if (more)
                    {
                        getter(ref value);
                        text = value.ToString();
                    }
                }
                catch (Exception e) when (e is IOException or InvalidOperationException or FormatException or UnauthorizedAccessException)
                {
                    throw new InvalidDataException($"Row {row} of column '{name}' cannot be read: {e.Message}", e);
                }
                if (!more)
                {
                    yield break;
                }
                int bad = InvalidUtf16(text);
                if (bad >= 0)
                {
                    throw new InvalidDataException(
                        $"Row {row} of column '{name}' is not valid Unicode text: a lone surrogate (0x{(int)text[bad]:X4}) at character {bad}, which has no UTF-8 form.");
                }
                if (onReplacement is not null && text.Contains('\uFFFD'))
                {
                    onReplacement(row);
                }
                row++;
                yield return text;
            }
        }
    }

    /// <summary>The index of the first lone surrogate of <paramref name="text"/>, or -1.</summary>
    internal static int InvalidUtf16(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    i++;
                    continue;
                }
                return i;
            }
            if (char.IsLowSurrogate(c))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>
    /// The estimator output schema: the input's columns plus a Text column <paramref name="output"/>, after checking that
    /// <paramref name="input"/> is a Text column. SchemaShape.Column has no public constructor; a copy of a text column has
    /// exactly the output's shape, so ML.NET's CopyColumns estimator describes it.
    /// </summary>
    public static SchemaShape WithTextOutput(MLContext context, SchemaShape inputSchema, string input, string output)
    {
        SchemaShape.Column column = inputSchema.LastOrDefault(c => c.Name == input);
        if (column.Name is null)
        {
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The data has no column '{input}'; it has: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        }
        if (column.ItemType is not TextDataViewType || column.Kind != SchemaShape.Column.VectorKind.Scalar)
        {
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Column '{input}' is {column.ItemType}; expected a Text (string) column.");
        }
        return context.Transforms.CopyColumns(output, input).GetOutputSchema(inputSchema);
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;

namespace Transformers.ML.Core.DataView;

/// <summary>Reading and describing the text columns that the capabilities train on and add.</summary>
internal static class TextColumns
{
    /// <summary>Every value of a Text column; the message names the column and what the data has when it is missing or not text.</summary>
    public static List<string> Read(IDataView data, string name)
    {
        DataViewSchema.Column column = data.Schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(name), $"The data has no column '{name}'; it has: {string.Join(", ", data.Schema.Select(c => c.Name))}.");
        if (column.Type is not TextDataViewType)
        {
            throw new ArgumentOutOfRangeException(nameof(name), $"Column '{name}' is {column.Type}; expected Text (string).");
        }
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

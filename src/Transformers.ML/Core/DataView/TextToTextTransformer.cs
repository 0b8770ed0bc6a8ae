using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.DataView;

namespace Transformers.ML;

/// <summary>
/// The ML.NET side of a model that maps a text column to a new text column (completions, translations): the output
/// schema, the lazy batched Transform, the row-to-row mapper for PredictionEngine, and the refusal of
/// <c>mlContext.Model.Save</c>, whose writers ML.NET keeps internal.
/// </summary>
public abstract class TextToTextTransformer : ITransformer
{
    private readonly string _role;
    private readonly string _loader;

    /// <param name="role">What the input column holds, for messages ("prompt", "source").</param>
    /// <param name="loader">The catalog method that loads the model, for the message of ICanSaveModel.Save.</param>
    private protected TextToTextTransformer(string inputColumnName, string outputColumnName, int transformBatchSize, string role, string loader)
    {
        InputColumnName = inputColumnName;
        OutputColumnName = outputColumnName;
        TransformBatchSize = transformBatchSize;
        _role = role;
        _loader = loader;
    }

    /// <summary>The text column that Transform reads.</summary>
    public string InputColumnName { get; }

    /// <summary>The text column that Transform adds.</summary>
    public string OutputColumnName { get; }

    /// <summary>Rows processed together by Transform.</summary>
    public int TransformBatchSize { get; }

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema).RowMapper();

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => Mapper(input.Schema).Map(input);

    /// <summary>ML.NET's model format cannot hold components from outside ML.NET: use the model's own Save(path) and the catalog's loader.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelSaveRefusal.For(GetType(), _loader);

    /// <summary>The outputs of a batch of inputs, in order.</summary>
    private protected abstract IReadOnlyList<string> MapBatch(IReadOnlyList<string> inputs);

    private BatchMapper<ReadOnlyMemory<char>> Mapper(DataViewSchema inputSchema)
    {
        DataViewSchema.Column column = inputSchema.GetColumnOrNull(InputColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"The data has no {_role} column '{InputColumnName}'; it has: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        if (column.Type is not TextDataViewType)
        {
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"{char.ToUpperInvariant(_role[0])}{_role[1..]} column '{InputColumnName}' is {column.Type}; expected Text (string).");
        }
        return new BatchMapper<ReadOnlyMemory<char>>(inputSchema, InputColumnName,
            new[] { new OutputColumn(OutputColumnName, TextDataViewType.Instance) },
            inputs => MapBatch(inputs.Select(i => i.ToString()).ToList()).Select(o => new object[] { o.AsMemory() }).ToArray(),
            TransformBatchSize);
    }
}

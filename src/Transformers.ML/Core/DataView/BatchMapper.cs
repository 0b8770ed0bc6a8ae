// The IDataView plumbing every capability's ITransformer needs: new columns computed from one input
// column, lazily (only when a cursor asks), in batches of rows (one model call per batch, not per row),
// with the input columns passed through; and the row-to-row mapper that PredictionEngine uses.
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Transformers.ML.Core.DataView;

/// <summary>A column the mapper adds: its name and ML.NET type.</summary>
internal sealed record OutputColumn(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations = null);

/// <summary>Computes the output columns of a batch of input values: result[row][column].</summary>
internal delegate object[][] BatchFunction<TIn>(IReadOnlyList<TIn> inputs);

internal sealed class BatchMapper<TIn>
{
    /// <param name="reader">Reads the input value of the current row (e.g. converting it at once, or catching a failed read); null: the column's getter of TIn.</param>
    public BatchMapper(DataViewSchema inputSchema, string inputColumn, IReadOnlyList<OutputColumn> outputs, BatchFunction<TIn> compute, int batchSize,
        Func<DataViewRow, Func<TIn>>? reader = null)
    {
        InputSchema = inputSchema;
        Outputs = outputs;
        Compute = compute;
        BatchSize = Math.Max(1, batchSize);
        InputColumn = inputSchema.GetColumnOrNull(inputColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(inputColumn), $"Input column '{inputColumn}' not found in the data; it has: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        Reader = reader ?? (row =>
        {
            ValueGetter<TIn> getter = row.GetGetter<TIn>(InputColumn);
            return () =>
            {
                TIn value = default!;
                getter(ref value);
                return value;
            };
        });
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        foreach (OutputColumn output in outputs)
        {
            builder.AddColumn(output.Name, output.Type, output.Annotations);
        }
        OutputSchema = builder.ToSchema();
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public DataViewSchema.Column InputColumn { get; }

    public IReadOnlyList<OutputColumn> Outputs { get; }

    public BatchFunction<TIn> Compute { get; }

    public Func<DataViewRow, Func<TIn>> Reader { get; }

    public int BatchSize { get; }

    /// <summary>True when the column of the output schema is one this mapper adds.</summary>
    public bool IsOutput(int index) => index >= InputSchema.Count;

    public IDataView Map(IDataView input) => new MappedDataView<TIn>(this, input);

    public IRowToRowMapper RowMapper() => new RowMapper<TIn>(this);
}

internal sealed class MappedDataView<TIn> : IDataView
{
    private readonly BatchMapper<TIn> _mapper;
    private readonly IDataView _input;

    public MappedDataView(BatchMapper<TIn> mapper, IDataView input)
    {
        _mapper = mapper;
        _input = input;
    }

    public bool CanShuffle => false;

    public DataViewSchema Schema => _mapper.OutputSchema;

    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        bool anyOutput = needed.Any(c => _mapper.IsOutput(c.Index));
        var inputColumns = needed.Where(c => !_mapper.IsOutput(c.Index)).Select(c => _input.Schema[c.Index]).ToList();
        return new Cursor(_mapper, _input, inputColumns, anyOutput, needed.Select(c => c.Index).ToHashSet());
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>
    /// Two cursors over the input in lock step: one serves the passed-through columns of the current row, the
    /// other reads the input column ahead, a batch at a time, so that the outputs are computed per batch.
    /// </summary>
    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchMapper<TIn> _mapper;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor? _ahead;
        private readonly Func<TIn>? _aheadRead;
        private readonly HashSet<int> _active;
        private object[][] _batch = Array.Empty<object[]>();
        private int _inBatch = -1;

        public Cursor(BatchMapper<TIn> mapper, IDataView input, List<DataViewSchema.Column> inputColumns, bool anyOutput, HashSet<int> active)
        {
            _mapper = mapper;
            _active = active;
            _main = input.GetRowCursor(inputColumns);
            if (anyOutput)
            {
                _ahead = input.GetRowCursor(new[] { mapper.InputColumn });
                _aheadRead = mapper.Reader(_ahead);
            }
        }

        public override DataViewSchema Schema => _mapper.OutputSchema;

        public override long Position => _main.Position;

        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (!_main.MoveNext())
            {
                return false;
            }
            if (_ahead is not null)
            {
                _inBatch++;
                if (_inBatch >= _batch.Length)
                {
                    var values = new List<TIn>(_mapper.BatchSize);
                    while (values.Count < _mapper.BatchSize && _ahead.MoveNext())
                    {
                        values.Add(_aheadRead!());
                    }
                    _batch = values.Count == 0 ? Array.Empty<object[]>() : _mapper.Compute(values);
                    _inBatch = 0;
                }
            }
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_mapper.IsOutput(column.Index))
            {
                return _main.GetGetter<TValue>(_main.Schema[column.Index]);
            }
            int output = column.Index - _mapper.InputSchema.Count;
            return OutputGetter<TValue>(column, () => _batch[_inBatch][output]);
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _main.Dispose();
                _ahead?.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    internal static ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, Func<object> value) =>
        (ref TValue destination) =>
        {
            object current = value();
            destination = current is TValue typed
                ? typed
                : throw new InvalidOperationException($"Column '{column.Name}' holds {current.GetType().Name}, not the {typeof(TValue).Name} asked for.");
        };
}

/// <summary>For PredictionEngine: the output columns of one row, computed on first use and kept until the row changes.</summary>
internal sealed class RowMapper<TIn> : IRowToRowMapper
{
    private readonly BatchMapper<TIn> _mapper;

    public RowMapper(BatchMapper<TIn> mapper)
    {
        _mapper = mapper;
    }

    public DataViewSchema InputSchema => _mapper.InputSchema;

    public DataViewSchema OutputSchema => _mapper.OutputSchema;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var columns = dependingColumns.ToList();
        var inputs = columns.Where(c => !_mapper.IsOutput(c.Index)).Select(c => InputSchema[c.Index]).ToList();
        if (columns.Any(c => _mapper.IsOutput(c.Index)) && !inputs.Any(c => c.Index == _mapper.InputColumn.Index))
        {
            inputs.Add(_mapper.InputColumn);
        }
        return inputs;
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(_mapper, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly BatchMapper<TIn> _mapper;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private long _computedAt = -1;
        private object[] _values = Array.Empty<object>();

        public Row(BatchMapper<TIn> mapper, DataViewRow input, HashSet<int> active)
        {
            _mapper = mapper;
            _input = input;
            _active = active;
        }

        public override DataViewSchema Schema => _mapper.OutputSchema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_mapper.IsOutput(column.Index))
            {
                return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            }
            int output = column.Index - _mapper.InputSchema.Count;
            Func<TIn> source = _mapper.Reader(_input);
            return MappedDataView<TIn>.OutputGetter<TValue>(column, () =>
            {
                if (_computedAt != _input.Position || _values.Length == 0)
                {
                    _values = _mapper.Compute(new[] { source() })[0];
                    _computedAt = _input.Position;
                }
                return _values[output];
            });
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
    }
}

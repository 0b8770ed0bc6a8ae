using Microsoft.ML;
using Microsoft.ML.Data;
using Transformers.ML.Core.DataView;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.ImageClassification;

/// <summary>
/// The ML.NET side of the ViT image models (<see cref="ImageClassificationTransformer"/>, <see cref="MaskedAutoencoderTransformer"/>):
/// the image column read as the options say, the output schema, the lazy batched Transform, the row-to-row mapper for
/// PredictionEngine, unreadable images (an error naming the row, or with SkipUnreadableImages NaN outputs counted in the
/// log), the training reports, and the refusal of <c>mlContext.Model.Save</c>, whose writers ML.NET keeps internal.
/// </summary>
public abstract class ImageModelTransformer : ITransformer, IDisposable
{
    private readonly ImageModelOptions _options;
    private readonly Action<string>? _log;
    private readonly string _loader;
    private readonly string _saveAlternative;

    /// <param name="loader">The catalog method that loads the model, for the message of ICanSaveModel.Save.</param>
    /// <param name="saveAlternative">What else holds the model in an ML.NET pipeline, for the same message ("" for nothing).</param>
    private protected ImageModelTransformer(ImageModelOptions options, Action<string>? log, string loader, string saveAlternative)
    {
        _options = options;
        _log = log;
        _loader = loader;
        _saveAlternative = saveAlternative;
    }

    /// <summary>The column that Transform reads.</summary>
    public string ImageColumnName => _options.ImageColumnName;

    /// <summary>The embedding column that Transform adds.</summary>
    public string EmbeddingColumnName => _options.EmbeddingColumnName;

    /// <summary>The (encoder's) architecture.</summary>
    public VitConfig Config => Encoder.Clone();

    /// <summary>Per-epoch reports of training (loss and the validation measures), when trained in this process.</summary>
    public IReadOnlyList<TrainingProgress> EpochReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <summary>Every progress report of training (steps and epochs), when trained in this process: e.g. for <see cref="Charts.SaveTrainingCurves"/>.</summary>
    public IReadOnlyList<TrainingProgress> TrainingReports { get; internal set; } = Array.Empty<TrainingProgress>();

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <summary>The architecture the images are read for (its size and channels).</summary>
    private protected abstract VitConfig Encoder { get; }

    /// <summary>What a row of an unreadable image gets, for the log ("NaN embeddings").</summary>
    private protected abstract string MissingOutputs { get; }

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema).RowMapper();

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => Mapper(input.Schema).Map(input);

    /// <summary>ML.NET's model format cannot hold components from outside ML.NET: use the model's own Save(path) and the catalog's loader.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelSaveRefusal.For(GetType(), _loader, _saveAlternative);

    /// <summary>Frees the model's tensors.</summary>
    public abstract void Dispose();

    /// <summary>The columns that Transform adds, in the order of the rows that <see cref="Predict"/> gives.</summary>
    private protected abstract IReadOnlyList<OutputColumn> OutputColumns();

    /// <summary>Checks the input schema beyond the image column (e.g. a label column's classes); nothing by default.</summary>
    private protected virtual void CheckInput(DataViewSchema inputSchema)
    {
    }

    /// <summary>The output rows of a batch of readable images, (B, C, S, S) on the CPU, read and preprocessed.</summary>
    private protected abstract object[][] Predict(Tensor images);

    /// <summary>The output row of an image that could not be read (with SkipUnreadableImages).</summary>
    private protected abstract object[] MissingRow();

    private BatchMapper<ImageValue> Mapper(DataViewSchema inputSchema)
    {
        CheckInput(inputSchema);
        var input = new ImageInput(inputSchema, _options.ImageColumnName, Encoder, _options.ImageFolder, _options.VectorImageHeight, _options.VectorImageWidth,
            _options.Preprocessing);
        return new BatchMapper<ImageValue>(inputSchema, _options.ImageColumnName, OutputColumns(), MapBatch,
            _options.TransformBatchSize, row => ImageValue.Reader(input, row, _options.SkipUnreadableImages));
    }

    private object[][] MapBatch(IReadOnlyList<ImageValue> values)
    {
        var readable = Enumerable.Range(0, values.Count).Where(i => values[i].Pixels is not null).ToList();
        object[][] predicted = Array.Empty<object[]>();
        if (readable.Count > 0)
        {
            using var scope = NewDisposeScope();
            predicted = Predict(stack(readable.Select(i => values[i].Pixels!).ToArray()));
        }
        foreach (ImageValue value in values)
        {
            value.Pixels?.Dispose();
        }
        int unreadable = values.Count - readable.Count;
        if (unreadable > 0)
        {
            _log?.Invoke($"{unreadable} image(s) could not be read: {MissingOutputs} ({values.First(v => v.Error is not null).Error!.Message}).");
        }
        var rows = new object[values.Count][];
        int next = 0;
        for (int i = 0; i < values.Count; i++)
        {
            rows[i] = values[i].Pixels is null ? MissingRow() : predicted[next++];
        }
        return rows;
    }
}

// The estimator's output schema (SchemaShape) without SchemaShape.Column's constructor, which ML.NET keeps internal:
// each output column is described by an ML.NET estimator whose output has the same shape (a copy of the label is the
// PredictedLabel; MapKeyToVector of the label is a Single vector with the classes as slot names; a Single conversion of
// the label, concatenated, is a Single vector). MapKeyToValue("PredictedLabel") after the classifier then checks out.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Transformers.ML.ImageClassification;

internal static class OutputShapes
{
    public static SchemaShape Classifier(MLContext context, SchemaShape input, ImageClassificationOptions options)
    {
        SchemaShape.Column label = Find(input, options.LabelColumnName, "label");
        SchemaShape.Column image = Find(input, options.ImageColumnName, "image");
        bool binary = label.ItemType is BooleanDataViewType && label.Kind == SchemaShape.Column.VectorKind.Scalar;
        if (!binary && !(label.IsKey && label.Kind == SchemaShape.Column.VectorKind.Scalar))
        {
            throw new ArgumentOutOfRangeException(nameof(input),
                $"Label column '{label.Name}' is {label.ItemType}; expected a Key (multiclass: ml.Transforms.Conversion.MapValueToKey(\"{label.Name}\")) or a Boolean (binary).");
        }
        CheckImage(image);

        const string scratch = "__transformers_ml_single";
        SchemaShape shape = context.Transforms.Conversion.ConvertType(scratch, label.Name, DataKind.Single).GetOutputSchema(input);
        SchemaShape Vector(SchemaShape s, string name) => context.Transforms.Concatenate(name, scratch).GetOutputSchema(s);
        if (binary)
        {
            shape = context.Transforms.CopyColumns(options.ScoreColumnName, scratch).GetOutputSchema(shape);
            shape = context.Transforms.CopyColumns(options.ProbabilityColumnName, scratch).GetOutputSchema(shape);
        }
        else
        {
            shape = context.Transforms.Conversion.MapKeyToVector(options.ScoreColumnName, label.Name).GetOutputSchema(shape);
        }
        shape = context.Transforms.CopyColumns(options.PredictedLabelColumnName, label.Name).GetOutputSchema(shape);
        shape = Vector(shape, options.EmbeddingColumnName);
        if (options.OutputAttention)
        {
            shape = Vector(shape, ImageClassificationTransformer.ClsAttentionColumn);
            shape = Vector(shape, ImageClassificationTransformer.RolloutColumn);
        }
        return new SchemaShape(shape.Where(c => c.Name != scratch));
    }

    /// <summary>The input's columns and an embedding vector of Single, after checking the image column.</summary>
    public static SchemaShape WithEmbedding(MLContext context, SchemaShape input, string imageColumn, string embeddingColumn)
    {
        SchemaShape.Column image = Find(input, imageColumn, "image");
        CheckImage(image);
        // A vector of Single from the image column: its pixels (ExtractPixels, after LoadImages for a path), or a copy of it.
        const string scratch = "__transformers_ml_pixels", scratchImage = "__transformers_ml_image";
        SchemaShape shape = image.ItemType switch
        {
            TextDataViewType => context.Transforms.ExtractPixels(scratch, scratchImage)
                .GetOutputSchema(context.Transforms.LoadImages(scratchImage, null, image.Name).GetOutputSchema(input)),
            ImageDataViewType => context.Transforms.ExtractPixels(scratch, image.Name).GetOutputSchema(input),
            _ => context.Transforms.CopyColumns(scratch, image.Name).GetOutputSchema(input),
        };
        shape = context.Transforms.Concatenate(embeddingColumn, scratch).GetOutputSchema(shape);
        return new SchemaShape(shape.Where(c => c.Name != scratch && c.Name != scratchImage));
    }

    private static void CheckImage(SchemaShape.Column image)
    {
        bool imageOk = image.ItemType is ImageDataViewType or TextDataViewType && image.Kind == SchemaShape.Column.VectorKind.Scalar
            || image.ItemType is NumberDataViewType n && n.RawType == typeof(float) && image.Kind == SchemaShape.Column.VectorKind.Vector;
        if (!imageOk)
        {
            throw new ArgumentOutOfRangeException(nameof(image),
                $"Image column '{image.Name}' is {image.ItemType} ({image.Kind}); expected an image (LoadImages), a Text path, or a known-size vector of Single.");
        }
    }

    private static SchemaShape.Column Find(SchemaShape input, string name, string role)
    {
        SchemaShape.Column column = input.LastOrDefault(c => c.Name == name);
        return column.Name is not null ? column
            : throw new ArgumentOutOfRangeException(nameof(input), $"The data has no {role} column '{name}'; it has: {string.Join(", ", input.Select(c => c.Name))}.");
    }
}

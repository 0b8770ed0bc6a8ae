// Turning the values of an image column into the model's input: MLImage (ML.NET's LoadImages), a file path, or a
// float vector of pixels -> channels-first floats at the model's resolution. Images are resized (area averaging to
// shrink, so a 512-pixel scan shrinks without aliasing; bilinear to enlarge) to ImageSize x ImageSize; the aspect ratio is not kept
// (OCT B-scans are wider than tall; a square input keeps every column of the scan).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using TorchSharp;

namespace Transformers.ML.ImageClassification;

/// <summary>Which kind of image column the data has.</summary>
internal enum ImageColumnKind
{
    /// <summary>ML.NET's MLImage (ImageDataViewType).</summary>
    Image,

    /// <summary>A path (Text), read with MLImage.CreateFromFile.</summary>
    Path,

    /// <summary>A known-size vector of Single: pixels, channel-major.</summary>
    Vector,
}

/// <summary>
/// Constants of the image path as tensors and long-lived scalars. TorchSharp 0.107 frees a temporary Scalar (the one
/// <c>tensor * 0.5f</c> makes) in its finalizer without keeping it alive across the native call that uses it; when a
/// garbage collection lands in between (decoding large scans allocates a lot), libtorch reads freed memory and fails
/// with "Unknown scalar type". Values held here are never collected.
/// </summary>
internal static class Constant
{
    // Detached: the first use may be inside a dispose scope, which must not take these with it.
    public static readonly Tensor Luma = tensor(new[] { 0.299f, 0.587f, 0.114f }, new long[] { 1, 3, 1, 1 }).DetachFromDisposeScope();

    public static readonly Tensor BgrToRgb = tensor(new long[] { 2, 1, 0 }).DetachFromDisposeScope();

    public static readonly Scalar ByteRange = 255f.ToScalar();

    public static readonly Scalar Zero = 0f.ToScalar();

    public static readonly Scalar SmallStd = 1e-3f.ToScalar();

    public static readonly Scalar WedgeLevel = ImagePreprocessor.WedgeLevel.ToScalar();

    public static readonly Scalar WedgeFlatLevel = ImagePreprocessor.WedgeFlatLevel.ToScalar();
}

/// <summary>An image that could not be read: which row, which file (when known) and why.</summary>
internal sealed class UnreadableImageException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Reads one image column and converts its values to (C, S, S) float tensors for a <see cref="VitConfig"/>.</summary>
internal sealed class ImageInput
{
    private readonly int _channels;
    private readonly int _imageSize;
    private readonly int _patchSize;
    private readonly string? _folder;
    private readonly int _vectorChannels;
    private readonly int _vectorHeight;
    private readonly int _vectorWidth;
    private readonly ImagePreprocessing _preprocessing;

    /// <summary>Describes <paramref name="columnName"/> of <paramref name="schema"/>; the message names the column, its type and what is accepted.</summary>
    public ImageInput(DataViewSchema schema, string columnName, VitConfig model, string? imageFolder, int? vectorHeight, int? vectorWidth,
        ImagePreprocessing? preprocessing = null)
    {
        _preprocessing = preprocessing ?? new ImagePreprocessing();
        Column = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(nameof(columnName),
                $"The data has no image column '{columnName}'; it has: {string.Join(", ", schema.Select(c => c.Name))}.");
        _channels = model.Channels;
        _imageSize = model.ImageSize;
        _patchSize = model.PatchSize;
        _folder = imageFolder;
        switch (Column.Type)
        {
            case ImageDataViewType:
                Kind = ImageColumnKind.Image;
                break;
            case TextDataViewType:
                Kind = ImageColumnKind.Path;
                break;
            case VectorDataViewType { ItemType: NumberDataViewType n, Size: > 0 } v when n.RawType == typeof(float):
                Kind = ImageColumnKind.Vector;
                (_vectorChannels, _vectorHeight, _vectorWidth) = VectorShape(columnName, v.Size, model.Channels, vectorHeight, vectorWidth);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(columnName),
                    $"Image column '{columnName}' is {Column.Type}; expected an image (LoadImages), a Text path, or a known-size vector of Single (pixels, e.g. ExtractPixels).");
        }
    }

    public DataViewSchema.Column Column { get; }

    public ImageColumnKind Kind { get; }

    /// <summary>(channels, height, width) of a pixel vector of <paramref name="length"/> values.</summary>
    internal static (int, int, int) VectorShape(string column, int length, int modelChannels, int? height, int? width)
    {
        if (height is int h && width is int w)
        {
            if (length % (h * w) == 0 && length / (h * w) is 1 or 3)
            {
                return (length / (h * w), h, w);
            }
            throw new ArgumentOutOfRangeException(nameof(length),
                $"Image column '{column}' holds {length} values per row, which is not 1 or 3 channels of {h} x {w} (VectorImageHeight x VectorImageWidth).");
        }
        foreach (int c in new[] { modelChannels, 4 - modelChannels })
        {
            if (height is int hh && length % (c * hh) == 0)
            {
                return (c, hh, length / (c * hh));
            }
            int side = (int)Math.Round(Math.Sqrt(length / (double)c));
            if (height is null && width is null && c * side * side == length)
            {
                return (c, side, side);
            }
        }
        throw new ArgumentOutOfRangeException(nameof(length),
            $"Image column '{column}' holds {length} values per row: not a square image of 1 or 3 channels. Set VectorImageHeight and VectorImageWidth.");
    }

    /// <summary>The getter of the column's raw values, for a cursor or row.</summary>
    public Func<object?> Getter(DataViewRow row) => Kind switch
    {
        ImageColumnKind.Image => Boxed<MLImage>(row),
        ImageColumnKind.Path => Boxed<ReadOnlyMemory<char>>(row),
        _ => Boxed<VBuffer<float>>(row),
    };

    private Func<object?> Boxed<T>(DataViewRow row)
    {
        ValueGetter<T> getter = row.GetGetter<T>(Column);
        return () =>
        {
            T value = default!;
            getter(ref value);
            return value;
        };
    }

    /// <summary>
    /// A raw value -> (C, S, S) float tensor on the CPU. Image and path values are scaled to [0, 1]; vector values are taken
    /// as they are (the model's normalisation, measured on the training images, absorbs their scale).
    /// </summary>
    /// <param name="row">The row number, for messages.</param>
    public Tensor ToTensor(object? value, long row) => ToTensorAndRegion(value, row).Image;

    /// <summary>As <see cref="ToTensor"/>, with the region of the original image (x, y, width, height) that the tensor shows.</summary>
    public (Tensor Image, ImageRegion Region) ToTensorAndRegion(object? value, long row)
    {
        using var scope = NewDisposeScope();
        Tensor image = value switch
        {
            MLImage mlImage => FromImage(mlImage, row),
            ReadOnlyMemory<char> path => FromPath(path.ToString(), row),
            VBuffer<float> vector => tensor(vector.DenseValues().ToArray(), new long[] { 1, _vectorChannels, _vectorHeight, _vectorWidth }),
            null => throw new UnreadableImageException($"Row {row} of image column '{Column.Name}' holds no image (was its path empty?)."),
            _ => throw new InvalidOperationException($"Unexpected value {value.GetType().Name} in image column '{Column.Name}'."),
        };
        long channels = image.shape[1], height = image.shape[2], width = image.shape[3];
        if (height < _patchSize || width < _patchSize)
        {
            throw new UnreadableImageException(
                $"The image in row {row} of column '{Column.Name}' is {width} x {height} pixels, smaller than one {_patchSize} x {_patchSize} patch.");
        }
        if (channels != _channels)
        {
            // RGB to ITU-R BT.601 luma as a weighted sum over the channels, or gray to three equal channels.
            image = channels == 3 ? image.mul(LumaWeights).sum(1, keepdim: true) : image.expand(1, 3, height, width);
        }
        (image, ImageRegion region) = ImagePreprocessor.Resize(image, _preprocessing, _imageSize); // (1, C, S, S)
        return (ImagePreprocessor.AfterResize(image.squeeze(0), _preprocessing).contiguous().MoveToOuterDisposeScope(), region);
    }

    /// <summary>The luma weights (1, 3, 1, 1), as a tensor: see <see cref="Constant"/> for why no scalar.</summary>
    private static Tensor LumaWeights => Constant.Luma;

    private Tensor FromImage(MLImage image, long row)
    {
        if (image.Width == 0 || image.Height == 0)
        {
            throw new UnreadableImageException($"The image in row {row} of column '{Column.Name}' ({image.Tag ?? "no file name"}) is empty.");
        }
        return Decode(image);
    }

    private Tensor FromPath(string path, long row)
    {
        string full = _folder is null || Path.IsPathRooted(path) ? path : Path.Combine(_folder, path);
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new UnreadableImageException($"Row {row} of image column '{Column.Name}' has an empty path.");
        }
        if (!File.Exists(full))
        {
            throw new UnreadableImageException($"Image file '{full}' (row {row} of column '{Column.Name}') does not exist.");
        }
        MLImage image;
        try
        {
            image = MLImage.CreateFromFile(full);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new UnreadableImageException($"Image file '{full}' (row {row} of column '{Column.Name}') could not be decoded: {e.Message}", e);
        }
        using (image)
        {
            image.Tag = full;
            return FromImage(image, row);
        }
    }

    /// <summary>
    /// MLImage (BGRA or RGBA, 8 bits per channel) -> (1, 3, H, W) RGB floats in [0, 1]. The bytes go through a pooled buffer
    /// straight into libtorch, so a batch of large scans makes no garbage for the collector (see <see cref="Constant"/>).
    /// </summary>
    internal static Tensor Decode(MLImage image)
    {
        int w = image.Width, h = image.Height;
        ReadOnlySpan<byte> source = image.Pixels;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(source.Length);
        try
        {
            source.CopyTo(buffer);
            using var scope = NewDisposeScope();
            Tensor bytes = tensor(buffer, new long[] { buffer.Length })[..source.Length].view(h, w, 4);     // (H, W, 4)
            Tensor rgb = image.PixelFormat == MLPixelFormat.Bgra32 ? bytes.index_select(2, Constant.BgrToRgb) : bytes.narrow(2, 0, 3);
            return rgb.permute(2, 0, 1).unsqueeze(0).to(ScalarType.Float32).div(Constant.ByteRange).MoveToOuterDisposeScope();
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>MLImage (BGRA or RGBA, 8 bits per channel) -> channel-major RGB floats in [0, 1]; grayscale images have R = G = B.</summary>
    internal static (float[] Pixels, int Channels, int Height, int Width) Pixels(MLImage image)
    {
        int w = image.Width, h = image.Height, plane = w * h;
        ReadOnlySpan<byte> source = image.Pixels;
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        var pixels = new float[3 * plane];
        for (int i = 0; i < plane; i++)
        {
            byte r = source[4 * i + (bgra ? 2 : 0)], g = source[4 * i + 1], b = source[4 * i + (bgra ? 0 : 2)];
            pixels[i] = r / 255f;
            pixels[plane + i] = g / 255f;
            pixels[2 * plane + i] = b / 255f;
        }
        return (pixels, 3, h, w);
    }
}

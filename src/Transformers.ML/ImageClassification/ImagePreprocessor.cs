// What happens to an image between the file and the model. With wedge masking or a band crop, the image is first
// brought to a fixed working size, its "source" (4 S wide, and tall enough that the band is a whole multiple of S rows),
// then:
//   1. flat saturated regions become black: the white wedges an OCT scanner leaves where it registered the scan. A wedge
//      pixel is bright and so is every pixel of the 5 x 5 window around it; speckled tissue, however bright, is not. The
//      mask is grown by two pixels to take the JPEG ringing at the wedge's edge;
//   2. the rows are cut to the band that holds the bright tissue: centred on the centroid of the row means above their
//      median (the dark background), so it follows the retina wherever the scan placed it;
//   3. blocks of the source are averaged down to the model's S x S (area averaging; the factors are whole numbers).
// The ONNX export builds the same steps as graph nodes from the same constants (VitOnnxExport), so a deployed model fed
// the source size by ML.NET's ResizeImages preprocesses as Transform does. Without masking or band, the image is area-
// averaged (or padded, then averaged) straight to S x S. After the resize, each image can be normalised to zero mean and
// unit variance. Measured on real OCT scans in the benchmark (docs/image-classification.md).
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.ImageClassification;

internal static class ImagePreprocessor
{
    /// <summary>A wedge pixel is at least this bright (8-bit 245)...</summary>
    public const float WedgeLevel = 0.96f;

    /// <summary>... and so is every pixel of the window around it (8-bit 237): a flat, saturated region.</summary>
    public const float WedgeFlatLevel = 0.93f;

    /// <summary>Side of the window of <see cref="WedgeFlatLevel"/>, and of the growth of the mask.</summary>
    public const int WedgeWindow = 5;

    /// <summary>The source is this many times the model's side wide.</summary>
    public const int SourceWidthFactor = 4;

    /// <summary>Whether <paramref name="options"/> work at the source size (wedge masking or a band crop).</summary>
    public static bool UsesSource(ImagePreprocessing options) => options.MaskWedges || options.BandHeight < 1;

    /// <summary>The rows of the band at the source: a whole multiple of the model's side <paramref name="size"/>.</summary>
    public static int BandRows(ImagePreprocessing options, int size) => Math.Max(1, (int)Math.Round(SourceWidthFactor * options.BandHeight)) * size;

    /// <summary>The source's (height, width) for a model of side <paramref name="size"/>: 4 S wide, the band's rows / BandHeight tall.</summary>
    public static (int Height, int Width) SourceSize(ImagePreprocessing options, int size) =>
        ((int)Math.Round(BandRows(options, size) / options.BandHeight), SourceWidthFactor * size);

    /// <summary>
    /// (1, C, H, W) in [0, 1] at the image's resolution -> (1, C, S, S) before <see cref="AfterResize"/>, and the region of the
    /// original image (x, y, width, height) that the result shows (for heat maps).
    /// </summary>
    public static (Tensor Image, ImageRegion Region) Resize(Tensor image, ImagePreprocessing options, int size)
    {
        int height = (int)image.shape[2], width = (int)image.shape[3];
        using var scope = NewDisposeScope();
        if (!UsesSource(options))
        {
            (Tensor direct, ImageRegion region) = options.Fit == ImageFit.Pad ? Pad(image) : (image, new ImageRegion(0, 0, width, height));
            return (AreaResize(direct, size, size).MoveToOuterDisposeScope(), region);
        }
        (int sourceHeight, int sourceWidth) = SourceSize(options, size);
        Tensor x = AreaResize(image, sourceHeight, sourceWidth);                  // (1, C, H0, W0)
        Tensor luma = x.mean(new long[] { 1 }, keepdim: true);                     // (1, 1, H0, W0)
        if (options.MaskWedges)
        {
            Tensor keep = WedgeMask(luma).logical_not();
            x = x.mul(keep);
            luma = luma.mul(keep);
        }
        int rows = options.BandHeight < 1 ? BandRows(options, size) : sourceHeight;
        int top = options.BandHeight < 1 ? BandTop(luma, rows) : 0;
        x = x.narrow(2, top, rows);                                                // (1, C, rows, W0)
        var band = new ImageRegion(0, (int)Math.Round(top * (double)height / sourceHeight), width, (int)Math.Round(rows * (double)height / sourceHeight));
        if (options.Fit == ImageFit.Pad)
        {
            (x, ImageRegion padded) = Pad(x);
            // The padding, in the original image's pixels.
            double sx = (double)width / sourceWidth, sy = (double)height / sourceHeight;
            band = new ImageRegion((int)Math.Round(padded.X * sx), band.Y + (int)Math.Round(padded.Y * sy), (int)Math.Round(padded.Width * sx), (int)Math.Round(padded.Height * sy));
        }
        long factorY = x.shape[2] / size, factorX = x.shape[3] / size;            // whole numbers by construction
        x = F.avg_pool2d(x, new long[] { factorY, factorX }, new long[] { factorY, factorX });
        return (x.MoveToOuterDisposeScope(), band);
    }

    /// <summary>(C, S, S) at the model's resolution -> the same image with zero mean and unit (sample) variance, when asked.</summary>
    public static Tensor AfterResize(Tensor image, ImagePreprocessing options)
    {
        if (!options.PerImageNormalization)
        {
            return image;
        }
        using var scope = NewDisposeScope();
        Tensor mean = image.mean();
        Tensor std = image.std().clamp_min(Constant.SmallStd);
        return image.sub(mean).div(std).MoveToOuterDisposeScope();
    }

    /// <summary>(1, 1, H, W) luma -> (1, 1, H, W) true where a flat saturated region (a wedge) is, grown by two pixels.</summary>
    internal static Tensor WedgeMask(Tensor luma)
    {
        using var scope = NewDisposeScope();
        int pad = WedgeWindow / 2;
        Tensor windowMin = F.max_pool2d(luma.neg(), WedgeWindow, 1, pad).neg();   // the darkest pixel of each 5 x 5 window
        Tensor core = luma.ge(Constant.WedgeLevel).logical_and(windowMin.ge(Constant.WedgeFlatLevel));
        return F.max_pool2d(core.to(ScalarType.Float32), WedgeWindow, 1, pad).gt(Constant.Zero).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The first row of the band of <paramref name="rows"/> rows centred on the bright tissue of <paramref name="luma"/>
    /// (1, 1, H, W): the centroid of the row means above their median, rounded half to even, kept inside the image.
    /// </summary>
    internal static int BandTop(Tensor luma, int rows)
    {
        using var scope = NewDisposeScope();
        int height = (int)luma.shape[2];
        float[] profile = luma.mean(new long[] { 3 }).flatten().contiguous().data<float>().ToArray(); // (H)
        float median = profile.Order().ElementAt(height / 2);
        double weight = 0, moment = 0;
        for (int y = 0; y < height; y++)
        {
            double w = Math.Max(0, profile[y] - median);
            weight += w;
            moment += w * y;
        }
        double centre = weight > 0 ? moment / weight : (height - 1) / 2.0;
        return Math.Clamp((int)Math.Round(centre - rows / 2.0), 0, height - rows);
    }

    /// <summary>
    /// What <see cref="AreaResize"/> does to one axis from <paramref name="from"/> to <paramref name="to"/> samples: for each
    /// output, the inputs it takes and their weights. Shrinking, output i is the mean of inputs floor(i from / to) ..
    /// ceil((i + 1) from / to) - 1 (adaptive average pooling's bins); enlarging, bilinear interpolation without aligned
    /// corners (source position (i + 0.5) from / to - 0.5, at least 0) between two inputs, the same one twice at the last
    /// edge. For the ONNX graph, which resamples images of a fixed size the same way.
    /// </summary>
    internal static (int Index, float Weight)[][] ResampleWeights(int from, int to)
    {
        var taps = new (int Index, float Weight)[to][];
        double scale = (double)from / to;
        for (int i = 0; i < to; i++)
        {
            if (from >= to)
            {
                int start = (int)((long)i * from / to), end = (int)(((long)(i + 1) * from + to - 1) / to);
                taps[i] = Enumerable.Range(start, end - start).Select(j => (j, (float)(1.0 / (end - start)))).ToArray();
            }
            else
            {
                double position = Math.Max((i + 0.5) * scale - 0.5, 0);
                int low = (int)position;
                double upper = position - low;
                taps[i] = new[] { (low, (float)(1 - upper)), (Math.Min(low + 1, from - 1), (float)upper) };
            }
        }
        return taps;
    }

    /// <summary>Area averaging to shrink (every source pixel counts once: no aliasing of the speckle), bilinear to enlarge.</summary>
    internal static Tensor AreaResize(Tensor image, int height, int width)
    {
        long h = image.shape[2], w = image.shape[3];
        if (h > height || w > width)
        {
            // libtorch's antialiased bilinear mode fails for large factors (a 1536-pixel scan to 32), so it is not used.
            image = F.adaptive_avg_pool2d(image, new long[] { Math.Min(h, height), Math.Min(w, width) });
        }
        return image.shape[2] != height || image.shape[3] != width
            ? F.interpolate(image, new long[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false)
            : image;
    }

    /// <summary>Keeps the aspect ratio: pads the short side with black to a square, centred; the region is the square in the image's pixels.</summary>
    private static (Tensor Image, ImageRegion Region) Pad(Tensor x)
    {
        long h = x.shape[2], w = x.shape[3];
        long side = Math.Max(h, w);
        long top = (side - h) / 2, left = (side - w) / 2;
        return (F.pad(x, new[] { left, side - w - left, top, side - h - top }), new ImageRegion(-(int)left, -(int)top, (int)side, (int)side));
    }
}

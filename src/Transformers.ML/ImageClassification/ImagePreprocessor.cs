// What happens to an image between the file and the model, at the image's own resolution, before it is resized:
// flat saturated regions at the border (the white wedges an OCT scanner leaves where it registered the scan) become
// black, the rows can be cropped to the band that holds the bright tissue (the retina), and the image can be padded to
// a square instead of stretched. After the resize, each image can be normalised to zero mean and unit variance.
// These are measured on real OCT scans in the benchmark (see docs/image-classification.md).
using static TorchSharp.torch;

namespace Transformers.ML.ImageClassification;

internal static class ImagePreprocessor
{
    /// <summary>Pixels at least this bright can belong to a wedge (8-bit 245).</summary>
    private const float WedgeLevel = 0.96f;

    /// <summary>A wedge is flat: at least this fraction of its pixels is saturated (8-bit 253 or more); speckled tissue is not.</summary>
    private const float WedgeFlatFraction = 0.5f;

    /// <summary>
    /// (1, C, H, W) in [0, 1] at the image's resolution -> the image the resize takes, and the region of the original
    /// (x, y, width, height) it shows (for heat maps).
    /// </summary>
    public static (Tensor Image, ImageRegion Region) BeforeResize(Tensor image, ImagePreprocessing options)
    {
        int height = (int)image.shape[2], width = (int)image.shape[3];
        var region = new ImageRegion(0, 0, width, height);
        if (!options.MaskBorderWedges && options.BandHeight >= 1 && options.Fit == ImageFit.Stretch)
        {
            return (image.alias(), region);
        }
        using var scope = NewDisposeScope();
        Tensor x = image;
        float[]? luma = null;
        if (options.MaskBorderWedges || options.BandHeight < 1)
        {
            luma = x.mean(new long[] { 1 }).contiguous().data<float>().ToArray(); // (H * W), row-major
        }
        if (options.MaskBorderWedges)
        {
            bool[] wedge = BorderWedges(luma!, height, width);
            if (wedge.Any(w => w))
            {
                using Tensor mask = tensor(wedge, new long[] { 1, 1, height, width });
                x = x.masked_fill(mask, Constant.Zero);
                for (int i = 0; i < wedge.Length; i++)
                {
                    luma![i] = wedge[i] ? 0 : luma![i];
                }
            }
        }
        if (options.BandHeight < 1)
        {
            (int top, int rows) = Band(luma!, height, width, options.BandHeight);
            x = x.narrow(2, top, rows);
            region = new ImageRegion(0, top, width, rows);
        }
        if (options.Fit == ImageFit.Pad)
        {
            // Keep the aspect ratio: pad the short side with black, centred.
            long h = x.shape[2], w = x.shape[3];
            long side = Math.Max(h, w);
            long padTop = (side - h) / 2, padLeft = (side - w) / 2;
            x = nn.functional.pad(x, new[] { padLeft, side - w - padLeft, padTop, side - h - padTop });
            region = new ImageRegion(region.X - (int)padLeft, region.Y - (int)padTop, (int)side, (int)side);
        }
        return (x.MoveToOuterDisposeScope(), region);
    }

    /// <summary>(C, S, S) at the model's resolution -> the same image with zero mean and unit variance (when asked).</summary>
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

    /// <summary>
    /// The pixels of flat saturated regions that touch the image border: the 8-connected regions of pixels at least
    /// <see cref="WedgeLevel"/> bright reached from a border pixel, kept when they are large (0.2 % of the image or more)
    /// and flat (mostly saturated), then grown by two pixels to take the JPEG ringing at their edge.
    /// </summary>
    internal static bool[] BorderWedges(float[] luma, int height, int width)
    {
        var wedge = new bool[luma.Length];
        var seen = new bool[luma.Length];
        var queue = new Queue<int>();
        var component = new List<int>();
        int minimum = Math.Max(16, luma.Length / 500);
        IEnumerable<int> Border()
        {
            for (int x = 0; x < width; x++)
            {
                yield return x;
                yield return (height - 1) * width + x;
            }
            for (int y = 1; y < height - 1; y++)
            {
                yield return y * width;
                yield return y * width + width - 1;
            }
        }
        foreach (int start in Border())
        {
            if (seen[start] || luma[start] < WedgeLevel)
            {
                continue;
            }
            component.Clear();
            seen[start] = true;
            queue.Enqueue(start);
            while (queue.Count > 0)
            {
                int p = queue.Dequeue();
                component.Add(p);
                int py = p / width, px = p % width;
                for (int dy = -1; dy <= 1; dy++)
                {
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int y = py + dy, x = px + dx;
                        if (y < 0 || y >= height || x < 0 || x >= width)
                        {
                            continue;
                        }
                        int q = y * width + x;
                        if (!seen[q] && luma[q] >= WedgeLevel)
                        {
                            seen[q] = true;
                            queue.Enqueue(q);
                        }
                    }
                }
            }
            int saturated = component.Count(p => luma[p] >= 0.99f);
            if (component.Count >= minimum && saturated >= WedgeFlatFraction * component.Count)
            {
                component.ForEach(p => wedge[p] = true);
            }
        }
        // Grow by two pixels (two passes of a 3 x 3 dilation).
        for (int pass = 0; pass < 2; pass++)
        {
            bool[] grown = (bool[])wedge.Clone();
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    if (!wedge[y * width + x])
                    {
                        continue;
                    }
                    for (int dy = -1; dy <= 1; dy++)
                    {
                        for (int dx = -1; dx <= 1; dx++)
                        {
                            int yy = y + dy, xx = x + dx;
                            if (yy >= 0 && yy < height && xx >= 0 && xx < width)
                            {
                                grown[yy * width + xx] = true;
                            }
                        }
                    }
                }
            }
            wedge = grown;
        }
        return wedge;
    }

    /// <summary>
    /// The band of <paramref name="fraction"/> x height rows centred on the bright tissue: the centroid of the row means
    /// above their median (the dark background), so that the band follows the retina wherever the scan placed it.
    /// </summary>
    internal static (int Top, int Rows) Band(float[] luma, int height, int width, double fraction)
    {
        int rows = Math.Clamp((int)Math.Round(height * fraction), 1, height);
        var profile = new double[height];
        for (int y = 0; y < height; y++)
        {
            double sum = 0;
            for (int x = 0; x < width; x++)
            {
                sum += luma[y * width + x];
            }
            profile[y] = sum / width;
        }
        double median = profile.Order().ElementAt(height / 2);
        double weight = 0, moment = 0;
        for (int y = 0; y < height; y++)
        {
            double w = Math.Max(0, profile[y] - median);
            weight += w;
            moment += w * y;
        }
        double centre = weight > 0 ? moment / weight : height / 2.0;
        int top = (int)Math.Round(centre - rows / 2.0);
        return (Math.Clamp(top, 0, height - rows), rows);
    }
}

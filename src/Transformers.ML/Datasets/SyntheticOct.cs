// SYNTHETIC retinal OCT B-scans, for tests and the default example run (the real data sets cannot be had here).
// They imitate the look of the Kermany OCT2017 classes, nothing more: curved retinal layers with a foveal pit
// under speckle noise; CNV raises the pigment layer (RPE) with a bright lesion and dark fluid above it; DME adds
// dark intraretinal cysts and thickens the retina; DRUSEN puts small bumps under the RPE. Not medical data.
namespace Transformers.ML.Datasets;

/// <summary>The four classes of the Kermany OCT2017 data set.</summary>
public enum OctClass
{
    /// <summary>Choroidal neovascularisation.</summary>
    Cnv,

    /// <summary>Diabetic macular edema.</summary>
    Dme,

    /// <summary>Drusen (early age-related macular degeneration).</summary>
    Drusen,

    /// <summary>A healthy retina.</summary>
    Normal,
}

/// <summary>Generates synthetic OCT B-scans (documented as synthetic wherever they are used).</summary>
public static class SyntheticOct
{
    /// <summary>A size x size grayscale image in [0, 1], row-major, of the given class; the same seed gives the same image.</summary>
    public static float[] Generate(OctClass kind, int size, int seed)
    {
        if (size < 16)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "Synthetic OCT images need at least 16 x 16 pixels.");
        }
        var random = new Random(seed);
        double Uniform(double lo, double hi) => lo + (hi - lo) * random.NextDouble();

        // Geometry, in fractions of the image: the retina's top surface curves, with a foveal pit near the centre.
        double top = Uniform(0.30, 0.40), curvature = Uniform(-0.25, 0.25), tilt = Uniform(-0.08, 0.08);
        double pitCentre = Uniform(0.4, 0.6), pitDepth = Uniform(0.04, 0.08), pitWidth = Uniform(0.05, 0.09);
        double thickness = Uniform(0.22, 0.28) * (kind == OctClass.Dme ? Uniform(1.25, 1.45) : 1.0);

        // Pathology parameters.
        double lesionCentre = Uniform(0.3, 0.7), lesionWidth = Uniform(0.10, 0.16), lesionHeight = Uniform(0.08, 0.13);
        var cysts = Enumerable.Range(0, kind == OctClass.Dme ? random.Next(3, 7) : 0)
            .Select(_ => (X: Uniform(0.25, 0.75), Depth: Uniform(0.3, 0.7), Rx: Uniform(0.02, 0.05), Ry: Uniform(0.015, 0.035))).ToList();
        var drusen = Enumerable.Range(0, kind == OctClass.Drusen ? random.Next(4, 8) : 0)
            .Select(_ => (X: Uniform(0.15, 0.85), Width: Uniform(0.03, 0.06), Height: Uniform(0.045, 0.07))).ToList();

        double speckleStrength = 0.6 * Math.Min(1, Math.Sqrt(size / 256.0));
        var image = new float[size * size];
        for (int col = 0; col < size; col++)
        {
            double x = (col + 0.5) / size;
            double surface = top + tilt * (x - 0.5) + curvature * (x - 0.5) * (x - 0.5)
                + pitDepth * Math.Exp(-Math.Pow((x - pitCentre) / pitWidth, 2));            // the pit dips the surface
            double rpe = top + thickness + tilt * (x - 0.5) + curvature * (x - 0.5) * (x - 0.5);
            double rpeLift = 0;
            if (kind == OctClass.Cnv)
            {
                rpeLift = lesionHeight * Math.Exp(-Math.Pow((x - lesionCentre) / lesionWidth, 2));
            }
            foreach (var d in drusen)
            {
                rpeLift = Math.Max(rpeLift, d.Height * Math.Exp(-Math.Pow((x - d.X) / d.Width, 2)));
            }
            double rpeTop = rpe - rpeLift;

            for (int row = 0; row < size; row++)
            {
                double y = (row + 0.5) / size;
                double value = 0.05; // vitreous: dark
                if (y >= surface && y < rpeTop)
                {
                    // Inner retina: layered bands of alternating reflectivity, brightest at the nerve fibre layer.
                    double depth = (y - surface) / Math.Max(rpeTop - surface, 1e-3);
                    value = 0.55 * Math.Exp(-depth * 12) + 0.25 + 0.12 * Math.Sin(depth * Math.PI * 7);
                    if (depth > 0.55 && depth < 0.8)
                    {
                        value *= 0.55; // outer nuclear layer: dark
                    }
                    foreach (var c in cysts)
                    {
                        double cy = surface + c.Depth * (rpeTop - surface);
                        if (Math.Pow((x - c.X) / c.Rx, 2) + Math.Pow((y - cy) / c.Ry, 2) < 1)
                        {
                            value = 0.04; // fluid-filled cyst: black
                        }
                    }
                    if (kind == OctClass.Cnv && Math.Abs(x - lesionCentre) < lesionWidth * 0.8 && y > rpeTop - 0.05 && y < rpeTop - 0.015)
                    {
                        value = 0.06; // subretinal fluid above the lesion
                    }
                }
                else if (y >= rpeTop && y < rpeTop + 0.035)
                {
                    value = 0.95; // RPE: the brightest band
                }
                else if (y >= rpeTop + 0.035 && y < rpe + 0.12)
                {
                    value = 0.35 * Math.Exp(-(y - rpeTop) * 15) + 0.12; // choroid fading into the sclera
                }
                if (kind == OctClass.Cnv && Math.Pow((x - lesionCentre) / (lesionWidth * 0.6), 2) + Math.Pow((y - (rpeTop + 0.02)) / 0.03, 2) < 1)
                {
                    value = 1.0; // hyper-reflective lesion
                }
                // Speckle: multiplicative noise, as coherent imaging produces. A small image stands for a downsampled scan,
                // whose pixels average many speckle grains: the noise shrinks with the side (full strength at 256 pixels).
                double speckle = -Math.Log(1 - random.NextDouble()) * speckleStrength + (1 - speckleStrength);
                image[row * size + col] = (float)Math.Clamp(value * speckle, 0, 1);
            }
        }
        return image;
    }

    /// <summary>
    /// Writes SYNTHETIC scans as grayscale PNG files in the Kermany OCT2017 layout, <c>train|test/CNV|DME|DRUSEN|NORMAL/*.png</c>,
    /// so that the real data set and the synthetic one go through the same code (<see cref="ImageDatasets.ReadOct2017Folder"/>,
    /// <c>LoadImages</c>). File names start with "SYNTHETIC-". Returns <paramref name="folder"/>.
    /// </summary>
    public static string WriteOct2017Folder(string folder, int trainPerClass, int testPerClass, int size, int seed)
    {
        if (trainPerClass < 1 || testPerClass < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(trainPerClass), $"Need at least one training image per class and no negative test count; found {trainPerClass} and {testPerClass}.");
        }
        foreach ((string split, int count, int offset) in new[] { ("train", trainPerClass, 0), ("test", testPerClass, 1_000_000) })
        {
            foreach (OctClass kind in Enum.GetValues<OctClass>())
            {
                string name = kind.ToString().ToUpperInvariant();
                string directory = Path.Combine(folder, split, name);
                Directory.CreateDirectory(directory);
                for (int i = 0; i < count; i++)
                {
                    int imageSeed = unchecked(seed * 7_919 + (offset + i) * 4 + (int)kind);
                    SavePng(Generate(kind, size, imageSeed), size, Path.Combine(directory, $"SYNTHETIC-{name}-{i}.png"));
                }
            }
        }
        return folder;
    }

    /// <summary>Writes a size x size grayscale image with values in [0, 1] as a PNG, atomically.</summary>
    public static void SavePng(float[] pixels, int size, string path)
    {
        if (pixels.Length != size * size)
        {
            throw new ArgumentException($"Expected {size} x {size} = {size * size} pixels; found {pixels.Length}.", nameof(pixels));
        }
        using var bitmap = new SkiaSharp.SKBitmap(size, size, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque);
        byte[] bytes = pixels.Select(v => (byte)Math.Round(Math.Clamp(v, 0f, 1f) * 255)).ToArray();
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        using SkiaSharp.SKData data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        Transformers.ML.Core.IO.AtomicFile.Write(path, stream => data.SaveTo(stream));
    }
}

// Draws where a ViT looked: the attention rollout of the [CLS] token, upsampled (bilinear) to the image and laid over
// it in a blue-to-red colour map, written as a PNG with SkiaSharp (the imaging library ML.NET's MLImage uses).
using Microsoft.ML.Data;
using SkiaSharp;
using Transformers.ML.Core.IO;

namespace Transformers.ML.ImageClassification;

/// <summary>Heat-map images of a ViT's attention.</summary>
public static class AttentionHeatmap
{
    /// <summary>Writes <paramref name="image"/> with the attention rollout of <paramref name="map"/> over it as a PNG (atomically).</summary>
    /// <param name="opacity">Opacity of the heat map over the image, in [0, 1]. Default 0.5.</param>
    public static void Save(MLImage image, AttentionMap map, string path, float opacity = 0.5f)
    {
        ArgumentNullException.ThrowIfNull(map);
        Save(image, map.Rollout, map.GridSize, path, opacity, map.Region);
    }

    /// <summary>Writes <paramref name="image"/> with a grid of weights (e.g. the AttentionRollout column, row-major) over it as a PNG.</summary>
    /// <param name="region">The part of the image the grid covers (<see cref="AttentionMap.Region"/>); null: all of it.</param>
    public static void Save(MLImage image, IReadOnlyList<float> grid, int gridSize, string path, float opacity = 0.5f, ImageRegion? region = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(grid);
        if (gridSize < 1 || grid.Count != gridSize * gridSize)
        {
            throw new ArgumentOutOfRangeException(nameof(grid), $"Expected {gridSize} x {gridSize} = {gridSize * gridSize} weights; found {grid.Count}.");
        }
        if (!(opacity is >= 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(opacity), opacity, "Opacity must be in [0, 1].");
        }
        byte[] png = Render(image, grid, gridSize, opacity, region);
        AtomicFile.Write(path, stream => stream.Write(png));
    }

    /// <summary>The PNG bytes of the image with the heat map over it.</summary>
    internal static byte[] Render(MLImage image, IReadOnlyList<float> grid, int gridSize, float opacity, ImageRegion? region = null)
    {
        (float[] pixels, _, int height, int width) = ImageInput.Pixels(image);
        int plane = width * height;
        using var photo = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var colors = new SKColor[plane];
        for (int i = 0; i < plane; i++)
        {
            colors[i] = new SKColor((byte)(pixels[i] * 255), (byte)(pixels[plane + i] * 255), (byte)(pixels[2 * plane + i] * 255));
        }
        photo.Pixels = colors;

        float max = grid.Max();
        using var heat = new SKBitmap(gridSize, gridSize, SKColorType.Rgba8888, SKAlphaType.Premul);
        heat.Pixels = grid.Select(v => ColorMap(max > 0 ? v / max : 0)).ToArray();

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        SKCanvas canvas = surface.Canvas;
        canvas.DrawBitmap(photo, 0, 0);
        using var paint = new SKPaint { Color = SKColors.White.WithAlpha((byte)(opacity * 255)) };
        ImageRegion r = region ?? new ImageRegion(0, 0, width, height);
        using SKImage heatImage = SKImage.FromBitmap(heat);
        // Bilinear between the grid's cells, as SkiaSharp 2's FilterQuality.Medium drew it: the grid only ever grows to
        // the image, so no mipmaps.
        canvas.DrawImage(heatImage, new SKRect(r.X, r.Y, r.X + r.Width, r.Y + r.Height), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None), paint);
        canvas.Flush();
        using SKImage snapshot = surface.Snapshot();
        using SKData data = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>A blue (0) - cyan - green - yellow - red (1) colour map.</summary>
    internal static SKColor ColorMap(float v)
    {
        v = Math.Clamp(v, 0, 1);
        float r = Math.Clamp(1.5f - Math.Abs(4 * v - 3), 0, 1);
        float g = Math.Clamp(1.5f - Math.Abs(4 * v - 2), 0, 1);
        float b = Math.Clamp(1.5f - Math.Abs(4 * v - 1), 0, 1);
        return new SKColor((byte)(r * 255), (byte)(g * 255), (byte)(b * 255));
    }
}

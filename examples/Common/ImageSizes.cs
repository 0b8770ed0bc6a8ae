using Microsoft.ML.Data;

namespace Transformers.ML.Examples;

/// <summary>Image sizes, for an ONNX export that takes the images at their own size (OnnxExportOptions.InputHeight / InputWidth).</summary>
internal static class ImageSizes
{
    /// <summary>The most common (height, width) among the first <paramref name="sample"/> images (a tie: the size seen first).</summary>
    public static (int Height, int Width) MostCommon(IEnumerable<string> paths, int sample = 100) => MostCommon(paths.Take(sample).Select(Of));

    /// <summary>The most common of <paramref name="sizes"/> (a tie: the one seen first).</summary>
    public static (int Height, int Width) MostCommon(IEnumerable<(int Height, int Width)> sizes)
    {
        // GroupBy yields the groups in the order of their first member, and OrderByDescending is stable.
        IGrouping<(int, int), (int, int)>? most = sizes.GroupBy(s => s).OrderByDescending(g => g.Count()).FirstOrDefault();
        return most?.Key ?? throw new ArgumentException("No images to take the size of.", nameof(sizes));
    }

    /// <summary>(height, width) of one image file.</summary>
    public static (int Height, int Width) Of(string path)
    {
        using MLImage image = MLImage.CreateFromFile(path);
        return (image.Height, image.Width);
    }
}

// Training-time augmentation of a batch of images (B, C, S, S), all on the images' device and drawn from the training
// step's generator (StepRandom), which the training loop seeds per step, so that a resumed run sees the same images and
// Fits on other threads do not change them. The geometric
// changes of one image (flip, rotation, random resized crop, shift) are one affine map, so each image is resampled
// once (bilinear; outside the image reads 0, the black background of a B-scan).
using Transformers.ML.Core.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.ImageClassification;

internal sealed class ImageAugmenter
{
    private readonly ImageAugmentation _options;
    private readonly double _pixelRange;

    /// <param name="pixelRange">max - min of the training pixels: brightness is a fraction of it.</param>
    public ImageAugmenter(ImageAugmentation options, double pixelRange)
    {
        options.Validate();
        _options = options;
        _pixelRange = pixelRange > 0 ? pixelRange : 1;
    }

    public Tensor Apply(Tensor images)
    {
        if (_options.IsIdentity)
        {
            return images.alias();
        }
        using var scope = NewDisposeScope();
        long batch = images.shape[0];
        Device device = images.device;
        Tensor Uniform(double low, double high) => StepRandom.Uniform(new[] { batch }, device).mul(high - low).add(low);

        Tensor x = images;
        bool geometric = _options.HorizontalFlip || _options.RotationDegrees > 0 || _options.TranslationFraction > 0 || _options.CropMinScale < 1;
        if (geometric)
        {
            // affine_grid maps output coordinates (in [-1, 1]) to input coordinates: input = scale * R * flip * output + centre.
            Tensor flip = _options.HorizontalFlip ? StepRandom.Uniform(new[] { batch }, device).lt(0.5).to(ScalarType.Float32).mul(-2).add(1) : ones(batch, device: device);
            Tensor angle = Uniform(-_options.RotationDegrees, _options.RotationDegrees).mul(Math.PI / 180);
            Tensor scale = Uniform(Math.Sqrt(_options.CropMinScale), 1.0);          // side of the crop; its area is scale^2
            Tensor room = scale.neg().add(1);                                        // how far the crop can move inside the image
            Tensor cx = StepRandom.Uniform(new[] { batch }, device).mul(2).sub(1).mul(room).add(Uniform(-2 * _options.TranslationFraction, 2 * _options.TranslationFraction));
            Tensor cy = StepRandom.Uniform(new[] { batch }, device).mul(2).sub(1).mul(room).add(Uniform(-2 * _options.TranslationFraction, 2 * _options.TranslationFraction));
            Tensor cos = angle.cos().mul(scale), sin = angle.sin().mul(scale);
            Tensor theta = stack(new[]
            {
                stack(new[] { cos.mul(flip), sin.neg(), cx }, 1),
                stack(new[] { sin.mul(flip), cos, cy }, 1),
            }, 1); // (B, 2, 3)
            Tensor grid = F.affine_grid(theta, images.shape, align_corners: false);
            x = F.grid_sample(x, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: false);
        }
        if (_options.Contrast > 0)
        {
            Tensor mean = x.mean(new long[] { 1, 2, 3 }, keepdim: true);
            x = x.sub(mean).mul(Uniform(1 - _options.Contrast, 1 + _options.Contrast).view(-1, 1, 1, 1)).add(mean);
        }
        if (_options.Brightness > 0)
        {
            x = x.add(Uniform(-_options.Brightness * _pixelRange, _options.Brightness * _pixelRange).view(-1, 1, 1, 1));
        }
        if (_options.Noise > 0)
        {
            x = x.add(StepRandom.NormalLike(x).mul(Uniform(0, _options.Noise * _pixelRange).view(-1, 1, 1, 1)));
        }
        return x.MoveToOuterDisposeScope();
    }
}

// Supervised training of the ViT on preprocessed images held in memory (N, C, S, S): shuffled or class-balanced
// batches, augmentation, per-channel normalisation, label-smoothed (optionally class-weighted) cross-entropy.
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.ImageClassification;

/// <summary>Images (N, C, S, S) on the CPU, before normalisation, and their class indices.</summary>
internal sealed record ImageSet(Tensor Images, long[] Labels) : IDisposable
{
    public int Count => Labels.Length;

    public void Dispose() => Images.Dispose();
}

internal sealed class ImageClassificationTask : ITrainingTask<int[]>
{
    private readonly VitClassifier _classifier;
    private readonly ImageSet _train;
    private readonly ImageSet? _validation;
    private readonly int _batchSize;
    private readonly double _labelSmoothing;
    private readonly ClassBalance _balance;
    private readonly ImageAugmenter? _augmenter;
    private readonly float[] _classWeights;
    private readonly int[][] _byClass;

    public ImageClassificationTask(VitClassifier classifier, ImageSet train, ImageSet? validation, int batchSize, double labelSmoothing,
        ClassBalance balance, ImageAugmenter? augmenter)
    {
        _classifier = classifier;
        _train = train;
        _validation = validation;
        _batchSize = batchSize;
        _labelSmoothing = labelSmoothing;
        _balance = balance;
        _augmenter = augmenter;
        int classes = classifier.Model.Classes;
        _byClass = Enumerable.Range(0, classes).Select(c => Enumerable.Range(0, train.Count).Where(i => train.Labels[i] == c).ToArray()).ToArray();
        _classWeights = ClassWeights(train.Labels, classes);
    }

    public string ThroughputUnit => "images";

    /// <summary>Inverse class frequencies, scaled so that the mean weight over the training images is 1; 0 for absent classes.</summary>
    internal static float[] ClassWeights(long[] labels, int classes)
    {
        var counts = new long[classes];
        foreach (long label in labels)
        {
            counts[label]++;
        }
        int present = counts.Count(c => c > 0);
        return counts.Select(c => c == 0 ? 0f : (float)(labels.Length / (double)(present * c))).ToArray();
    }

    public IReadOnlyList<int[]> PlanEpoch(int epoch, Random random)
    {
        int[] order;
        if (_balance == ClassBalance.BalancedSampling)
        {
            // As many draws as images; each draw picks a present class uniformly, then an image of it.
            int[][] present = _byClass.Where(c => c.Length > 0).ToArray();
            order = new int[_train.Count];
            for (int i = 0; i < order.Length; i++)
            {
                int[] members = present[random.Next(present.Length)];
                order[i] = members[random.Next(members.Length)];
            }
        }
        else
        {
            order = Enumerable.Range(0, _train.Count).ToArray();
            random.Shuffle(order);
        }
        return order.Chunk(_batchSize).ToList();
    }

    public LossSum ComputeLoss(int[] batch)
    {
        using var scope = NewDisposeScope();
        using Tensor index = tensor(batch.Select(i => (long)i).ToArray());
        Tensor images = _train.Images.index_select(0, index).to(_classifier.Device);
        if (_augmenter is not null)
        {
            images = _augmenter.Apply(images);
        }
        Tensor logits = _classifier.Model.Forward(_classifier.Normalize(images)).Logits;
        Tensor targets = tensor(batch.Select(i => _train.Labels[i]).ToArray(), device: _classifier.Device);
        Tensor? weights = _balance == ClassBalance.WeightedLoss
            ? tensor(batch.Select(i => _classWeights[_train.Labels[i]]).ToArray(), device: _classifier.Device)
            : null;
        LossSum loss = LabelSmoothedCrossEntropy.Sum(logits, targets, _labelSmoothing, weights: weights);
        return new LossSum(loss.Sum.MoveToOuterDisposeScope(), loss.Count.MoveToOuterDisposeScope());
    }

    /// <summary>Plain cross-entropy (no smoothing, no weights) on the validation images; the accuracy goes to <see cref="Sample"/>.</summary>
    public ValidationResult? Validate()
    {
        if (_validation is null || _validation.Count == 0)
        {
            LastValidationAccuracy = null;
            return null;
        }
        double sum = 0;
        long correct = 0;
        foreach (int[] batch in Enumerable.Range(0, _validation.Count).Chunk(Math.Max(_batchSize, 64)))
        {
            using var scope = NewDisposeScope();
            Tensor images = _validation.Images.narrow(0, batch[0], batch.Length).to(_classifier.Device);
            Tensor logits = _classifier.Model.Forward(_classifier.Normalize(images)).Logits;
            Tensor targets = tensor(batch.Select(i => _validation.Labels[i]).ToArray(), device: _classifier.Device);
            LossSum loss = LabelSmoothedCrossEntropy.Sum(logits, targets, 0.0);
            sum += loss.Sum.item<float>();
            correct += logits.argmax(1).eq(targets).sum().item<long>();
        }
        LastValidationAccuracy = correct / (double)_validation.Count;
        return new ValidationResult("loss", sum / _validation.Count, HigherIsBetter: false);
    }

    /// <summary>Accuracy on the validation images at the last <see cref="Validate"/>.</summary>
    public double? LastValidationAccuracy { get; private set; }

    public string? Sample(int epoch) => LastValidationAccuracy is double accuracy
        ? $"validation accuracy {accuracy:F4} ({_validation!.Count} images)"
        : null;
}

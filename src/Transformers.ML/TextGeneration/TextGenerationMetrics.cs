using Transformers.ML.Core.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Transformers.ML.TextGeneration;

/// <summary>How well a language model predicts held-out text.</summary>
public sealed record TextGenerationMetrics
{
    /// <summary>Mean negative log-likelihood of each token given the ones before it, in nats.</summary>
    public required double CrossEntropy { get; init; }

    /// <summary>exp(<see cref="CrossEntropy"/>).</summary>
    public double Perplexity => Math.Exp(CrossEntropy);

    /// <summary>Tokens scored.</summary>
    public required long Tokens { get; init; }

    /// <summary>Characters of the scored text, for bits per character: CrossEntropy * Tokens / Characters / ln 2.</summary>
    public required long Characters { get; init; }

    /// <summary>Bits per character, comparable across tokenizers.</summary>
    public double BitsPerCharacter => Characters == 0 ? double.NaN : CrossEntropy * Tokens / Characters / Math.Log(2);

    internal static TextGenerationMetrics Compute(TextGenerationTransformer model, IReadOnlyList<string> documents)
    {
        var ids = model.Tokenizer.EncodeDocuments(documents).ToList();
        if (ids.Count < 2)
        {
            throw new InvalidOperationException($"The evaluation text gives {ids.Count} token(s); at least 2 are needed to score a prediction.");
        }

        int context = model.Model.ContextLength;
        double sum = 0;
        long count = 0;
        model.Model.eval();
        using var noGrad = no_grad();
        // Consecutive windows: every token after the first is predicted once, from up to a context of earlier ones.
        for (int start = 0; start + 1 < ids.Count; start += context)
        {
            using var scope = NewDisposeScope();
            int length = Math.Min(context, ids.Count - 1 - start);
            Tensor input = tensor(ids.GetRange(start, length).ToArray(), device: model.Device).unsqueeze(0);
            Tensor target = tensor(ids.GetRange(start + 1, length).ToArray(), device: model.Device);
            Tensor logits = model.Model.Forward(input).squeeze(0);
            sum += F.cross_entropy(logits, target, reduction: nn.Reduction.Sum).item<float>();
            count += length;
        }
        return new TextGenerationMetrics
        {
            CrossEntropy = sum / count,
            Tokens = count,
            Characters = documents.Sum(d => (long)d.Length),
        };
    }
}

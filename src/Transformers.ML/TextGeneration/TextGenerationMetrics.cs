using Transformers.ML.Core.Tokenization;
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

    /// <summary>The TorchSharp model's scores (<see cref="GptModel.Forward"/>) over <see cref="Compute(TextTokenizer, int, IReadOnlyList{string}, Func{long[], long[], double})"/>'s windows.</summary>
    internal static TextGenerationMetrics Compute(TextGenerationTransformer model, IReadOnlyList<string> documents)
    {
        model.Model.eval();
        using var noGrad = no_grad();
        return Compute(model.Tokenizer, model.Model.ContextLength, documents, (input, target) =>
        {
            using var scope = NewDisposeScope();
            Tensor logits = model.Model.Forward(tensor(input, device: model.Device).unsqueeze(0)).squeeze(0);
            return F.cross_entropy(logits, tensor(target, device: model.Device), reduction: nn.Reduction.Sum).item<float>();
        });
    }

    /// <summary>
    /// The documents' tokens (end-of-text between documents) in consecutive windows of up to <paramref name="context"/>
    /// tokens: every token after the first is predicted once, from up to a context of earlier ones.
    /// <paramref name="windowLoss"/>(input, target) is the summed negative log-likelihood of target[i] after input[..i].
    /// </summary>
    internal static TextGenerationMetrics Compute(TextTokenizer tokenizer, int context, IReadOnlyList<string> documents, Func<long[], long[], double> windowLoss)
    {
        ArgumentNullException.ThrowIfNull(documents);
        long[] ids = tokenizer.EncodeDocuments(documents);
        if (ids.Length < 2)
        {
            throw new InvalidOperationException($"The evaluation text gives {ids.Length} token(s); at least 2 are needed to score a prediction.");
        }
        double sum = 0;
        long count = 0;
        for (int start = 0; start + 1 < ids.Length; start += context)
        {
            int length = Math.Min(context, ids.Length - 1 - start);
            sum += windowLoss(ids[start..(start + length)], ids[(start + 1)..(start + 1 + length)]);
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

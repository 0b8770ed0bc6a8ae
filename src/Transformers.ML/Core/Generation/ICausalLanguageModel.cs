using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Generation;

/// <summary>What the generator needs of a decoder-only model.</summary>
internal interface ICausalLanguageModel
{
    /// <summary>Ids (B, T) after the cached positions -> logits (B, T, vocabulary); the cache grows by T.</summary>
    Tensor Forward(Tensor ids, KeyValueCache? cache = null);

    /// <summary>
    /// As <see cref="Forward"/>, but the logits of the last position only (B, vocabulary): the other positions' output
    /// projection is never computed (nanoGPT's generate; Hugging Face's logits_to_keep = 1). With
    /// <paramref name="leftPadding"/> (B) int64, the first leftPadding[b] of row b's cached and new positions are padding
    /// (a batch of prompts of different lengths, aligned on the right as Hugging Face's generate does): no position attends
    /// to them, and row b's positions count from its first real token.
    /// </summary>
    Tensor NextTokenLogits(Tensor ids, KeyValueCache? cache = null, Tensor? leftPadding = null);

    KeyValueCache CreateCache();

    /// <summary>Most positions the model can attend over.</summary>
    int ContextLength { get; }

    int VocabularySize { get; }
}

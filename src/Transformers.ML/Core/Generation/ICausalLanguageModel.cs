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
    /// projection is never computed (nanoGPT's generate; Hugging Face's logits_to_keep = 1).
    /// </summary>
    Tensor NextTokenLogits(Tensor ids, KeyValueCache? cache = null);

    KeyValueCache CreateCache();

    /// <summary>Most positions the model can attend over.</summary>
    int ContextLength { get; }

    int VocabularySize { get; }
}

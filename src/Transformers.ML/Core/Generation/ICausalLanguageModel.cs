using Transformers.ML.Core.Modules;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Generation;

/// <summary>What the generator needs of a decoder-only model.</summary>
internal interface ICausalLanguageModel
{
    /// <summary>Ids (B, T) after the cached positions -> logits (B, T, vocabulary); the cache grows by T.</summary>
    Tensor Forward(Tensor ids, KeyValueCache? cache = null);

    KeyValueCache CreateCache();

    /// <summary>Most positions the model can attend over.</summary>
    int ContextLength { get; }

    int VocabularySize { get; }
}

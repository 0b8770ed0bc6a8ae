namespace Transformers.ML;

/// <summary>How text becomes tokens.</summary>
public enum TokenizerKind
{
    /// <summary>One token per character of the training text, with a UTF-8 byte fallback for others.</summary>
    Character,

    /// <summary>Byte-level BPE learned from the training text to a requested vocabulary size.</summary>
    BytePairEncoding,

    /// <summary>GPT-2's own 50,257-token byte-level BPE vocabulary.</summary>
    Gpt2,
}

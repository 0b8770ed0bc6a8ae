namespace Transformers.ML;

/// <summary>The number type of a training pass.</summary>
public enum TrainingPrecision
{
    /// <summary>Everything in float32.</summary>
    Float32,

    /// <summary>
    /// Mixed precision: the Transformer blocks' linear layers (attention projections and feed-forward layers, most of the
    /// arithmetic) and the two attention products multiply in bfloat16, with float32 weights, optimizer state,
    /// normalisation, softmax and loss, as torch.autocast(dtype=torch.bfloat16) does. bfloat16 keeps float32's range, so
    /// no loss scaling is needed. Fast where the hardware multiplies bfloat16 natively (CPUs with AVX512-BF16 or AMX,
    /// CUDA GPUs from Ampere on); elsewhere it can be slower than float32.
    /// </summary>
    BFloat16,

    /// <summary>
    /// <see cref="BFloat16"/> where it is faster on this machine, else <see cref="Float32"/>: the choice is measured once per
    /// process and device, timing the same matrix product in both types (bfloat16 when it is at least 1.3 times as fast,
    /// as on CPUs with AVX512-BF16 or AMX and on recent GPUs). Logged at the start of training.
    /// </summary>
    Auto,
}

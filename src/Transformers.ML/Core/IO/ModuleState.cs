using static TorchSharp.torch;

namespace Transformers.ML.Core.IO;

/// <summary>The tensors that define a module: its parameters and persistent buffers.</summary>
internal static class ModuleState
{
    /// <summary>
    /// Parameters and persistent buffers by their dotted names. (TorchSharp's state_dict also returns
    /// non-persistent buffers, such as the sinusoidal table, which are a function of the configuration.)
    /// </summary>
    public static Dictionary<string, Tensor> Of(nn.Module module)
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach ((string name, var parameter) in module.named_parameters())
        {
            state[name] = parameter;
        }
        foreach ((string name, Tensor buffer) in module.named_buffers(true, false))
        {
            state[name] = buffer;
        }
        return state;
    }
}

// One model file for every capability: a safetensors file whose metadata carries what is needed to
// rebuild the model (format, capability, configuration JSON, tokenizer JSON) and whose tensors are
// the weights. Any safetensors reader (Python's included) can open it.
using TorchSharp;
using static TorchSharp.torch;

namespace Transformers.ML.Core.IO;

/// <summary>The contents of a model file: what it is, its configuration and tokenizer, and its weights.</summary>
internal sealed class ModelFileContents : IDisposable
{
    public required string Path { get; init; }

    /// <summary>Which capability wrote the file, e.g. "text-generation".</summary>
    public required string Capability { get; init; }

    /// <summary>The capability's configuration, JSON.</summary>
    public required string Config { get; init; }

    /// <summary>The tokenizer or vocabulary, JSON; null when the model has none (image classification).</summary>
    public string? Tokenizer { get; init; }

    /// <summary>All metadata entries, including the ones above.</summary>
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }

    public required Dictionary<string, Tensor> Weights { get; init; }

    /// <summary>
    /// <paramref name="parse"/> applied to a metadata entry (the configuration, the tokenizer, the columns...). A damaged
    /// entry fails with an <see cref="InvalidDataException"/> that names the file and the entry, whatever the parser throws.
    /// </summary>
    public T Parse<T>(string what, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or ArgumentException or InvalidOperationException or NotSupportedException or KeyNotFoundException)
        {
            throw new InvalidDataException($"'{Path}': the {what} in the file's metadata is damaged ({e.Message}).", e);
        }
    }

    /// <summary>A JSON metadata entry that every file of its capability has; the message names the file when it is missing.</summary>
    public T Json<T>(string key) => Metadata.ContainsKey(key)
        ? Json<T>(key, default!)
        : throw new InvalidDataException($"'{Path}' has no '{key}' entry in its metadata; it was not written by this capability's Save.");

    /// <summary>A JSON metadata entry as <typeparamref name="T"/>; <paramref name="fallback"/> when the file has no such entry (older files).</summary>
    public T Json<T>(string key, T fallback) => Metadata.TryGetValue(key, out string? json)
        ? Parse($"'{key}' entry", () => System.Text.Json.JsonSerializer.Deserialize<T>(json) ?? throw new FormatException("it is empty"))
        : fallback;

    public void Dispose()
    {
        foreach (Tensor tensor in Weights.Values)
        {
            tensor.Dispose();
        }
        Weights.Clear();
    }
}

internal static class ModelFile
{
    public const string FormatName = "transformers.ml";
    public const int FormatVersion = 1;

    private const string FormatKey = "format";
    private const string VersionKey = "format_version";
    private const string CapabilityKey = "capability";
    private const string ConfigKey = "config";
    private const string TokenizerKey = "tokenizer";

    /// <summary>Writes the module's parameters and persistent buffers with the capability, configuration and tokenizer, atomically.</summary>
    public static void Save(string path, string capability, string configJson, string? tokenizerJson, nn.Module module,
        IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [FormatKey] = FormatName,
            [VersionKey] = FormatVersion.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [CapabilityKey] = capability,
            [ConfigKey] = configJson,
        };
        if (tokenizerJson is not null)
        {
            metadata[TokenizerKey] = tokenizerJson;
        }
        if (extraMetadata is not null)
        {
            foreach ((string key, string value) in extraMetadata)
            {
                metadata.TryAdd(key, value);
            }
        }
        SafeTensors.Write(path, ModuleState.Of(module), metadata);
    }

    /// <summary>
    /// Reads a model file, checking that it is one of ours and was written by <paramref name="expectedCapability"/>;
    /// the message names the file and what was found otherwise.
    /// </summary>
    public static ModelFileContents Load(string path, string expectedCapability, Device? device = null)
    {
        SafeTensorsReader reader = SafeTensors.Open(path);
        IReadOnlyDictionary<string, string> metadata = reader.Metadata;
        if (!metadata.TryGetValue(FormatKey, out string? format) || format != FormatName)
        {
            throw new InvalidDataException(
                $"'{path}' is a safetensors file but not a Transformers.ML model file (metadata '{FormatKey}' is '{format ?? "missing"}', expected '{FormatName}').");
        }
        if (!metadata.TryGetValue(VersionKey, out string? version) || !int.TryParse(version, out int v) || v < 1 || v > FormatVersion)
        {
            throw new InvalidDataException(
                $"'{path}' has model file format version '{version ?? "missing"}'; this library reads versions 1 to {FormatVersion}.");
        }
        string capability = metadata.TryGetValue(CapabilityKey, out string? c) ? c : "missing";
        if (capability != expectedCapability)
        {
            throw new InvalidDataException(
                $"'{path}' holds a model of kind '{capability}'; expected kind '{expectedCapability}'. Load it with the loader of its own kind.");
        }
        if (!metadata.TryGetValue(ConfigKey, out string? config))
        {
            throw new InvalidDataException($"'{path}' has no '{ConfigKey}' entry in its metadata.");
        }
        Dictionary<string, Tensor> weights = reader.ReadAll(device);
        try
        {
            RefuseNonFinite(path, weights);
        }
        catch
        {
            foreach (Tensor tensor in weights.Values)
            {
                tensor.Dispose();
            }
            throw;
        }
        return new ModelFileContents
        {
            Path = path,
            Capability = capability,
            Config = config,
            Tokenizer = metadata.TryGetValue(TokenizerKey, out string? tokenizer) ? tokenizer : null,
            Metadata = metadata,
            Weights = weights,
        };
    }

    /// <summary>
    /// Puts the file's weights into <paramref name="model"/>, moves it to <paramref name="device"/> in evaluation mode, and
    /// refuses weights that load but give non-finite scores (<see cref="RefuseNonFiniteOutput"/>) for
    /// <paramref name="probe"/>: one forward pass on a minimal input made on the device.
    /// </summary>
    public static void LoadForInference(ModelFileContents contents, nn.Module model, Device device, Func<Device, Tensor> probe)
    {
        LoadInto(model, contents.Weights, contents.Path);
        model.to(device);
        model.eval();
        using (no_grad())
        using (NewDisposeScope())
        {
            RefuseNonFiniteOutput(contents.Path, model, probe(device));
        }
    }

    /// <summary>
    /// After loading: the scores of a one-step forward pass must be finite. Finite but damaged weights (a flipped exponent
    /// bit makes a weight 1e30) overflow to infinity and NaN in the first products; such a file is refused here, not deep
    /// inside libtorch's sampler later. The message names the largest weight.
    /// </summary>
    internal static void RefuseNonFiniteOutput(string source, nn.Module module, Tensor output)
    {
        using var scope = NewDisposeScope();
        if (isfinite(output).all().item<bool>())
        {
            return;
        }
        (string name, double largest) = ModuleState.Of(module)
            .Where(kv => kv.Value.is_floating_point() && kv.Value.numel() > 0)
            .Select(kv => (kv.Key, kv.Value.abs().max().item<float>() * 1.0))
            .MaxBy(x => x.Item2);
        throw new InvalidDataException(
            $"'{source}': the weights load, but a forward pass gives scores that are not finite numbers (the largest weight is {largest:G3}, in tensor '{name}'); the file is damaged.");
    }

    /// <summary>
    /// A weight that is NaN or infinite makes every output NaN (and sampling fail deep inside libtorch): such a file is
    /// damaged, and the message names the first such tensor and how many of its values are bad.
    /// </summary>
    internal static void RefuseNonFinite(string source, IReadOnlyDictionary<string, Tensor> weights)
    {
        foreach ((string name, Tensor tensor) in weights.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!tensor.is_floating_point())
            {
                continue;
            }
            using var scope = NewDisposeScope();
            if (isfinite(tensor).all().item<bool>())
            {
                continue;
            }
            long nan = isnan(tensor).sum().item<long>();
            long infinite = isinf(tensor).sum().item<long>();
            throw new InvalidDataException(
                $"'{source}': tensor '{name}' holds {nan} NaN and {infinite} infinite values (of {tensor.numel()}); a model's weights must be finite numbers, so the file is damaged.");
        }
    }

    /// <summary>
    /// Copies <paramref name="weights"/> into the module's parameters and buffers. Every name must match and every
    /// shape and dtype agree; otherwise the message lists what is missing, unexpected or mismatched.
    /// </summary>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        Dictionary<string, Tensor> state = ModuleState.Of(module);
        var missing = state.Keys.Where(k => !weights.ContainsKey(k)).ToList();
        var unexpected = weights.Keys.Where(k => !state.ContainsKey(k)).ToList();
        var mismatched = state
            .Where(kv => weights.TryGetValue(kv.Key, out Tensor? w) && (!w.shape.SequenceEqual(kv.Value.shape) || w.dtype != kv.Value.dtype))
            .Select(kv => $"{kv.Key}: model ({string.Join(", ", kv.Value.shape)}) {kv.Value.dtype}, file ({string.Join(", ", weights[kv.Key].shape)}) {weights[kv.Key].dtype}")
            .ToList();
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
        {
            static string List(List<string> items) => items.Count == 0 ? "none" : string.Join(", ", items.Take(10)) + (items.Count > 10 ? $" (and {items.Count - 10} more)" : "");
            throw new InvalidDataException(
                $"The weights in '{source}' do not fit the model. Missing: {List(missing)}. Unexpected: {List(unexpected)}. Mismatched: {List(mismatched)}.");
        }
        using (no_grad())
        {
            foreach ((string name, Tensor target) in state)
            {
                target.copy_(weights[name]);
            }
        }
    }
}

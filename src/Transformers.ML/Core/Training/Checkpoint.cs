// Training checkpoints: the weights, the optimizer's moments and the position in the data, in one
// safetensors file written atomically (temp file + rename), so that an interrupted run continues
// exactly where it stopped.
using System.Globalization;
using System.Text.Json;
using Transformers.ML.Core.IO;
using static TorchSharp.torch;

namespace Transformers.ML.Core.Training;

/// <summary>Where a training run is: enough to continue it exactly.</summary>
internal sealed record TrainingState
{
    /// <summary>Epoch being run (0-based).</summary>
    public int Epoch { get; set; }

    /// <summary>Batches of <see cref="Epoch"/> already consumed.</summary>
    public int BatchInEpoch { get; set; }

    /// <summary>Optimizer steps taken.</summary>
    public long Step { get; set; }

    public double? BestMetric { get; set; }

    public int BadEvaluations { get; set; }

    /// <summary>Seed of the run; a checkpoint from another seed is refused.</summary>
    public int Seed { get; set; }

    /// <summary>The steps a time budget planned (null without one): a resumed run keeps the same schedule.</summary>
    public long? PlannedSteps { get; set; }

    /// <summary>Where the schedule went on from when the plan last moved (null when it never moved, and for the inverse square root schedule).</summary>
    public ScheduleAnchor? ScheduleAnchor { get; set; }

    /// <summary>Snapshots in the running mean of checkpoint averaging (the mean itself is saved beside the checkpoint).</summary>
    public int AveragedCheckpoints { get; set; }
}

internal static class Checkpoint
{
    private const string Capability = "checkpoint";
    private const string StateKey = "training_state";
    private const string ModelPrefix = "model.";
    private const string OptimizerPrefix = "optimizer.";

    public static void Save(string path, nn.Module model, AdamW optimizer, TrainingState state, string modelConfigJson)
    {
        var tensors = ModuleState.Of(model).Select(kv => new KeyValuePair<string, Tensor>(ModelPrefix + kv.Key, kv.Value))
            .Concat(optimizer.StateTensors().Select(kv => new KeyValuePair<string, Tensor>(OptimizerPrefix + kv.Key, kv.Value)));
        var metadata = new Dictionary<string, string>
        {
            ["format"] = ModelFile.FormatName,
            ["format_version"] = ModelFile.FormatVersion.ToString(CultureInfo.InvariantCulture),
            ["capability"] = Capability,
            ["config"] = modelConfigJson,
            [StateKey] = JsonSerializer.Serialize(state),
        };
        SafeTensors.Write(path, tensors, metadata);
    }

    /// <summary>Restores weights and optimizer state; returns the saved position in training.</summary>
    public static TrainingState Load(string path, nn.Module model, AdamW optimizer, string modelConfigJson)
    {
        using ModelFileContents contents = ModelFile.Load(path, Capability);
        if (contents.Config != modelConfigJson)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' was written for another model configuration ({contents.Config}); this run has {modelConfigJson}. " +
                "Delete the checkpoint or set ResumeFromCheckpoint to false.");
        }
        TrainingState state = contents.Metadata.TryGetValue(StateKey, out string? json)
            ? JsonSerializer.Deserialize<TrainingState>(json) ?? throw new InvalidDataException($"Checkpoint '{path}' has an empty training state.")
            : throw new InvalidDataException($"Checkpoint '{path}' has no '{StateKey}' entry in its metadata.");
        var modelWeights = contents.Weights.Where(kv => kv.Key.StartsWith(ModelPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[ModelPrefix.Length..], kv => kv.Value);
        var optimizerState = contents.Weights.Where(kv => kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[OptimizerPrefix.Length..], kv => kv.Value);
        ModelFile.LoadInto(model, modelWeights, path);
        optimizer.LoadState(optimizerState, state.Step, path);
        return state;
    }
}

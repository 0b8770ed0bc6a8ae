using System.Diagnostics;
using TorchSharp;
using Transformers.ML.Core.Modules;
using Transformers.ML.Core.Training;
using static TorchSharp.torch;

namespace Transformers.ML.Benchmarks;

/// <summary>
/// Training throughput (tokens/s) of an encoder stack and of a decoder stack built from the Core blocks, through
/// the library's training loop and through a plain loop over the same batches, with the model FLOPs utilisation:
///   MFU = (6 N + 12 L d T) tokens/s / matmul rate
/// (N parameters that take part in matrix multiplies, L layers, d width, T sequence length: the forward and
/// backward FLOPs per token of the weights and of the attention scores, as nanoGPT and PaLM count them).
/// </summary>
internal static class TrainingThroughputBenchmark
{
    private const int Vocabulary = 512;
    private const int Length = 128;
    internal const int Batch = 16;
    private const int Rounds = 3;

    public static void Run(ResultsTable table, BenchmarkOptions options, double matmulGflops)
    {
        // The shape ENVIRONMENT.md quotes: a 4-layer, d=256 stack, sequences of 128, batches of 16.
        var config = new TransformerConfig
        {
            NumLayers = 4,
            ModelDimension = 256,
            FeedForwardDimension = 1024,
            NumHeads = 4,
            Dropout = 0.1,
            MaxSequenceLength = Length,
        };
        int steps = options.Quick ? 8 : 20;
        foreach (bool causal in new[] { false, true })
        {
            string name = causal ? "decoder stack (causal LM)" : "encoder stack (token prediction)";
            manual_seed(1);
            using var model = new StackLanguageModel(config, Vocabulary, causal);
            long parameters = model.parameters().Sum(p => p.numel());
            double flopsPerToken = 6.0 * parameters + 12.0 * config.NumLayers * config.ModelDimension * Length;

            // Alternate the two loops and keep each one's best run, so that a burst of other load on a shared
            // 2-core machine does not decide the ratio.
            double plain = 0, loop = 0;
            for (int round = 0; round < Rounds; round++)
            {
                plain = Math.Max(plain, PlainLoop(model, steps));
                loop = Math.Max(loop, LibraryLoop(model, config, steps));
            }
            foreach ((string how, double tokensPerSecond) in new[] { ("plain TorchSharp loop", plain), ("library TrainingLoop", loop) })
            {
                double mfu = tokensPerSecond * flopsPerToken / (matmulGflops * 1e9);
                table.Add(new BenchmarkRow("core", $"{name} training, {how}", tokensPerSecond, "tokens/s", "-",
                    $"N={parameters / 1e6:F2}M L=4 d=256 T={Length} B={Batch}; MFU {mfu:P1}"));
            }
            table.Add(new BenchmarkRow("core", $"{name}: library loop / plain loop", loop / plain, "ratio", ">= 0.97", $"best of {Rounds} alternating runs of {steps} steps"));
        }
    }

    /// <summary>forward, loss, backward, clip, AdamW step: the least a training step can do.</summary>
    private static double PlainLoop(StackLanguageModel model, int steps)
    {
        var data = new SyntheticTokens(seed: 2);
        using var optimizer = new AdamW(model.named_parameters(), 0.9, 0.98, 1e-9, 0.01);
        model.train();
        double seconds = 0;
        for (int step = -2; step < steps; step++) // two warm-up steps
        {
            var clock = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                (Tensor input, Tensor target) = data.Batch(step + 2);
                optimizer.ZeroGrad();
                LossSum loss = LabelSmoothedCrossEntropy.Sum(model.Forward(input), target, 0.1);
                loss.Sum.div(loss.Count).backward();
                nn.utils.clip_grad_norm_(optimizer.Parameters, 1.0);
                optimizer.Step(1e-4);
            }
            if (step >= 0)
            {
                seconds += clock.Elapsed.TotalSeconds;
            }
        }
        return steps * Batch * Length / seconds;
    }

    private static double LibraryLoop(StackLanguageModel model, TransformerConfig config, int steps)
    {
        var task = new SyntheticTask(model, new SyntheticTokens(seed: 2), steps + 2);
        var options = new TrainingOptions { Epochs = 1, LearningRate = 1e-4, WarmupSteps = 0, LogEverySteps = 1_000_000 };
        using var reporter = new TrainingReporter(null, "benchmark", null);
        new TrainingLoop<int>(model, options, task, reporter, config.ModelDimension, config.ToJson()).Run();
        // Throughput over the steps after the two warm-up steps, as the plain loop.
        return steps * Batch * Length / task.SecondsAfterWarmup;
    }

    /// <summary>Random token batches (next-token targets); the same sequence for both loops.</summary>
    private sealed class SyntheticTokens(int seed)
    {
        public (Tensor Input, Tensor Target) Batch(int index)
        {
            using var generator = new Generator((ulong)(seed * 1000 + index));
            Tensor tokens = randint(0, Vocabulary, new long[] { TrainingThroughputBenchmark.Batch, Length + 1 }, generator: generator);
            return (tokens.narrow(1, 0, Length), tokens.narrow(1, 1, Length));
        }
    }

    private sealed class SyntheticTask(StackLanguageModel model, SyntheticTokens data, int batches) : ITrainingTask<int>
    {
        private Stopwatch? _clock;

        public double SecondsAfterWarmup => _clock!.Elapsed.TotalSeconds;

        public string ThroughputUnit => "tokens";

        public IReadOnlyList<int> PlanEpoch(int epoch, Random random) => Enumerable.Range(0, batches).ToList();

        public LossSum ComputeLoss(int batch)
        {
            if (batch == 2)
            {
                _clock = Stopwatch.StartNew(); // after the two warm-up steps
            }
            (Tensor input, Tensor target) = data.Batch(batch);
            return LabelSmoothedCrossEntropy.Sum(model.Forward(input), target, 0.1);
        }

        public ValidationResult? Validate()
        {
            _clock?.Stop();
            return null;
        }

        public string? Sample(int epoch) => null;
    }
}

/// <summary>Token embedding, an encoder or causal decoder stack, and the tied output projection.</summary>
internal sealed class StackLanguageModel : nn.Module
{
    private readonly TokenEmbedding _embedding;
    private readonly TransformerEncoder? _encoder;
    private readonly TransformerDecoder? _decoder;

    public StackLanguageModel(TransformerConfig config, int vocabulary, bool causal)
        : base("lm")
    {
        _embedding = new TokenEmbedding("embedding", vocabulary, config);
        if (causal)
        {
            _decoder = new TransformerDecoder("decoder", config, crossAttention: false);
        }
        else
        {
            _encoder = new TransformerEncoder("encoder", config);
        }
        RegisterComponents();
    }

    public Tensor Forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        Tensor x = _embedding.Forward(tokens);
        Tensor hidden = _decoder is not null ? _decoder.Forward(x).Hidden : _encoder!.Forward(x).Hidden;
        return _embedding.Logits(hidden).MoveToOuterDisposeScope();
    }
}

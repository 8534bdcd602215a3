using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Models;
using Recsys.Engine.Nn;
using Recsys.Engine.Operations;
using Recsys.Engine.Optim;

namespace Recsys.Engine.Training;

/// <summary>Progress of a training run, reported every <see cref="TrainingOptions.LogEvery"/> steps.</summary>
public readonly record struct TrainProgress(int Epoch, long Step, long Examples, double MeanLossSinceLast, double ExamplesPerSecond);

/// <summary>
/// Trains a <see cref="RankingModel"/> with BCE-with-logits: one tape per step (reset, not rebuilt),
/// dense optimizer after backward, embedding rows updated inside backward by the fused sparse optimizer.
/// After the first steps a step allocates ~nothing: tensors come from the tape's arena.
/// </summary>
public sealed class Trainer
{
    private readonly Tape _tape = new();
    private readonly Tape _inference = new() { RecordingEnabled = false };

    public RankingModel Model { get; }
    public TrainingOptions Options { get; }
    public Optimizer DenseOptimizer { get; }
    public long Step { get; private set; }

    /// <summary>When set, each training step adds its per-op forward/backward times and the optimizer's time to it.</summary>
    public TapeProfile? Profile
    {
        get => _tape.Profile;
        set => _tape.Profile = value;
    }

    public Trainer(RankingModel model, TrainingOptions options)
    {
        options.Validate();
        Model = model;
        Options = options;
        float lr = options.LearningRate;
        float embLr = options.EmbeddingLearningRate ?? lr;
        var dense = model.Parameters();
        (DenseOptimizer, model.Embeddings.Optimizer) = options.Optimizer switch
        {
            OptimizerKind.Sgd => ((Optimizer)new Sgd(dense, lr), (SparseOptimizer)new SparseSgd(embLr)),
            OptimizerKind.Adagrad => (new Adagrad(dense, lr), new RowwiseAdagrad(embLr)),
            OptimizerKind.Adam => (new Adam(dense, lr), new SparseAdam(embLr)),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Optimizer, "unknown optimizer"),
        };
    }

    /// <summary>One step on <paramref name="batch"/>; returns the mean loss of the batch.</summary>
    public float TrainStep(Batch batch)
    {
        _tape.Reset();
        var logits = Model.Forward(_tape, batch);
        var targets = _tape.Arena.Allocate(new Shape(batch.Size));
        batch.LabelSpan.CopyTo(targets.Span);
        var loss = Ops.BceWithLogits(_tape, logits, targets);
        float value = loss[0];
        if (!float.IsFinite(value))
            throw new InvalidOperationException($"Training diverged: loss is {value} at step {Step + 1}. Lower the learning rate.");
        _tape.Backward(loss);
        long optStart = System.Diagnostics.Stopwatch.GetTimestamp();
        DenseOptimizer.Step();
        if (_tape.Profile is { } profile)
        {
            profile.Add("optimizer (dense)", 0, System.Diagnostics.Stopwatch.GetTimestamp() - optStart);
            profile.Steps++;
        }
        Step++;
        return value;
    }

    /// <summary>Trains on each batch of <paramref name="batches"/> once (one epoch).</summary>
    public void TrainEpoch(IEnumerable<Batch> batches, int epoch, Action<TrainProgress>? progress = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        double lossSum = 0;
        long lossCount = 0, examples = 0;
        foreach (var batch in batches)
        {
            float loss = TrainStep(batch);
            lossSum += loss * (double)batch.Size;
            lossCount += batch.Size;
            examples += batch.Size;
            if (progress is not null && Step % Options.LogEvery == 0)
            {
                progress(new TrainProgress(epoch, Step, examples, lossSum / lossCount, examples / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
                lossSum = 0; lossCount = 0;
            }
        }
        if (progress is not null && lossCount > 0)
            progress(new TrainProgress(epoch, Step, examples, lossSum / lossCount, examples / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
    }

    /// <summary>Writes the logit of every sample of <paramref name="batch"/> into <paramref name="logits"/>.</summary>
    public void Predict(Batch batch, Span<float> logits)
    {
        _inference.Reset();
        var y = Model.Forward(_inference, batch);
        y.ReadOnlySpan.CopyTo(logits);
        _inference.Reset();
    }
}

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
/// <para>
/// Trains on the model's device. On a GPU each batch is uploaded once per step (dense features, labels, ids), every op
/// runs there, and the loss is reduced there too: <see cref="TrainEpoch"/> adds each step's loss into a device
/// accumulator and reads it back only at progress intervals (where it also checks for divergence).
/// </para>
/// </summary>
public sealed class Trainer
{
    private readonly Tape _tape;
    private readonly Tape _inference;
    // Device only: Σ loss·batch since the last progress report, and a host slot to read one scalar back.
    private readonly Tensor? _lossSum;
    private readonly float[] _scalar = new float[1];

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
        _tape = new Tape(model.Device);
        _inference = new Tape(model.Device) { RecordingEnabled = false };
        if (model.Device.IsGpu)
        {
            _lossSum = new Tensor(Shape.Scalar, model.Device);
            model.Embeddings.DeterministicOnDevice = !options.GpuAtomics;
        }
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

    /// <summary>
    /// One step on <paramref name="batch"/>; returns the mean loss of the batch. On a GPU this reads the loss back (one
    /// scalar, a wait for the step) to return it; <see cref="TrainEpoch"/> does not.
    /// </summary>
    public float TrainStep(Batch batch)
    {
        var loss = ForwardLoss(batch);
        float value;
        if (loss.IsOnDevice)
        {
            loss.CopyTo(_scalar);
            value = _scalar[0];
        }
        else value = loss[0];
        if (!float.IsFinite(value))
            throw new InvalidOperationException($"Training diverged: loss is {value} at step {Step + 1}. Lower the learning rate.");
        BackwardAndUpdate(loss);
        return value;
    }

    /// <summary>
    /// One step on a GPU model without reading the loss back: it is added (× batch size) into the device accumulator
    /// that <see cref="TrainEpoch"/> reads at progress intervals.
    /// </summary>
    private void TrainStepOnDevice(Batch batch)
    {
        var loss = ForwardLoss(batch);
        Recsys.Kernels.Elementwise.ElementwiseGpuKernels.Axpy(Model.Device.Gpu, batch.Size, loss.View, _lossSum!.View, 1);
        BackwardAndUpdate(loss);
    }

    private Tensor ForwardLoss(Batch batch)
    {
        _tape.Reset();
        var logits = Model.Forward(_tape, batch);
        var targets = _tape.Arena.Allocate(new Shape(batch.Size));
        if (targets.IsOnDevice) targets.CopyFrom(batch.LabelSpan);
        else batch.LabelSpan.CopyTo(targets.Span);
        return Ops.BceWithLogits(_tape, logits, targets);
    }

    private void BackwardAndUpdate(Tensor loss)
    {
        _tape.Backward(loss);
        long optStart = System.Diagnostics.Stopwatch.GetTimestamp();
        DenseOptimizer.Step();
        if (_tape.Profile is { } profile)
        {
            profile.Add("optimizer (dense)", 0, System.Diagnostics.Stopwatch.GetTimestamp() - optStart);
            profile.Steps++;
        }
        Step++;
    }

    /// <summary>Trains on each batch of <paramref name="batches"/> once (one epoch).</summary>
    public void TrainEpoch(IEnumerable<Batch> batches, int epoch, Action<TrainProgress>? progress = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        double lossSum = 0;
        long lossCount = 0, examples = 0;
        bool onDevice = _lossSum is not null;
        _lossSum?.Clear();
        foreach (var batch in batches)
        {
            if (onDevice) TrainStepOnDevice(batch);
            else lossSum += TrainStep(batch) * (double)batch.Size;
            lossCount += batch.Size;
            examples += batch.Size;
            if (Step % Options.LogEvery == 0 && (progress is not null || onDevice))
            {
                if (onDevice) lossSum = ReadLossSum();
                progress?.Invoke(new TrainProgress(epoch, Step, examples, lossSum / lossCount, examples / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
                lossSum = 0; lossCount = 0;
            }
        }
        if (onDevice && lossCount > 0) lossSum = ReadLossSum();
        if (progress is not null && lossCount > 0)
            progress(new TrainProgress(epoch, Step, examples, lossSum / lossCount, examples / Math.Max(1e-9, sw.Elapsed.TotalSeconds)));
    }

    /// <summary>Reads and clears the device loss accumulator; a non-finite sum means training diverged in the last interval.</summary>
    private double ReadLossSum()
    {
        _lossSum!.CopyTo(_scalar);
        _lossSum.Clear();
        if (!float.IsFinite(_scalar[0]))
            throw new InvalidOperationException($"Training diverged: loss is {_scalar[0]} in the steps up to step {Step}. Lower the learning rate.");
        return _scalar[0];
    }

    /// <summary>Writes the logit of every sample of <paramref name="batch"/> into <paramref name="logits"/>.</summary>
    public void Predict(Batch batch, Span<float> logits)
    {
        _inference.Reset();
        var y = Model.Forward(_inference, batch);
        y.CopyTo(logits); // from the device when the model lives there: logits go back to the host for metrics
        _inference.Reset();
    }
}

namespace Recsys.Engine.Training;

/// <summary>Which optimizer family trains the model: dense parameters and embedding tables get the matching pair.</summary>
public enum OptimizerKind
{
    /// <summary>SGD on dense parameters; sparse SGD on embedding rows.</summary>
    Sgd,
    /// <summary>Adagrad on dense parameters; row-wise Adagrad on embedding rows (FBGEMM/TorchRec).</summary>
    Adagrad,
    /// <summary>Adam on dense parameters; PyTorch SparseAdam semantics on embedding rows.</summary>
    Adam,
}

/// <summary>How to train: plain data, validated once.</summary>
public sealed record TrainingOptions
{
    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 256;
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Learning rate of the embedding tables; the dense one when null.</summary>
    public float? EmbeddingLearningRate { get; init; }
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;
    /// <summary>Shuffle training rows each epoch (seeded); false keeps file order.</summary>
    public bool Shuffle { get; init; }
    public ulong Seed { get; init; } = 42;
    /// <summary>Progress is reported every this many steps.</summary>
    public int LogEvery { get; init; } = 50;
    /// <summary>
    /// Where to train: <c>cpu</c> (SIMD kernels), <c>gpu</c> (CUDA; fails when no device exists) or <c>ilgpu-cpu</c> (the
    /// GPU kernels on ILGPU's CPU accelerator). Used by <see cref="TrainingJob"/>, which opens the device and disposes it
    /// at the end; a <see cref="Trainer"/> trains on the device of the model it is given.
    /// </summary>
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// On a GPU, let sparse SGD scatter embedding gradients with float atomics (faster; the summation order, hence the
    /// last bits, vary run to run). False (default): the deterministic kernel.
    /// </summary>
    public bool GpuAtomics { get; init; }

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"epochs must be >= 1, got {Epochs}.");
        if (BatchSize < 1) throw new ArgumentException($"batch size must be >= 1, got {BatchSize}.");
        if (!(LearningRate > 0) || float.IsInfinity(LearningRate)) throw new ArgumentException($"learning rate must be a finite number > 0, got {LearningRate}.");
        if (EmbeddingLearningRate is { } e && (!(e > 0) || float.IsInfinity(e))) throw new ArgumentException($"embedding learning rate must be a finite number > 0, got {e}.");
        Core.Device.ValidateName(Device);
        if (LogEvery < 1) throw new ArgumentException($"log interval must be >= 1, got {LogEvery}.");
    }
}

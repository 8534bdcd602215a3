using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Engine.Nn;

/// <summary>
/// An optimizer applied inside the backward of an <see cref="EmbeddingBagCollection"/>, to the touched
/// rows only. <see cref="StepCount"/> advances once per backward of the collection (all tables share
/// it); Adam's bias correction uses it.
/// </summary>
public abstract class SparseOptimizer
{
    private float _learningRate;

    protected SparseOptimizer(float learningRate) => LearningRate = learningRate;

    public float LearningRate
    {
        get => _learningRate;
        set
        {
            if (!(value >= 0) || float.IsInfinity(value))
                throw new ArgumentOutOfRangeException(nameof(value), value, $"{GetType().Name}: learning rate must be finite and >= 0, got {value}.");
            _learningRate = value;
        }
    }

    /// <summary>Optimizer steps taken so far (0 before the first backward).</summary>
    public long StepCount { get; private set; }

    /// <summary>Advances the step counter and returns the kernel parameters of the new step.</summary>
    internal SparseUpdate NextStep() => ToUpdate(++StepCount);

    private protected abstract SparseUpdate ToUpdate(long step);
}

/// <summary>w -= lr · g on touched rows.</summary>
public sealed class SparseSgd : SparseOptimizer
{
    public SparseSgd(float learningRate) : base(learningRate) { }

    private protected override SparseUpdate ToUpdate(long step) => SparseUpdate.Sgd(LearningRate);
}

/// <summary>
/// Row-wise Adagrad as in FBGEMM/TorchRec (EXACT_ROWWISE_ADAGRAD): one accumulator per row, starting at 0;
/// s += mean_j(g_j²); w -= lr · g / (√s + eps).
/// </summary>
public sealed class RowwiseAdagrad : SparseOptimizer
{
    public float Eps { get; }

    public RowwiseAdagrad(float learningRate, float eps = 1e-8f) : base(learningRate)
    {
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, $"RowwiseAdagrad: eps must be >= 0, got {eps}.");
        Eps = eps;
    }

    private protected override SparseUpdate ToUpdate(long step) => SparseUpdate.RowwiseAdagrad(LearningRate, Eps);
}

/// <summary>
/// PyTorch's SparseAdam: m and v are updated for touched rows only; with t = <see cref="SparseOptimizer.StepCount"/>,
/// w -= lr·√(1-β2^t)/(1-β1^t) · m / (√v + eps).
/// </summary>
public sealed class SparseAdam : SparseOptimizer
{
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }

    public SparseAdam(float learningRate, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f) : base(learningRate)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, $"SparseAdam: beta1 must be in [0, 1), got {beta1}.");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, $"SparseAdam: beta2 must be in [0, 1), got {beta2}.");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, $"SparseAdam: eps must be >= 0, got {eps}.");
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
    }

    private protected override SparseUpdate ToUpdate(long step) => SparseUpdate.Adam(LearningRate, Beta1, Beta2, Eps, step);
}

using Recsys.Engine.Core;
using Recsys.Kernels.Optim;

namespace Recsys.Engine.Optim;

/// <summary>torch.optim.Adagrad (initial accumulator 0, no learning-rate decay).</summary>
public sealed class Adagrad : Optimizer
{
    private readonly float[]?[] _sum;
    private readonly Tensor?[] _deviceSum;

    public float Epsilon { get; }
    public float WeightDecay { get; }

    public Adagrad(IEnumerable<Parameter> parameters, float learningRate = 1e-2f, float epsilon = 1e-10f, float weightDecay = 0f)
        : base(parameters, learningRate)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, $"Adagrad: epsilon must be > 0, got {epsilon}.");
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _sum = new float[]?[Parameters.Count];
        _deviceSum = new Tensor?[Parameters.Count];
    }

    protected override void Update(Parameter p, int index)
    {
        if (p.Value.IsOnDevice)
        {
            var ds = _deviceSum[index] ??= DeviceState(p, _sum[index]);
            DenseOptimizerGpuKernels.Adagrad(p.Device.Gpu, p.Value.View, p.Grad.View, ds.View, p.Value.Length, LearningRate, Epsilon, WeightDecay);
            return;
        }
        var s = _sum[index] ??= new float[p.Value.Length];
        DenseOptimizerKernels.Adagrad(p.Value.Span, p.Grad.ReadOnlySpan, s, LearningRate, Epsilon, WeightDecay);
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Optim;

namespace Recsys.Engine.Optim;

/// <summary>torch.optim.SGD: optional momentum and (coupled) weight decay.</summary>
public sealed class Sgd : Optimizer
{
    private readonly float[]?[] _momentum;
    private readonly bool[] _started;
    private readonly Tensor?[] _deviceMomentum;

    public float Momentum { get; }
    public float WeightDecay { get; }

    public Sgd(IEnumerable<Parameter> parameters, float learningRate, float momentum = 0f, float weightDecay = 0f)
        : base(parameters, learningRate)
    {
        if (momentum < 0 || momentum >= 1) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, $"Sgd: momentum must be in [0, 1), got {momentum}.");
        Momentum = momentum;
        WeightDecay = weightDecay;
        _momentum = new float[]?[Parameters.Count];
        _started = new bool[Parameters.Count];
        _deviceMomentum = new Tensor?[Parameters.Count];
    }

    protected override void Update(Parameter p, int index)
    {
        if (p.Value.IsOnDevice)
        {
            var buf = Momentum != 0f ? (_deviceMomentum[index] ??= DeviceState(p, _momentum[index])).View : default;
            DenseOptimizerGpuKernels.Sgd(p.Device.Gpu, p.Value.View, p.Grad.View, buf, p.Value.Length, LearningRate, Momentum, WeightDecay,
                firstStep: !_started[index]);
            _started[index] = true;
            return;
        }
        Span<float> buffer = default;
        if (Momentum != 0f) buffer = _momentum[index] ??= new float[p.Value.Length];
        DenseOptimizerKernels.Sgd(p.Value.Span, p.Grad.ReadOnlySpan, buffer, LearningRate, Momentum, WeightDecay, firstStep: !_started[index]);
        _started[index] = true;
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Optim;

namespace Recsys.Engine.Optim;

/// <summary>
/// torch.optim.Adam (or AdamW when <c>decoupledWeightDecay</c>). The step count is per parameter, as in
/// PyTorch: a parameter skipped in a step (untouched) does not advance its bias correction.
/// </summary>
public sealed class Adam : Optimizer
{
    private readonly float[]?[] _m;
    private readonly float[]?[] _v;
    private readonly long[] _steps;
    private readonly Tensor?[] _deviceM;
    private readonly Tensor?[] _deviceV;

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }
    public bool DecoupledWeightDecay { get; }

    public Adam(IEnumerable<Parameter> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float epsilon = 1e-8f, float weightDecay = 0f, bool decoupledWeightDecay = false)
        : base(parameters, learningRate)
    {
        if (beta1 < 0 || beta1 >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, $"Adam: beta1 must be in [0, 1), got {beta1}.");
        if (beta2 < 0 || beta2 >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, $"Adam: beta2 must be in [0, 1), got {beta2}.");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, $"Adam: epsilon must be > 0, got {epsilon}.");
        Beta1 = beta1; Beta2 = beta2; Epsilon = epsilon; WeightDecay = weightDecay; DecoupledWeightDecay = decoupledWeightDecay;
        _m = new float[]?[Parameters.Count];
        _v = new float[]?[Parameters.Count];
        _steps = new long[Parameters.Count];
        _deviceM = new Tensor?[Parameters.Count];
        _deviceV = new Tensor?[Parameters.Count];
    }

    /// <summary>Number of updates applied to parameter <paramref name="index"/>.</summary>
    public long StepCount(int index) => _steps[index];

    protected override void Update(Parameter p, int index)
    {
        if (p.Value.IsOnDevice)
        {
            var dm = _deviceM[index] ??= DeviceState(p, _m[index]);
            var dv = _deviceV[index] ??= DeviceState(p, _v[index]);
            DenseOptimizerGpuKernels.Adam(p.Device.Gpu, p.Value.View, p.Grad.View, dm.View, dv.View, p.Value.Length, LearningRate, Beta1, Beta2,
                Epsilon, WeightDecay, DecoupledWeightDecay, ++_steps[index]);
            return;
        }
        var m = _m[index] ??= new float[p.Value.Length];
        var v = _v[index] ??= new float[p.Value.Length];
        long step = ++_steps[index];
        DenseOptimizerKernels.Adam(p.Value.Span, p.Grad.ReadOnlySpan, m, v, LearningRate, Beta1, Beta2, Epsilon, WeightDecay, DecoupledWeightDecay, step);
    }
}

using Recsys.Engine.Core;

namespace Recsys.Engine.Optim;

/// <summary>
/// A dense optimizer over a group of parameters. <see cref="Step"/> updates only parameters that were
/// touched by the step's backward (<see cref="Parameter.Touched"/>): an unused parameter gets no
/// state change and no weight decay, which weight-sharing supernets rely on. Frozen parameters are
/// skipped. Several optimizers (one per parameter group, each with its own learning rate) can train
/// one model; <see cref="OptimizerSet"/> steps them together.
/// </summary>
public abstract class Optimizer
{
    private readonly Parameter[] _parameters;

    protected Optimizer(IEnumerable<Parameter> parameters, float learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.ToArray();
        var dup = _parameters.GroupBy(p => p).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"{GetType().Name}: parameter '{dup.Key.Name}' is listed twice.");
        LearningRate = learningRate;
    }

    public IReadOnlyList<Parameter> Parameters => _parameters;

    private float _lr;
    public float LearningRate
    {
        get => _lr;
        set
        {
            if (!(value >= 0) || float.IsInfinity(value))
                throw new ArgumentOutOfRangeException(nameof(LearningRate), value, $"{GetType().Name}: learning rate must be finite and >= 0, got {value}.");
            _lr = value;
        }
    }

    /// <summary>Multiplies every gradient before the update (loss scaling, gradient-norm clipping).</summary>
    public float GradientScale { get; set; } = 1f;

    /// <summary>Applies one update to each touched, trainable parameter, then zeroes its gradient.</summary>
    public void Step()
    {
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (!p.Touched || p.Frozen) continue;
            if (GradientScale != 1f && p.Grad.IsOnDevice)
                Recsys.Kernels.Elementwise.ElementwiseGpuKernels.Scale(p.Device.Gpu, p.Grad.View, GradientScale, p.Grad.Length);
            else if (GradientScale != 1f)
            {
                var g = p.Grad.Span;
                for (int j = 0; j < g.Length; j++) g[j] *= GradientScale;
            }
            Update(p, i);
            p.ZeroGrad();
        }
    }

    /// <summary>Zeroes the gradients of all parameters without updating.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters) p.ZeroGrad();
    }

    /// <summary>
    /// Optimizer state on the parameter's device: a zeroed device tensor shaped like <paramref name="p"/>, or, when the
    /// parameter has host state from before a move, a device copy of it (training continues where it was).
    /// </summary>
    private protected static Tensor DeviceState(Parameter p, float[]? hostState)
    {
        var t = new Tensor(p.Shape, p.Device) { Name = p.Name + ".state" };
        if (hostState is not null) t.CopyFrom(hostState);
        return t;
    }

    /// <summary>Updates parameter <paramref name="index"/> (of <see cref="Parameters"/>) from its gradient.</summary>
    protected abstract void Update(Parameter p, int index);
}

/// <summary>Several optimizers (parameter groups) stepped together.</summary>
public sealed class OptimizerSet
{
    public IReadOnlyList<Optimizer> Optimizers { get; }

    public OptimizerSet(params Optimizer[] optimizers)
    {
        Optimizers = optimizers;
        var seen = new HashSet<Parameter>();
        foreach (var o in optimizers)
            foreach (var p in o.Parameters)
                if (!seen.Add(p))
                    throw new ArgumentException($"OptimizerSet: parameter '{p.Name}' belongs to two optimizers.");
    }

    public void Step()
    {
        foreach (var o in Optimizers) o.Step();
    }

    public void ZeroGrad()
    {
        foreach (var o in Optimizers) o.ZeroGrad();
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Optim;

namespace Recsys.Engine.Optim;

/// <summary>torch.nn.utils.clip_grad_norm_: scales all touched gradients so their global L2 norm is at most maxNorm.</summary>
public static class GradientClipping
{
    /// <returns>The global gradient norm before clipping.</returns>
    public static double ClipByGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"ClipByGlobalNorm: maxNorm must be > 0, got {maxNorm}.");
        var touched = parameters.Where(p => p.Touched && !p.Frozen).ToArray();
        if (touched.FirstOrDefault(p => p.Value.IsOnDevice) is { } onDevice)
            throw new NotSupportedException($"ClipByGlobalNorm has no GPU path: parameter '{onDevice.Name}' lives on device '{onDevice.Device.Name}'.");
        double sum = 0;
        foreach (var p in touched) sum += DenseOptimizerKernels.SumOfSquares(p.Grad.ReadOnlySpan);
        double norm = Math.Sqrt(sum);
        double coef = maxNorm / (norm + 1e-6);
        if (coef < 1)
        {
            float c = (float)coef;
            foreach (var p in touched)
            {
                var g = p.Grad.Span;
                for (int i = 0; i < g.Length; i++) g[i] *= c;
            }
        }
        return norm;
    }
}

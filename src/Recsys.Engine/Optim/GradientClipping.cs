using ILGPU;
using ILGPU.Runtime;
using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.Optim;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Optim;

/// <summary>torch.nn.utils.clip_grad_norm_: scales all touched gradients so their global L2 norm is at most maxNorm.</summary>
public static class GradientClipping
{
    /// <returns>The global gradient norm before clipping.</returns>
    public static double ClipByGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"ClipByGlobalNorm: maxNorm must be > 0, got {maxNorm}.");
        var touched = parameters.Where(p => p.Touched && !p.Frozen).ToArray();
        double sum = 0;
        bool anyOnDevice = false;
        foreach (var p in touched)
        {
            if (p.Grad.IsOnDevice) anyOnDevice = true;
            else sum += DenseOptimizerKernels.SumOfSquares(p.Grad.ReadOnlySpan);
        }
        if (anyOnDevice) sum += DeviceSumOfSquares(touched.Where(p => p.Grad.IsOnDevice).ToArray());
        double norm = Math.Sqrt(sum);
        double coef = maxNorm / (norm + 1e-6);
        if (coef < 1)
        {
            float c = (float)coef;
            foreach (var p in touched)
            {
                if (p.Grad.IsOnDevice)
                {
                    ElementwiseGpuKernels.Scale(p.Device.Gpu, p.Grad.View, c, p.Grad.Length);
                    continue;
                }
                var g = p.Grad.Span;
                for (int i = 0; i < g.Length; i++) g[i] *= c;
            }
        }
        return norm;
    }

    /// <summary>
    /// Σ g² over device gradients: one reduction per parameter into one slot each, then a single read back (the norm is
    /// returned to the caller, so one wait is unavoidable); the slots are summed in float64 on the host.
    /// </summary>
    private static double DeviceSumOfSquares(Parameter[] parameters)
    {
        double sum = 0;
        foreach (var group in parameters.GroupBy(p => p.Device))
        {
            var gpu = group.Key.Gpu;
            var ps = group.ToArray();
            using var slots = gpu.Pool.Rent<float>(ps.Length);
            for (int i = 0; i < ps.Length; i++)
                ReduceGpuKernels.SumOfSquares(gpu, ps[i].Grad.View, slots.View.SubView(i, 1), ps[i].Grad.Length);
            var host = new float[ps.Length];
            gpu.Synchronize();
            ((ArrayView1D<float, Stride1D.Dense>)slots.View).CopyToCPU(gpu.Stream, host);
            gpu.Synchronize();
            foreach (var v in host) sum += v;
        }
        return sum;
    }
}

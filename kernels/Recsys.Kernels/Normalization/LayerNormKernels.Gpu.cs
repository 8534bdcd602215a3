using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Normalization;

/// <summary>
/// LayerNorm over the last dimension on the GPU: y = (x − mean)·rstd·gamma + beta, rstd = 1/sqrt(var + eps) (biased
/// variance). Forward saves mean and rstd per row; backward accumulates dx, dgamma, dbeta. One group per row for the row
/// reductions, one thread per column for dgamma/dbeta (summed over rows in order): deterministic, no atomics.
/// </summary>
public static class LayerNormGpuKernels
{
    public const float DefaultEps = 1e-5f;

    internal struct NormArgs
    {
        public int Rows, D;
        public float Eps;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<KernelConfig, NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Forward = null!;
        internal Action<KernelConfig, NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> InputBackward = null!;
        internal Action<Index1D, NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> ParamBackward = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                Forward = acc.LoadStreamKernel<NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ForwardKernel),
                InputBackward = acc.LoadStreamKernel<NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(InputBackwardKernel),
                ParamBackward = acc.LoadAutoGroupedStreamKernel<Index1D, NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ParamBackwardKernel),
            };
        }
    }

    /// <summary>x, y [rows, D]; gamma, beta [D]; mean, rstd [rows] (saved for backward).</summary>
    public static void Forward(GpuDevice device, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> mean, ArrayView<float> rstd, int rows, int dim, float eps = DefaultEps)
    {
        var a = Check(device, x, gamma, mean, rstd, rows, dim, eps, nameof(Forward));
        GpuKernelUtil.AtLeast(beta, dim, nameof(beta), nameof(Forward));
        GpuKernelUtil.AtLeast(y, (long)rows * dim, nameof(y), nameof(Forward));
        if (rows == 0) return;
        device.Kernels<KernelSet>().Forward(new KernelConfig(rows, device.ReductionGroupSize), a, x, gamma, beta, y, mean, rstd);
    }

    /// <summary>dx [rows, D] +=, dGamma [D] +=, dBeta [D] += from dOutput [rows, D] and the saved mean / rstd.</summary>
    public static void Backward(GpuDevice device, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> dOutput, ArrayView<float> dx, ArrayView<float> dGamma, ArrayView<float> dBeta, int rows, int dim)
    {
        var a = Check(device, x, gamma, mean, rstd, rows, dim, DefaultEps, nameof(Backward));
        GpuKernelUtil.AtLeast(dOutput, (long)rows * dim, nameof(dOutput), nameof(Backward));
        GpuKernelUtil.AtLeast(dx, (long)rows * dim, nameof(dx), nameof(Backward));
        GpuKernelUtil.AtLeast(dGamma, dim, nameof(dGamma), nameof(Backward));
        GpuKernelUtil.AtLeast(dBeta, dim, nameof(dBeta), nameof(Backward));
        if (rows == 0) return;
        var set = device.Kernels<KernelSet>();
        set.InputBackward(new KernelConfig(rows, device.ReductionGroupSize), a, x, gamma, mean, rstd, dOutput, dx);
        set.ParamBackward(dim, a, x, mean, rstd, dOutput, dGamma, dBeta);
    }

    private static NormArgs Check(GpuDevice device, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> mean, ArrayView<float> rstd,
        int rows, int dim, float eps, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(rows, nameof(rows), op);
        GpuKernelUtil.Positive(dim, nameof(dim), op);
        GpuKernelUtil.AtLeast(x, (long)rows * dim, nameof(x), op);
        GpuKernelUtil.AtLeast(gamma, dim, nameof(gamma), op);
        GpuKernelUtil.AtLeast(mean, rows, nameof(mean), op);
        GpuKernelUtil.AtLeast(rstd, rows, nameof(rstd), op);
        if (!(eps > 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, $"{op}: 'eps' must be > 0, got {eps}.");
        return new NormArgs { Rows = rows, D = dim, Eps = eps };
    }

    private static void ForwardKernel(NormArgs p, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> mean, ArrayView<float> rstd)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX, row = Grid.IdxX;
        long r0 = (long)row * p.D;
        float s = 0;
        for (int j = tid; j < p.D; j += gs) s += x[r0 + j];
        float mu = GpuKernelUtil.GroupSum(scratch, s) / p.D;
        float v = 0;
        for (int j = tid; j < p.D; j += gs) { float c = x[r0 + j] - mu; v += c * c; }
        float var = GpuKernelUtil.GroupSum(scratch, v) / p.D;
        float rs = 1f / XMath.Sqrt(var + p.Eps);
        for (int j = tid; j < p.D; j += gs) y[r0 + j] = (x[r0 + j] - mu) * rs * gamma[j] + beta[j];
        if (tid == 0)
        {
            mean[row] = mu;
            rstd[row] = rs;
        }
    }

    /// <summary>dx += rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ gamma.</summary>
    private static void InputBackwardKernel(NormArgs p, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> dOutput, ArrayView<float> dx)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX, row = Grid.IdxX;
        long r0 = (long)row * p.D;
        float mu = mean[row], rs = rstd[row];
        float a = 0, b = 0;
        for (int j = tid; j < p.D; j += gs)
        {
            float xh = (x[r0 + j] - mu) * rs;
            float g = dOutput[r0 + j] * gamma[j];
            a += g;
            b += g * xh;
        }
        a = GpuKernelUtil.GroupSum(scratch, a) / p.D;
        b = GpuKernelUtil.GroupSum(scratch, b) / p.D;
        for (int j = tid; j < p.D; j += gs)
        {
            float xh = (x[r0 + j] - mu) * rs;
            float g = dOutput[r0 + j] * gamma[j];
            dx[r0 + j] += rs * (g - a - xh * b);
        }
    }

    private static void ParamBackwardKernel(Index1D j, NormArgs p, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> dOutput, ArrayView<float> dGamma, ArrayView<float> dBeta)
    {
        float g = 0, bsum = 0;
        for (int r = 0; r < p.Rows; r++)
        {
            long at = (long)r * p.D + j;
            float dy = dOutput[at];
            g += dy * (x[at] - mean[r]) * rstd[r];
            bsum += dy;
        }
        dGamma[j] += g;
        dBeta[j] += bsum;
    }
}

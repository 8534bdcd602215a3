using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Interaction;

/// <summary>
/// GPU feature interactions. Deterministic: every output element is computed by one thread, no atomics.
/// <list type="bullet">
/// <item>DLRM dot interaction: T = [x; E] ∈ [B, F+1, D]; out[B, D + (F+1)F/2] = concat(x, ⟨T_i, T_j⟩ for i &gt; j,
/// row-major in i then j: (1,0), (2,0), (2,1), (3,0), …).</item>
/// <item>DCNv2 cross, elementwise part: out = x0 ⊙ (pre + bias) + xl where pre = xl·Wᵀ comes from the GEMM kernels.</item>
/// </list>
/// </summary>
public static class InteractionGpuKernels
{
    internal struct DotArgs
    {
        public int B, F, D, Width;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, DotArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>> DotForward = null!;
        internal Action<Index1D, DotArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> DotBackward = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> CrossForward = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> CrossBackward = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                DotForward = acc.LoadAutoGroupedStreamKernel<Index1D, DotArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DotForwardKernel),
                DotBackward = acc.LoadAutoGroupedStreamKernel<Index1D, DotArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DotBackwardKernel),
                CrossForward = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(CrossForwardKernel),
                CrossBackward = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(CrossBackwardKernel),
            };
        }
    }

    /// <summary>Output width of the dot interaction: D + (F+1)F/2.</summary>
    public static int DotOutputWidth(int numSparse, int dim) => dim + (numSparse + 1) * numSparse / 2;

    /// <summary>dense x [B, D], embeddings [B, F, D] → output [B, D + (F+1)F/2].</summary>
    public static void DotForward(GpuDevice device, ArrayView<float> dense, ArrayView<float> embeddings, ArrayView<float> output,
        int batchSize, int numSparse, int dim)
    {
        var a = CheckDot(device, dense, embeddings, batchSize, numSparse, dim, nameof(DotForward));
        GpuKernelUtil.AtLeast(output, (long)batchSize * a.Width, nameof(output), nameof(DotForward));
        if (batchSize == 0) return;
        device.Kernels<KernelSet>().DotForward(batchSize * a.Width, a, dense, embeddings, output);
    }

    /// <summary>dDense [B, D] += ∂/∂x, dEmbeddings [B, F, D] += ∂/∂E of Σ dOutput ⊙ output.</summary>
    public static void DotBackward(GpuDevice device, ArrayView<float> dense, ArrayView<float> embeddings, ArrayView<float> dOutput,
        ArrayView<float> dDense, ArrayView<float> dEmbeddings, int batchSize, int numSparse, int dim)
    {
        var a = CheckDot(device, dense, embeddings, batchSize, numSparse, dim, nameof(DotBackward));
        GpuKernelUtil.AtLeast(dOutput, (long)batchSize * a.Width, nameof(dOutput), nameof(DotBackward));
        GpuKernelUtil.AtLeast(dDense, (long)batchSize * dim, nameof(dDense), nameof(DotBackward));
        GpuKernelUtil.AtLeast(dEmbeddings, (long)batchSize * numSparse * dim, nameof(dEmbeddings), nameof(DotBackward));
        if (batchSize == 0) return;
        if (dEmbeddings.Length == 0) dEmbeddings = dDense; // F = 0: never written
        device.Kernels<KernelSet>().DotBackward(batchSize * (numSparse + 1) * dim, a, dense, embeddings.Length > 0 ? embeddings : dense,
            dOutput, dDense, dEmbeddings);
    }

    private static DotArgs CheckDot(GpuDevice device, ArrayView<float> dense, ArrayView<float> embeddings, int batchSize, int numSparse, int dim, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(batchSize, nameof(batchSize), op);
        GpuKernelUtil.NonNegative(numSparse, nameof(numSparse), op);
        GpuKernelUtil.Positive(dim, nameof(dim), op);
        GpuKernelUtil.AtLeast(dense, (long)batchSize * dim, nameof(dense), op);
        GpuKernelUtil.AtLeast(embeddings, (long)batchSize * numSparse * dim, nameof(embeddings), op);
        return new DotArgs { B = batchSize, F = numSparse, D = dim, Width = DotOutputWidth(numSparse, dim) };
    }

    /// <summary>out[B, D] = x0 ⊙ (pre + bias) + xl (bias [D]).</summary>
    public static void CrossForward(GpuDevice device, ArrayView<float> x0, ArrayView<float> xl, ArrayView<float> pre, ArrayView<float> bias,
        ArrayView<float> output, int batchSize, int dim)
    {
        CheckCross(device, x0, xl, pre, bias, batchSize, dim, nameof(CrossForward));
        GpuKernelUtil.AtLeast(output, (long)batchSize * dim, nameof(output), nameof(CrossForward));
        if (batchSize == 0) return;
        device.Kernels<KernelSet>().CrossForward(batchSize * dim, dim, x0, xl, pre, bias, output);
    }

    /// <summary>dX0 += dY ⊙ (pre + bias); dPre = dY ⊙ x0 (overwritten; feed it to the GEMM backward and the bias column sum); dXl += dY.</summary>
    public static void CrossBackward(GpuDevice device, ArrayView<float> x0, ArrayView<float> pre, ArrayView<float> bias, ArrayView<float> dOutput,
        ArrayView<float> dX0, ArrayView<float> dPre, ArrayView<float> dXl, int batchSize, int dim)
    {
        CheckCross(device, x0, dOutput, pre, bias, batchSize, dim, nameof(CrossBackward));
        long n = (long)batchSize * dim;
        GpuKernelUtil.AtLeast(dX0, n, nameof(dX0), nameof(CrossBackward));
        GpuKernelUtil.AtLeast(dPre, n, nameof(dPre), nameof(CrossBackward));
        GpuKernelUtil.AtLeast(dXl, n, nameof(dXl), nameof(CrossBackward));
        if (batchSize == 0) return;
        device.Kernels<KernelSet>().CrossBackward((int)n, dim, x0, pre, bias, dOutput, dX0, dPre, dXl);
    }

    private static void CheckCross(GpuDevice device, ArrayView<float> x0, ArrayView<float> other, ArrayView<float> pre, ArrayView<float> bias,
        int batchSize, int dim, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(batchSize, nameof(batchSize), op);
        GpuKernelUtil.Positive(dim, nameof(dim), op);
        long n = (long)batchSize * dim;
        GpuKernelUtil.AtLeast(x0, n, nameof(x0), op);
        GpuKernelUtil.AtLeast(other, n, op == nameof(CrossForward) ? "xl" : "dOutput", op);
        GpuKernelUtil.AtLeast(pre, n, nameof(pre), op);
        GpuKernelUtil.AtLeast(bias, dim, nameof(bias), op);
    }

    private static float Row(DotArgs p, ArrayView<float> x, ArrayView<float> e, int b, int t, int d)
        => t == 0 ? x[(long)b * p.D + d] : e[((long)b * p.F + t - 1) * p.D + d];

    private static void DotForwardKernel(Index1D idx, DotArgs p, ArrayView<float> x, ArrayView<float> e, ArrayView<float> output)
    {
        int col = idx % p.Width, b = idx / p.Width;
        if (col < p.D)
        {
            output[idx] = x[(long)b * p.D + col];
            return;
        }
        int q = col - p.D, i = 1;
        while (q >= i) { q -= i; i++; }
        float s = 0;
        for (int d = 0; d < p.D; d++) s += Row(p, x, e, b, i, d) * Row(p, x, e, b, q, d);
        output[idx] = s;
    }

    private static void DotBackwardKernel(Index1D idx, DotArgs p, ArrayView<float> x, ArrayView<float> e, ArrayView<float> dOutput,
        ArrayView<float> dx, ArrayView<float> de)
    {
        int d = idx % p.D;
        int bt = idx / p.D;
        int t = bt % (p.F + 1), b = bt / (p.F + 1);
        long o = (long)b * p.Width;
        float g = t == 0 ? dOutput[o + d] : 0f;
        for (int s = 0; s <= p.F; s++)
        {
            if (s == t) continue;
            int i = s > t ? s : t, j = s > t ? t : s;
            g += dOutput[o + p.D + i * (i - 1) / 2 + j] * Row(p, x, e, b, s, d);
        }
        if (t == 0) dx[(long)b * p.D + d] += g;
        else de[((long)b * p.F + t - 1) * p.D + d] += g;
    }

    private static void CrossForwardKernel(Index1D idx, int dim, ArrayView<float> x0, ArrayView<float> xl, ArrayView<float> pre,
        ArrayView<float> bias, ArrayView<float> output)
        => output[idx] = x0[idx] * (pre[idx] + bias[idx % dim]) + xl[idx];

    private static void CrossBackwardKernel(Index1D idx, int dim, ArrayView<float> x0, ArrayView<float> pre, ArrayView<float> bias,
        ArrayView<float> dOutput, ArrayView<float> dx0, ArrayView<float> dPre, ArrayView<float> dxl)
    {
        float g = dOutput[idx];
        dx0[idx] += g * (pre[idx] + bias[idx % dim]);
        dPre[idx] = g * x0[idx];
        dxl[idx] += g;
    }
}

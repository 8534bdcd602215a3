using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Reduce;

/// <summary>
/// Reductions on the GPU, deterministic (fixed summation order, no atomics):
/// <c>ColumnSum</c> out[j] (+)= Σ_i x[i, j] (bias gradients), <c>Sum</c> out[0] = Σ_i x[i] (two passes: per-group
/// partial sums, then one group over the partials).
/// </summary>
public static class ReduceGpuKernels
{
    private const int MaxPartials = 256;

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>> ColumnSum = null!;
        internal Action<KernelConfig, int, ArrayView<float>, ArrayView<float>> Partial = null!;
        internal Action<KernelConfig, int, ArrayView<float>, ArrayView<float>> PartialSquares = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                ColumnSum = acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<float>, ArrayView<float>>(ColumnSumKernel),
                Partial = acc.LoadStreamKernel<int, ArrayView<float>, ArrayView<float>>(PartialSumKernel),
                PartialSquares = acc.LoadStreamKernel<int, ArrayView<float>, ArrayView<float>>(PartialSquaresKernel),
            };
        }
    }

    /// <summary>output[j] (+)= Σ_i x[i, j] for x [rows, cols].</summary>
    public static void ColumnSum(GpuDevice device, ArrayView<float> x, ArrayView<float> output, int rows, int cols, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(rows, nameof(rows), nameof(ColumnSum));
        GpuKernelUtil.NonNegative(cols, nameof(cols), nameof(ColumnSum));
        GpuKernelUtil.AtLeast(x, (long)rows * cols, nameof(x), nameof(ColumnSum));
        GpuKernelUtil.AtLeast(output, cols, nameof(output), nameof(ColumnSum));
        if (cols > 0) device.Kernels<KernelSet>().ColumnSum(cols, rows, cols, accumulate ? 1 : 0, x, output);
    }

    /// <summary>output[0] = Σ x[0..n).</summary>
    public static void Sum(GpuDevice device, ArrayView<float> x, ArrayView<float> output, int n)
        => TwoPass(device, x, output, n, squares: false, nameof(Sum));

    /// <summary>output[0] = Σ x[i]² over [0, n) (gradient norms), same two-pass fixed-order reduction as <see cref="Sum"/>.</summary>
    public static void SumOfSquares(GpuDevice device, ArrayView<float> x, ArrayView<float> output, int n)
        => TwoPass(device, x, output, n, squares: true, nameof(SumOfSquares));

    /// <summary>Per-group partial sums (of x or x²) into a pooled buffer, then one group sums the partials: a fixed order.</summary>
    private static void TwoPass(GpuDevice device, ArrayView<float> x, ArrayView<float> output, int n, bool squares, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), op);
        GpuKernelUtil.AtLeast(x, n, nameof(x), op);
        GpuKernelUtil.AtLeast(output, 1, nameof(output), op);
        var set = device.Kernels<KernelSet>();
        int g = device.ReductionGroupSize;
        int groups = Math.Clamp(GpuKernelUtil.Blocks(n, g * 4), 1, MaxPartials);
        using var partials = device.Pool.Rent<float>(groups);
        (squares ? set.PartialSquares : set.Partial)(new KernelConfig(groups, g), n, x, partials.View);
        set.Partial(new KernelConfig(1, g), groups, partials.View, output);
    }

    private static void ColumnSumKernel(Index1D j, int rows, int cols, int accumulate, ArrayView<float> x, ArrayView<float> output)
    {
        float s = 0;
        for (int i = 0; i < rows; i++) s += x[(long)i * cols + j];
        output[j] = accumulate != 0 ? output[j] + s : s;
    }

    /// <summary>Group g sums elements g·gs + tid, stepping by the whole grid, and writes partials[g].</summary>
    private static void PartialSumKernel(int n, ArrayView<float> x, ArrayView<float> partials)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        int stride = gs * Grid.DimX;
        float s = 0;
        for (int i = Grid.IdxX * gs + tid; i < n; i += stride) s += x[i];
        s = GpuKernelUtil.GroupSum(scratch, s);
        if (tid == 0) partials[Grid.IdxX] = s;
    }

    private static void PartialSquaresKernel(int n, ArrayView<float> x, ArrayView<float> partials)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        int stride = gs * Grid.DimX;
        float s = 0;
        for (int i = Grid.IdxX * gs + tid; i < n; i += stride) s += x[i] * x[i];
        s = GpuKernelUtil.GroupSum(scratch, s);
        if (tid == 0) partials[Grid.IdxX] = s;
    }
}

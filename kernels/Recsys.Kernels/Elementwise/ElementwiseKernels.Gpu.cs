using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Elementwise;

/// <summary>
/// Elementwise kernels on the GPU, one thread per element (deterministic, no atomics): ReLU forward and backward,
/// the in-place activation backward of a fused Linear, fill, y += α·x, scaling, and the column-block copies of a
/// row-major concat ([rows, cols] block at a column offset of a [rows, width] matrix, and back).
/// </summary>
public static class ElementwiseGpuKernels
{
    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, ArrayView<float>, ArrayView<float>> ReluForward = null!;
        internal Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> ReluBackward = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>> ActivationBackward = null!;
        internal Action<Index1D, float, ArrayView<float>> Fill = null!;
        internal Action<Index1D, float, ArrayView<float>, ArrayView<float>> Axpy = null!;
        internal Action<Index1D, float, ArrayView<float>> Scale = null!;
        internal Action<Index1D, BlockArgs, ArrayView<float>, ArrayView<float>> CopyBlock = null!;
        internal Action<Index1D, int, float, ArrayView<float>, ArrayView<float>> Map = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> Combine = null!;
        internal Action<Index1D, float, ArrayView<float>, ArrayView<float>> AxpyScalar = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                ReluForward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ReluForwardKernel),
                ReluBackward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ReluBackwardKernel),
                ActivationBackward = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>>(ActivationBackwardKernel),
                Fill = acc.LoadAutoGroupedStreamKernel<Index1D, float, ArrayView<float>>(FillKernel),
                Axpy = acc.LoadAutoGroupedStreamKernel<Index1D, float, ArrayView<float>, ArrayView<float>>(AxpyKernel),
                Scale = acc.LoadAutoGroupedStreamKernel<Index1D, float, ArrayView<float>>(ScaleKernel),
                CopyBlock = acc.LoadAutoGroupedStreamKernel<Index1D, BlockArgs, ArrayView<float>, ArrayView<float>>(CopyBlockKernel),
                Map = acc.LoadAutoGroupedStreamKernel<Index1D, int, float, ArrayView<float>, ArrayView<float>>(MapKernel),
                Combine = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(CombineKernel),
                AxpyScalar = acc.LoadAutoGroupedStreamKernel<Index1D, float, ArrayView<float>, ArrayView<float>>(AxpyScalarKernel),
            };
        }
    }

    /// <summary>Uniform arguments of a column-block copy: Cols columns of each of the rows, between a [rows, Narrow] matrix and columns [Offset, Offset+Narrow) of a [rows, Wide] one.</summary>
    internal struct BlockArgs
    {
        public int Narrow, Wide, Offset, ToWide, Accumulate;
    }

    public static void ReluForward(GpuDevice device, ArrayView<float> x, ArrayView<float> y, int n)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(ReluForward));
        GpuKernelUtil.AtLeast(x, n, nameof(x), nameof(ReluForward));
        GpuKernelUtil.AtLeast(y, n, nameof(y), nameof(ReluForward));
        if (n > 0) device.Kernels<KernelSet>().ReluForward(n, x, y);
    }

    /// <summary>dx += dy where x &gt; 0 (x is the forward input).</summary>
    public static void ReluBackward(GpuDevice device, ArrayView<float> x, ArrayView<float> dOutput, ArrayView<float> dx, int n)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(ReluBackward));
        GpuKernelUtil.AtLeast(x, n, nameof(x), nameof(ReluBackward));
        GpuKernelUtil.AtLeast(dOutput, n, nameof(dOutput), nameof(ReluBackward));
        GpuKernelUtil.AtLeast(dx, n, nameof(dx), nameof(ReluBackward));
        if (n > 0) device.Kernels<KernelSet>().ReluBackward(n, x, dOutput, dx);
    }

    /// <summary>
    /// dPre = dY · act'(y) in place, from the activation's output y (the CPU twin is
    /// <see cref="ElementwiseKernels.ActivationBackwardInPlace"/>): ReLU keeps dY where y &gt; 0, sigmoid multiplies by y(1−y).
    /// </summary>
    public static void ActivationBackwardInPlace(GpuDevice device, Activation activation, ArrayView<float> y, ArrayView<float> dOutputInPre, int n)
    {
        const string op = nameof(ActivationBackwardInPlace);
        ArgumentNullException.ThrowIfNull(device);
        if (activation is not (Activation.None or Activation.Relu or Activation.Sigmoid))
            throw new ArgumentOutOfRangeException(nameof(activation), activation, $"{op}: unknown activation {activation}.");
        GpuKernelUtil.NonNegative(n, nameof(n), op);
        GpuKernelUtil.AtLeast(y, n, nameof(y), op);
        GpuKernelUtil.AtLeast(dOutputInPre, n, nameof(dOutputInPre), op);
        if (n > 0 && activation != Activation.None) device.Kernels<KernelSet>().ActivationBackward(n, (int)activation, y, dOutputInPre);
    }

    /// <summary>x[0..n) = value.</summary>
    public static void Fill(GpuDevice device, ArrayView<float> x, float value, int n)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Fill));
        GpuKernelUtil.AtLeast(x, n, nameof(x), nameof(Fill));
        if (n > 0) device.Kernels<KernelSet>().Fill(n, value, x);
    }

    /// <summary>y[i] += alpha · x[i] for i &lt; n (x and y must not overlap unless they are the same view).</summary>
    public static void Axpy(GpuDevice device, float alpha, ArrayView<float> x, ArrayView<float> y, int n)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Axpy));
        GpuKernelUtil.AtLeast(x, n, nameof(x), nameof(Axpy));
        GpuKernelUtil.AtLeast(y, n, nameof(y), nameof(Axpy));
        if (n > 0) device.Kernels<KernelSet>().Axpy(n, alpha, x, y);
    }

    /// <summary>x[i] *= alpha for i &lt; n.</summary>
    public static void Scale(GpuDevice device, ArrayView<float> x, float alpha, int n)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Scale));
        GpuKernelUtil.AtLeast(x, n, nameof(x), nameof(Scale));
        if (n > 0) device.Kernels<KernelSet>().Scale(n, alpha, x);
    }

    /// <summary>wide[r, offset + j] = narrow[r, j] for a [rows, cols] <paramref name="narrow"/> and a [rows, width] <paramref name="wide"/> (concat forward).</summary>
    public static void CopyColumnsInto(GpuDevice device, ArrayView<float> narrow, ArrayView<float> wide, int rows, int cols, int width, int offset)
        => Block(device, narrow, wide, rows, cols, width, offset, toWide: true, accumulate: false, nameof(CopyColumnsInto));

    /// <summary>narrow[r, j] += wide[r, offset + j] (concat backward: a part's slice of the output gradient).</summary>
    public static void AddColumnsFrom(GpuDevice device, ArrayView<float> wide, ArrayView<float> narrow, int rows, int cols, int width, int offset)
        => Block(device, narrow, wide, rows, cols, width, offset, toWide: false, accumulate: true, nameof(AddColumnsFrom));

    private static void Block(GpuDevice device, ArrayView<float> narrow, ArrayView<float> wide, int rows, int cols, int width, int offset,
        bool toWide, bool accumulate, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(rows, nameof(rows), op);
        GpuKernelUtil.NonNegative(cols, nameof(cols), op);
        GpuKernelUtil.NonNegative(offset, nameof(offset), op);
        if ((long)offset + cols > width)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{op}: columns [{offset}, {offset + cols}) do not fit in width {width}.");
        GpuKernelUtil.AtLeast(narrow, (long)rows * cols, nameof(narrow), op);
        GpuKernelUtil.AtLeast(wide, (long)rows * width, nameof(wide), op);
        if ((long)rows * cols == 0) return;
        var args = new BlockArgs { Narrow = cols, Wide = width, Offset = offset, ToWide = toWide ? 1 : 0, Accumulate = accumulate ? 1 : 0 };
        device.Kernels<KernelSet>().CopyBlock((int)((long)rows * cols), args, narrow, wide);
    }

    /// <summary>y[i] = alpha · x[i].</summary>
    public static void ScaleInto(GpuDevice device, float alpha, ArrayView<float> x, ArrayView<float> y, int n) => MapLaunch(device, 0, alpha, x, y, n, nameof(ScaleInto));

    /// <summary>y[i] = σ(x[i]) (numerically stable logistic).</summary>
    public static void Sigmoid(GpuDevice device, ArrayView<float> x, ArrayView<float> y, int n) => MapLaunch(device, 1, 0f, x, y, n, nameof(Sigmoid));

    /// <summary>dx[i] += dy[i] · y[i] · (1 − y[i]) from the sigmoid's output y.</summary>
    public static void SigmoidBackward(GpuDevice device, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int n)
        => CombineLaunch(device, 3, y, dy, dx, n, nameof(SigmoidBackward));

    /// <summary>y[i] = a[i] + b[i].</summary>
    public static void Add(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, int n) => CombineLaunch(device, 0, a, b, y, n, nameof(Add));

    /// <summary>y[i] = a[i] · b[i].</summary>
    public static void Mul(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, int n) => CombineLaunch(device, 1, a, b, y, n, nameof(Mul));

    /// <summary>y[i] += a[i] · b[i] (the backward of a product).</summary>
    public static void MulAccumulate(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, int n) => CombineLaunch(device, 2, a, b, y, n, nameof(MulAccumulate));

    /// <summary>x[i] += alpha · s[0] for i &lt; n: a scalar's gradient broadcast on the device (backward of a sum or mean).</summary>
    public static void AxpyScalar(GpuDevice device, float alpha, ArrayView<float> s, ArrayView<float> x, int n)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(AxpyScalar));
        GpuKernelUtil.AtLeast(s, 1, nameof(s), nameof(AxpyScalar));
        GpuKernelUtil.AtLeast(x, n, nameof(x), nameof(AxpyScalar));
        if (n > 0) device.Kernels<KernelSet>().AxpyScalar(n, alpha, s, x);
    }

    private static void MapLaunch(GpuDevice device, int op, float alpha, ArrayView<float> x, ArrayView<float> y, int n, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), name);
        GpuKernelUtil.AtLeast(x, n, nameof(x), name);
        GpuKernelUtil.AtLeast(y, n, nameof(y), name);
        if (n > 0) device.Kernels<KernelSet>().Map(n, op, alpha, x, y);
    }

    private static void CombineLaunch(GpuDevice device, int op, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, int n, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), name);
        GpuKernelUtil.AtLeast(a, n, nameof(a), name);
        GpuKernelUtil.AtLeast(b, n, nameof(b), name);
        GpuKernelUtil.AtLeast(y, n, nameof(y), name);
        if (n > 0) device.Kernels<KernelSet>().Combine(n, op, a, b, y);
    }

    private static void MapKernel(Index1D i, int op, float alpha, ArrayView<float> x, ArrayView<float> y)
        => y[i] = op == 0 ? alpha * x[i] : GpuKernelUtil.Sigmoid(x[i]);

    private static void CombineKernel(Index1D i, int op, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        if (op == 0) y[i] = a[i] + b[i];
        else if (op == 1) y[i] = a[i] * b[i];
        else if (op == 2) y[i] += a[i] * b[i];
        else y[i] += b[i] * (a[i] * (1f - a[i])); // sigmoid backward: a = output, b = dY
    }

    private static void AxpyScalarKernel(Index1D i, float alpha, ArrayView<float> s, ArrayView<float> x) => x[i] += alpha * s[0];

    private static void ActivationBackwardKernel(Index1D i, int activation, ArrayView<float> y, ArrayView<float> d)
    {
        float v = y[i];
        if (activation == 1) { if (!(v > 0f)) d[i] = 0f; }
        else if (activation == 2) d[i] *= v * (1f - v);
    }

    private static void FillKernel(Index1D i, float value, ArrayView<float> x) => x[i] = value;

    private static void AxpyKernel(Index1D i, float alpha, ArrayView<float> x, ArrayView<float> y) => y[i] += alpha * x[i];

    private static void ScaleKernel(Index1D i, float alpha, ArrayView<float> x) => x[i] *= alpha;

    private static void CopyBlockKernel(Index1D i, BlockArgs p, ArrayView<float> narrow, ArrayView<float> wide)
    {
        int r = i / p.Narrow, j = i % p.Narrow;
        long w = (long)r * p.Wide + p.Offset + j;
        if (p.ToWide != 0) wide[w] = p.Accumulate != 0 ? wide[w] + narrow[i] : narrow[i];
        else narrow[i] = p.Accumulate != 0 ? narrow[i] + wide[w] : wide[w];
    }

    private static void ReluForwardKernel(Index1D i, ArrayView<float> x, ArrayView<float> y)
    {
        float v = x[i];
        y[i] = v > 0 ? v : 0f;
    }

    private static void ReluBackwardKernel(Index1D i, ArrayView<float> x, ArrayView<float> dOutput, ArrayView<float> dx)
    {
        if (x[i] > 0) dx[i] += dOutput[i];
    }
}

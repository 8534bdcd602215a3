using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Elementwise;

/// <summary>Elementwise activations on the GPU: ReLU y = max(x, 0); backward dx += dy · [x &gt; 0].</summary>
public static class ElementwiseGpuKernels
{
    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, ArrayView<float>, ArrayView<float>> ReluForward = null!;
        internal Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> ReluBackward = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                ReluForward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ReluForwardKernel),
                ReluBackward = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ReluBackwardKernel),
            };
        }
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

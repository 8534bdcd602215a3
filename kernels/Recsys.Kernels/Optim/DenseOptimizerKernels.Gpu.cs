using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Optim;

/// <summary>
/// GPU twins of <see cref="DenseOptimizerKernels"/>: the same PyTorch formulas (SGD with momentum and weight decay,
/// Adam / AdamW, Adagrad), one thread per element, no atomics (deterministic). Step-dependent scalars (bias
/// corrections) are computed on the host, exactly as the CPU kernels compute them, and passed in.
/// </summary>
public static class DenseOptimizerGpuKernels
{
    internal struct SgdArgs
    {
        public float Lr, Momentum, WeightDecay;
        public int HasMomentum, FirstStep;
    }

    internal struct AdamArgs
    {
        public float Beta1, Beta2, Eps, StepSize, Bc2Sqrt, Decay, L2;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, SgdArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>> Sgd = null!;
        internal Action<Index1D, AdamArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Adam = null!;
        internal Action<Index1D, float, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>> Adagrad = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                Sgd = acc.LoadAutoGroupedStreamKernel<Index1D, SgdArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SgdKernel),
                Adam = acc.LoadAutoGroupedStreamKernel<Index1D, AdamArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AdamKernel),
                Adagrad = acc.LoadAutoGroupedStreamKernel<Index1D, float, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AdagradKernel),
            };
        }
    }

    /// <summary>
    /// SGD: g += wd·w; buf = μ·buf + g (buf = g on the first step); w -= lr·buf. <paramref name="momentumBuffer"/> may be
    /// empty when μ = 0.
    /// </summary>
    public static void Sgd(GpuDevice device, ArrayView<float> weight, ArrayView<float> grad, ArrayView<float> momentumBuffer, int n,
        float lr, float momentum, float weightDecay, bool firstStep)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Sgd));
        GpuKernelUtil.AtLeast(weight, n, nameof(weight), nameof(Sgd));
        GpuKernelUtil.AtLeast(grad, n, nameof(grad), nameof(Sgd));
        if (momentum != 0f) GpuKernelUtil.AtLeast(momentumBuffer, n, nameof(momentumBuffer), nameof(Sgd));
        if (n == 0) return;
        var args = new SgdArgs { Lr = lr, Momentum = momentum, WeightDecay = weightDecay, HasMomentum = momentum != 0f ? 1 : 0, FirstStep = firstStep ? 1 : 0 };
        device.Kernels<KernelSet>().Sgd(n, args, weight, grad, momentum != 0f ? momentumBuffer : grad);
    }

    /// <summary>
    /// Adam / AdamW step <paramref name="step"/> (1-based), as <see cref="DenseOptimizerKernels.Adam"/>:
    /// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; w -= (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
    /// </summary>
    public static void Adam(GpuDevice device, ArrayView<float> weight, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, int n,
        float lr, float beta1, float beta2, float eps, float weightDecay, bool decoupled, long step)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Adam));
        GpuKernelUtil.AtLeast(weight, n, nameof(weight), nameof(Adam));
        GpuKernelUtil.AtLeast(grad, n, nameof(grad), nameof(Adam));
        GpuKernelUtil.AtLeast(m, n, nameof(m), nameof(Adam));
        GpuKernelUtil.AtLeast(v, n, nameof(v), nameof(Adam));
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "Adam: step is 1-based, got " + step);
        if (n == 0) return;
        // Same float expressions as the CPU kernel, so both devices round the scalars identically.
        float bc1 = 1f - MathF.Pow(beta1, step);
        var args = new AdamArgs
        {
            Beta1 = beta1, Beta2 = beta2, Eps = eps, StepSize = lr / bc1, Bc2Sqrt = MathF.Sqrt(1f - MathF.Pow(beta2, step)),
            Decay = decoupled ? 1f - lr * weightDecay : 1f, L2 = decoupled ? 0f : weightDecay,
        };
        device.Kernels<KernelSet>().Adam(n, args, weight, grad, m, v);
    }

    /// <summary>Adagrad (no lr decay): g += wd·w; sum += g²; w -= lr · g / (√sum + ε).</summary>
    public static void Adagrad(GpuDevice device, ArrayView<float> weight, ArrayView<float> grad, ArrayView<float> sumSquares, int n,
        float lr, float eps, float weightDecay)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Adagrad));
        GpuKernelUtil.AtLeast(weight, n, nameof(weight), nameof(Adagrad));
        GpuKernelUtil.AtLeast(grad, n, nameof(grad), nameof(Adagrad));
        GpuKernelUtil.AtLeast(sumSquares, n, nameof(sumSquares), nameof(Adagrad));
        if (n > 0) device.Kernels<KernelSet>().Adagrad(n, lr, eps, weightDecay, weight, grad, sumSquares);
    }

    private static void SgdKernel(Index1D i, SgdArgs p, ArrayView<float> w, ArrayView<float> g, ArrayView<float> buf)
    {
        float gi = g[i] + p.WeightDecay * w[i];
        if (p.HasMomentum != 0)
        {
            float bi = p.FirstStep != 0 ? gi : p.Momentum * buf[i] + gi;
            buf[i] = bi;
            gi = bi;
        }
        w[i] -= p.Lr * gi;
    }

    private static void AdamKernel(Index1D i, AdamArgs p, ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v)
    {
        float wi = w[i];
        float gi = g[i] + p.L2 * wi;
        wi *= p.Decay;
        float mi = p.Beta1 * m[i] + (1f - p.Beta1) * gi;
        float vi = p.Beta2 * v[i] + (1f - p.Beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - p.StepSize * mi / (XMath.Sqrt(vi) / p.Bc2Sqrt + p.Eps);
    }

    private static void AdagradKernel(Index1D i, float lr, float eps, float weightDecay, ArrayView<float> w, ArrayView<float> g, ArrayView<float> s)
    {
        float gi = g[i] + weightDecay * w[i];
        float si = s[i] + gi * gi;
        s[i] = si;
        w[i] -= lr * gi / (XMath.Sqrt(si) + eps);
    }
}

using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Loss;

/// <summary>
/// Binary cross-entropy with logits, mean over n, on the GPU:
/// ℓ = (1/n) Σ max(z, 0) − z·y + log(1 + exp(−|z|)) (stable for any z; soft targets y ∈ [0, 1] allowed);
/// ∂ℓ/∂z_i = (σ(z_i) − y_i) / n. The forward sum is one group reducing in a fixed order: deterministic.
/// </summary>
public static class LossGpuKernels
{
    internal struct MaskArgs
    {
        public int N, HasMask, HasWeights;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> BceForward = null!;
        internal Action<Index1D, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>> BceBackward = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> BceBackwardDevice = null!;
        internal Action<KernelConfig, MaskArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> MaskedForward = null!;
        internal Action<Index1D, MaskArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> MaskedBackward = null!;
        internal Action<KernelConfig, int, float, ArrayView<float>, ArrayView<float>> SoftmaxForward = null!;
        internal Action<KernelConfig, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>> SoftmaxBackward = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                BceForward = acc.LoadStreamKernel<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(BceForwardKernel),
                BceBackward = acc.LoadAutoGroupedStreamKernel<Index1D, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>>(BceBackwardKernel),
                BceBackwardDevice = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(BceBackwardDeviceKernel),
                MaskedForward = acc.LoadStreamKernel<MaskArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(MaskedForwardKernel),
                MaskedBackward = acc.LoadAutoGroupedStreamKernel<Index1D, MaskArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(MaskedBackwardKernel),
                SoftmaxForward = acc.LoadStreamKernel<int, float, ArrayView<float>, ArrayView<float>>(SoftmaxForwardKernel),
                SoftmaxBackward = acc.LoadStreamKernel<int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SoftmaxBackwardKernel),
            };
        }
    }

    /// <summary>loss[0] = mean BCE-with-logits of logits [n] against targets [n].</summary>
    public static void BceWithLogitsForward(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> loss, int n)
    {
        Check(device, logits, targets, n, nameof(BceWithLogitsForward));
        GpuKernelUtil.AtLeast(loss, 1, nameof(loss), nameof(BceWithLogitsForward));
        device.Kernels<KernelSet>().BceForward(new KernelConfig(1, device.ReductionGroupSize), n, logits, targets, loss);
    }

    /// <summary>dLogits[i] += dLoss · (σ(z_i) − y_i) / n.</summary>
    public static void BceWithLogitsBackward(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> dLogits, int n,
        float dLoss = 1f)
    {
        Check(device, logits, targets, n, nameof(BceWithLogitsBackward));
        GpuKernelUtil.AtLeast(dLogits, n, nameof(dLogits), nameof(BceWithLogitsBackward));
        if (n == 0) return;
        device.Kernels<KernelSet>().BceBackward(n, n, dLoss, logits, targets, dLogits);
    }

    /// <summary>
    /// dLogits[i] += dLoss[0] · (σ(z_i) − y_i) / n, with the upstream gradient read on the device: a training step's
    /// backward never brings the loss gradient back to the host.
    /// </summary>
    public static void BceWithLogitsBackward(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> dLoss,
        ArrayView<float> dLogits, int n)
    {
        Check(device, logits, targets, n, nameof(BceWithLogitsBackward));
        GpuKernelUtil.AtLeast(dLoss, 1, nameof(dLoss), nameof(BceWithLogitsBackward));
        GpuKernelUtil.AtLeast(dLogits, n, nameof(dLogits), nameof(BceWithLogitsBackward));
        if (n == 0) return;
        device.Kernels<KernelSet>().BceBackwardDevice(n, n, dLoss, logits, targets, dLogits);
    }

    /// <summary>
    /// Masked / weighted mean, as <see cref="LossKernels.BceWithLogitsForward"/>: loss[0] = Σ m_i·w_i·ℓ_i / Σ m_i (0 when every
    /// sample is masked out) and count[0] = Σ m_i, which the backward reads. <paramref name="mask"/> or
    /// <paramref name="weights"/> may be empty (all ones). One group, fixed order: deterministic.
    /// </summary>
    public static void BceWithLogitsForward(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> mask,
        ArrayView<float> weights, ArrayView<float> loss, ArrayView<float> count, int n)
    {
        var a = CheckMasked(device, logits, targets, mask, weights, n, nameof(BceWithLogitsForward));
        GpuKernelUtil.AtLeast(loss, 1, nameof(loss), nameof(BceWithLogitsForward));
        GpuKernelUtil.AtLeast(count, 1, nameof(count), nameof(BceWithLogitsForward));
        device.Kernels<KernelSet>().MaskedForward(new KernelConfig(1, device.ReductionGroupSize), a, logits, targets,
            a.HasMask != 0 ? mask : logits, a.HasWeights != 0 ? weights : logits, loss, count);
    }

    /// <summary>dLogits[i] += dLoss[0]·m_i·w_i·(σ(z_i) − y_i) / count[0] (nothing when count is 0), count from the forward.</summary>
    public static void BceWithLogitsBackward(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> mask,
        ArrayView<float> weights, ArrayView<float> count, ArrayView<float> dLoss, ArrayView<float> dLogits, int n)
    {
        var a = CheckMasked(device, logits, targets, mask, weights, n, nameof(BceWithLogitsBackward));
        GpuKernelUtil.AtLeast(count, 1, nameof(count), nameof(BceWithLogitsBackward));
        GpuKernelUtil.AtLeast(dLoss, 1, nameof(dLoss), nameof(BceWithLogitsBackward));
        GpuKernelUtil.AtLeast(dLogits, n, nameof(dLogits), nameof(BceWithLogitsBackward));
        if (n == 0) return;
        device.Kernels<KernelSet>().MaskedBackward(n, a, logits, targets, a.HasMask != 0 ? mask : logits, a.HasWeights != 0 ? weights : logits,
            count, dLoss, dLogits);
    }

    private static MaskArgs CheckMasked(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> mask,
        ArrayView<float> weights, int n, string op)
    {
        Check(device, logits, targets, n, op);
        if (mask.Length > 0) GpuKernelUtil.AtLeast(mask, n, nameof(mask), op);
        if (weights.Length > 0) GpuKernelUtil.AtLeast(weights, n, nameof(weights), op);
        return new MaskArgs { N = n, HasMask = mask.Length > 0 ? 1 : 0, HasWeights = weights.Length > 0 ? 1 : 0 };
    }

    private static void MaskedForwardKernel(MaskArgs p, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> mask,
        ArrayView<float> weights, ArrayView<float> loss, ArrayView<float> count)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        float s = 0, c = 0;
        for (int i = tid; i < p.N; i += gs)
        {
            float m = p.HasMask != 0 ? mask[i] : 1f;
            if (m == 0f) continue;
            float w = p.HasWeights != 0 ? weights[i] : 1f;
            float z = logits[i];
            s += m * w * (XMath.Max(z, 0f) - z * targets[i] + XMath.Log(1f + XMath.Exp(-XMath.Abs(z))));
            c += m;
        }
        s = GpuKernelUtil.GroupSum(scratch, s);
        c = GpuKernelUtil.GroupSum(scratch, c);
        if (tid == 0)
        {
            loss[0] = c == 0f ? 0f : s / c;
            count[0] = c;
        }
    }

    private static void MaskedBackwardKernel(Index1D i, MaskArgs p, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> mask,
        ArrayView<float> weights, ArrayView<float> count, ArrayView<float> dLoss, ArrayView<float> dLogits)
    {
        float c = count[0];
        float m = p.HasMask != 0 ? mask[i] : 1f;
        if (c == 0f || m == 0f) return;
        float w = p.HasWeights != 0 ? weights[i] : 1f;
        dLogits[i] += dLoss[0] / c * m * w * (GpuKernelUtil.Sigmoid(logits[i]) - targets[i]);
    }

    /// <summary>
    /// y[r, :] = softmax(x[r, :] / T) over rows × cols (max-subtracted), one group per row with a fixed reduction order;
    /// the GPU twin of <see cref="LossKernels.SoftmaxForward"/>.
    /// </summary>
    public static void SoftmaxForward(GpuDevice device, ArrayView<float> x, ArrayView<float> y, int rows, int cols, float temperature = 1f)
    {
        CheckSoftmax(device, x, y, rows, cols, temperature, nameof(SoftmaxForward));
        if (rows == 0 || cols == 0) return;
        device.Kernels<KernelSet>().SoftmaxForward(new KernelConfig(rows, device.ReductionGroupSize), cols, 1f / temperature, x, y);
    }

    /// <summary>dX[r, :] += Y ⊙ (dY − Σ_j dY_j·Y_j) / T from the saved output Y.</summary>
    public static void SoftmaxBackward(GpuDevice device, ArrayView<float> y, ArrayView<float> dOutput, ArrayView<float> dInput, int rows, int cols,
        float temperature = 1f)
    {
        CheckSoftmax(device, y, dOutput, rows, cols, temperature, nameof(SoftmaxBackward));
        GpuKernelUtil.AtLeast(dInput, (long)rows * cols, nameof(dInput), nameof(SoftmaxBackward));
        if (rows == 0 || cols == 0) return;
        device.Kernels<KernelSet>().SoftmaxBackward(new KernelConfig(rows, device.ReductionGroupSize), cols, 1f / temperature, y, dOutput, dInput);
    }

    private static void CheckSoftmax(GpuDevice device, ArrayView<float> a, ArrayView<float> b, int rows, int cols, float temperature, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(rows, nameof(rows), op);
        GpuKernelUtil.NonNegative(cols, nameof(cols), op);
        GpuKernelUtil.AtLeast(a, (long)rows * cols, "input", op);
        GpuKernelUtil.AtLeast(b, (long)rows * cols, "output", op);
        if (!(temperature > 0f) || float.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, $"{op}: temperature must be a positive finite number, got {temperature}.");
    }

    private static void SoftmaxForwardKernel(int cols, float invT, ArrayView<float> x, ArrayView<float> y)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        long row = (long)Grid.IdxX * cols;
        float max = float.NegativeInfinity;
        for (int j = tid; j < cols; j += gs) max = XMath.Max(max, x[row + j]);
        max = GpuKernelUtil.GroupMax(scratch, max);
        float sum = 0;
        for (int j = tid; j < cols; j += gs)
        {
            float e = XMath.Exp((x[row + j] - max) * invT);
            y[row + j] = e;
            sum += e;
        }
        sum = GpuKernelUtil.GroupSum(scratch, sum);
        float inv = 1f / sum;
        for (int j = tid; j < cols; j += gs) y[row + j] *= inv;
    }

    private static void SoftmaxBackwardKernel(int cols, float invT, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        long row = (long)Grid.IdxX * cols;
        float dot = 0;
        for (int j = tid; j < cols; j += gs) dot += y[row + j] * dy[row + j];
        dot = GpuKernelUtil.GroupSum(scratch, dot);
        for (int j = tid; j < cols; j += gs) dx[row + j] += y[row + j] * (dy[row + j] - dot) * invT;
    }

    private static void Check(GpuDevice device, ArrayView<float> logits, ArrayView<float> targets, int n, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), op);
        GpuKernelUtil.AtLeast(logits, n, nameof(logits), op);
        GpuKernelUtil.AtLeast(targets, n, nameof(targets), op);
    }

    private static void BceForwardKernel(int n, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> loss)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        float s = 0;
        for (int i = tid; i < n; i += gs)
        {
            float z = logits[i];
            s += XMath.Max(z, 0f) - z * targets[i] + XMath.Log(1f + XMath.Exp(-XMath.Abs(z)));
        }
        s = GpuKernelUtil.GroupSum(scratch, s);
        if (tid == 0) loss[0] = n > 0 ? s / n : 0f;
    }

    private static void BceBackwardKernel(Index1D i, int n, float dLoss, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> dLogits)
        => dLogits[i] += dLoss * (GpuKernelUtil.Sigmoid(logits[i]) - targets[i]) / n;

    private static void BceBackwardDeviceKernel(Index1D i, int n, ArrayView<float> dLoss, ArrayView<float> logits, ArrayView<float> targets,
        ArrayView<float> dLogits)
        => dLogits[i] += dLoss[0] * (GpuKernelUtil.Sigmoid(logits[i]) - targets[i]) / n;
}

using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Interaction;

/// <summary>
/// Multi-head self-attention core on the GPU. qkv [B, T, 3d] holds q = [.., 0:d], k = [.., d:2d], v = [.., 2d:3d]; head h
/// uses columns h·dh .. (h+1)·dh of each (dh = d / H). Forward: S = Q Kᵀ / sqrt(dh), P = softmax(S) (max-subtracted,
/// saved [B, H, T, T]), O = P V → output [B, T, d]. Backward accumulates into dQkv [B, T, 3d]. One group per
/// (b, h, query row) for the softmax rows, one thread per gradient element: deterministic, no atomics.
/// </summary>
public static class AttentionGpuKernels
{
    internal struct AttnArgs
    {
        public int B, T, H, D, Dh;
        public float Scale;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<KernelConfig, AttnArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>> Forward = null!;
        internal Action<KernelConfig, AttnArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> SoftmaxBackward = null!;
        internal Action<Index1D, AttnArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> InputBackward = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                Forward = acc.LoadStreamKernel<AttnArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ForwardKernel),
                SoftmaxBackward = acc.LoadStreamKernel<AttnArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SoftmaxBackwardKernel),
                InputBackward = acc.LoadAutoGroupedStreamKernel<Index1D, AttnArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(InputBackwardKernel),
            };
        }
    }

    public static void Forward(GpuDevice device, ArrayView<float> qkv, ArrayView<float> probs, ArrayView<float> output,
        int batchSize, int seqLen, int numHeads, int modelDim)
    {
        var a = Check(device, qkv, probs, batchSize, seqLen, numHeads, modelDim, nameof(Forward));
        GpuKernelUtil.AtLeast(output, (long)batchSize * seqLen * modelDim, nameof(output), nameof(Forward));
        if (batchSize == 0 || seqLen == 0) return;
        int g = device.ReductionGroupSize;
        device.Kernels<KernelSet>().Forward(new KernelConfig(batchSize * numHeads * seqLen, g), a, qkv, probs, output);
    }

    /// <summary>dQkv [B, T, 3d] += gradient of Σ dOutput ⊙ output, given the probabilities saved by <see cref="Forward"/>.</summary>
    public static void Backward(GpuDevice device, ArrayView<float> qkv, ArrayView<float> probs, ArrayView<float> dOutput, ArrayView<float> dQkv,
        int batchSize, int seqLen, int numHeads, int modelDim)
    {
        var a = Check(device, qkv, probs, batchSize, seqLen, numHeads, modelDim, nameof(Backward));
        GpuKernelUtil.AtLeast(dOutput, (long)batchSize * seqLen * modelDim, nameof(dOutput), nameof(Backward));
        GpuKernelUtil.AtLeast(dQkv, (long)batchSize * seqLen * 3 * modelDim, nameof(dQkv), nameof(Backward));
        if (batchSize == 0 || seqLen == 0) return;
        var set = device.Kernels<KernelSet>();
        using var dScores = device.Pool.Rent<float>((long)batchSize * numHeads * seqLen * seqLen);
        set.SoftmaxBackward(new KernelConfig(batchSize * numHeads * seqLen, device.ReductionGroupSize), a, qkv, probs, dOutput, dScores.View);
        set.InputBackward(batchSize * seqLen * 3 * modelDim, a, qkv, probs, dOutput, dScores.View, dQkv);
    }

    private static AttnArgs Check(GpuDevice device, ArrayView<float> qkv, ArrayView<float> probs, int batchSize, int seqLen, int numHeads,
        int modelDim, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(batchSize, nameof(batchSize), op);
        GpuKernelUtil.NonNegative(seqLen, nameof(seqLen), op);
        GpuKernelUtil.Positive(numHeads, nameof(numHeads), op);
        GpuKernelUtil.Positive(modelDim, nameof(modelDim), op);
        if (modelDim % numHeads != 0)
            throw new ArgumentException($"{op}: 'modelDim' {modelDim} must be divisible by 'numHeads' {numHeads}.", nameof(modelDim));
        GpuKernelUtil.AtLeast(qkv, (long)batchSize * seqLen * 3 * modelDim, nameof(qkv), op);
        GpuKernelUtil.AtLeast(probs, (long)batchSize * numHeads * seqLen * seqLen, nameof(probs), op);
        int dh = modelDim / numHeads;
        return new AttnArgs { B = batchSize, T = seqLen, H = numHeads, D = modelDim, Dh = dh, Scale = 1f / MathF.Sqrt(dh) };
    }

    private static void ForwardKernel(AttnArgs p, ArrayView<float> qkv, ArrayView<float> probs, ArrayView<float> output)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        int row = Grid.IdxX;
        int t = row % p.T, bh = row / p.T, h = bh % p.H, b = bh / p.H;
        long w3 = 3L * p.D;
        long q0 = ((long)b * p.T + t) * w3 + h * p.Dh;
        long pRow = (long)row * p.T;
        float mx = float.NegativeInfinity;
        for (int s = tid; s < p.T; s += gs)
        {
            long k0 = ((long)b * p.T + s) * w3 + p.D + h * p.Dh;
            float acc = 0;
            for (int c = 0; c < p.Dh; c++) acc += qkv[q0 + c] * qkv[k0 + c];
            acc *= p.Scale;
            probs[pRow + s] = acc;
            if (acc > mx) mx = acc;
        }
        mx = GpuKernelUtil.GroupMax(scratch, mx);
        float sum = 0;
        for (int s = tid; s < p.T; s += gs)
        {
            float e = XMath.Exp(probs[pRow + s] - mx);
            probs[pRow + s] = e;
            sum += e;
        }
        sum = GpuKernelUtil.GroupSum(scratch, sum);
        float inv = 1f / sum;
        for (int s = tid; s < p.T; s += gs) probs[pRow + s] *= inv;
        Group.Barrier();
        for (int c = tid; c < p.Dh; c += gs)
        {
            float acc = 0;
            for (int s = 0; s < p.T; s++) acc += probs[pRow + s] * qkv[((long)b * p.T + s) * w3 + 2 * p.D + h * p.Dh + c];
            output[((long)b * p.T + t) * p.D + h * p.Dh + c] = acc;
        }
    }

    /// <summary>dS[t, s] = P[t, s] · (dP[t, s] − Σ_s' P[t, s'] dP[t, s']) with dP[t, s] = dO[t] · V[s].</summary>
    private static void SoftmaxBackwardKernel(AttnArgs p, ArrayView<float> qkv, ArrayView<float> probs, ArrayView<float> dOutput, ArrayView<float> dScores)
    {
        var scratch = SharedMemory.Allocate<float>(GpuKernelUtil.MaxGroupSize);
        int tid = Group.IdxX, gs = Group.DimX;
        int row = Grid.IdxX;
        int t = row % p.T, bh = row / p.T, h = bh % p.H, b = bh / p.H;
        long w3 = 3L * p.D;
        long o0 = ((long)b * p.T + t) * p.D + h * p.Dh;
        long pRow = (long)row * p.T;
        float dot = 0;
        for (int s = tid; s < p.T; s += gs)
        {
            long v0 = ((long)b * p.T + s) * w3 + 2 * p.D + h * p.Dh;
            float dp = 0;
            for (int c = 0; c < p.Dh; c++) dp += dOutput[o0 + c] * qkv[v0 + c];
            dScores[pRow + s] = dp;
            dot += probs[pRow + s] * dp;
        }
        dot = GpuKernelUtil.GroupSum(scratch, dot);
        for (int s = tid; s < p.T; s += gs) dScores[pRow + s] = probs[pRow + s] * (dScores[pRow + s] - dot);
    }

    private static void InputBackwardKernel(Index1D idx, AttnArgs p, ArrayView<float> qkv, ArrayView<float> probs, ArrayView<float> dOutput,
        ArrayView<float> dScores, ArrayView<float> dQkv)
    {
        int w3 = 3 * p.D;
        int col = idx % w3, bt = idx / w3;
        int t = bt % p.T, b = bt / p.T;
        int part = col / p.D, within = col % p.D;
        int h = within / p.Dh;
        long bh = (long)b * p.H + h;
        float g = 0;
        if (part == 0)
        {
            // dQ[t] = scale · Σ_s dS[t, s] K[s]
            for (int s = 0; s < p.T; s++) g += dScores[(bh * p.T + t) * p.T + s] * qkv[((long)b * p.T + s) * w3 + p.D + within];
            g *= p.Scale;
        }
        else if (part == 1)
        {
            // dK[t] = scale · Σ_r dS[r, t] Q[r]
            for (int r = 0; r < p.T; r++) g += dScores[(bh * p.T + r) * p.T + t] * qkv[((long)b * p.T + r) * w3 + within];
            g *= p.Scale;
        }
        else
        {
            // dV[t] = Σ_r P[r, t] dO[r]
            for (int r = 0; r < p.T; r++) g += probs[(bh * p.T + r) * p.T + t] * dOutput[((long)b * p.T + r) * p.D + within];
        }
        dQkv[idx] += g;
    }
}

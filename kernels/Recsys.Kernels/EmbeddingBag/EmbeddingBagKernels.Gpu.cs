using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Algorithms.RadixSortOperations;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.EmbeddingBag;

/// <summary>
/// GPU embedding bags over a jagged, feature-major batch, all tables in one launch.
/// <para>
/// Tables share the dimension D and are stacked in one weight buffer: table f owns global rows
/// [tableRowStart[f], tableRowStart[f+1]). Bag (f, b) is values[offsets[f·B+b] .. offsets[f·B+b+1]) (table-local ids),
/// with optional per-value weights; pooled output is [B, F, D]: out[(b·F+f)·D + d].
/// </para>
/// <para>
/// An id outside its table is never read: the kernel skips it and raises the device error flag; the host method
/// then throws <see cref="ArgumentOutOfRangeException"/> naming the feature and the id.
/// </para>
/// <para>
/// Backward is fused with the optimizer (sparse: untouched rows are never written). <see cref="BackwardSgdAtomic"/>
/// scatters with float atomics (fast, summation order varies run to run); the deterministic variants sort
/// (row, position) pairs with a stable radix sort and update each touched row once, summing in position order.
/// </para>
/// </summary>
public static class EmbeddingBagGpuKernels
{
    public enum Pooling
    {
        Sum = 0,
        Mean = 1,
    }

    internal struct BagArgs
    {
        public int B, F, D, Mean, HasWeights, WeightRows, Adagrad, Adam;
        public float Lr, Eps, Beta1, Beta2, StepSize;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, BagArgs, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>> Forward = null!;
        internal Action<Index1D, BagArgs, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>> SgdAtomic = null!;
        internal Action<Index1D, BagArgs, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>> Keys = null!;
        internal Action<Index1D, BagArgs, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> SegmentUpdate = null!;
        internal RadixSortPairs<int, Stride1D.Dense, int, Stride1D.Dense> Sort = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                Forward = acc.LoadAutoGroupedStreamKernel<Index1D, BagArgs, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>>(ForwardKernel),
                SgdAtomic = acc.LoadAutoGroupedStreamKernel<Index1D, BagArgs, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>>(SgdAtomicKernel),
                Keys = acc.LoadAutoGroupedStreamKernel<Index1D, BagArgs, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>>(KeysKernel),
                SegmentUpdate = acc.LoadAutoGroupedStreamKernel<Index1D, BagArgs, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SegmentUpdateKernel),
                Sort = acc.CreateRadixSortPairs<int, Stride1D.Dense, int, Stride1D.Dense, AscendingInt32>(),
            };
        }
    }

    /// <summary>
    /// output[B, F, D] = pooled rows. <paramref name="perValueWeights"/> empty = all ones. Waits for the launch to read
    /// the error flag.
    /// </summary>
    public static void Forward(GpuDevice device, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> perValueWeights, ArrayView<float> output, int batchSize, int numFeatures, int dim, Pooling pooling)
    {
        var args = Check(device, weights, tableRowStart, indices, offsets, perValueWeights, batchSize, numFeatures, dim, pooling, nameof(Forward));
        GpuKernelUtil.AtLeast(output, (long)batchSize * numFeatures * dim, nameof(output), nameof(Forward));
        if ((long)batchSize * numFeatures * dim == 0) return;
        var set = device.Kernels<KernelSet>();
        device.ClearErrorFlag();
        set.Forward((int)((long)batchSize * numFeatures * dim), args, weights, tableRowStart, indices, offsets,
            perValueWeights.Length > 0 ? perValueWeights : weights, output, device.ErrorFlag);
        ThrowOnError(device, nameof(Forward));
    }

    /// <summary>weight[row] -= lr · Σ_bags w_value · dOutput[b, f] (/ bag length for mean), scattered with float atomics.</summary>
    public static void BackwardSgdAtomic(GpuDevice device, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> perValueWeights, ArrayView<float> dOutput, int batchSize, int numFeatures, int dim,
        Pooling pooling, float learningRate)
    {
        var args = Check(device, weights, tableRowStart, indices, offsets, perValueWeights, batchSize, numFeatures, dim, pooling, nameof(BackwardSgdAtomic));
        GpuKernelUtil.AtLeast(dOutput, (long)batchSize * numFeatures * dim, nameof(dOutput), nameof(BackwardSgdAtomic));
        if ((long)batchSize * numFeatures * dim == 0) return;
        args.Lr = learningRate;
        var set = device.Kernels<KernelSet>();
        device.ClearErrorFlag();
        set.SgdAtomic((int)((long)batchSize * numFeatures * dim), args, weights, tableRowStart, indices, offsets,
            perValueWeights.Length > 0 ? perValueWeights : weights, dOutput, device.ErrorFlag);
        ThrowOnError(device, nameof(BackwardSgdAtomic));
    }

    /// <summary>Same update as <see cref="BackwardSgdAtomic"/>, bit-reproducible: each touched row is summed in position order and written once.</summary>
    public static void BackwardSgdDeterministic(GpuDevice device, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> perValueWeights, ArrayView<float> dOutput, int batchSize, int numFeatures, int dim,
        Pooling pooling, float learningRate)
        => Deterministic(device, weights, tableRowStart, indices, offsets, perValueWeights, dOutput, batchSize, numFeatures, dim, pooling,
            learningRate, 0f, default, default, mode: 0, nameof(BackwardSgdDeterministic));

    /// <summary>
    /// Row-wise Adagrad, deterministic: g = gradient of a touched row; state[row] += mean_d(g²);
    /// weight[row] -= lr · g / (sqrt(state[row]) + eps). <paramref name="state"/> has one float per global row.
    /// </summary>
    public static void BackwardRowwiseAdagradDeterministic(GpuDevice device, ArrayView<float> weights, ArrayView<float> state,
        ArrayView<int> tableRowStart, ArrayView<int> indices, ArrayView<int> offsets, ArrayView<float> perValueWeights, ArrayView<float> dOutput,
        int batchSize, int numFeatures, int dim, Pooling pooling, float learningRate, float eps)
    {
        GpuKernelUtil.AtLeast(state, weights.Length / Math.Max(1, dim), nameof(state), nameof(BackwardRowwiseAdagradDeterministic));
        Deterministic(device, weights, tableRowStart, indices, offsets, perValueWeights, dOutput, batchSize, numFeatures, dim, pooling,
            learningRate, eps, state, default, mode: 1, nameof(BackwardRowwiseAdagradDeterministic));
    }

    /// <summary>
    /// PyTorch SparseAdam, deterministic: for each touched row only (untouched rows keep their moments), with g its
    /// gradient and t = <paramref name="step"/> (1-based): m += (g − m)(1−β1); v += (g² − v)(1−β2);
    /// w -= lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + eps). <paramref name="m"/> and <paramref name="v"/> are [rows, dim] over all
    /// stacked tables. Same formula and operation order as the CPU kernel's <c>AdamRow</c>.
    /// </summary>
    public static void BackwardAdamDeterministic(GpuDevice device, ArrayView<float> weights, ArrayView<float> m, ArrayView<float> v,
        ArrayView<int> tableRowStart, ArrayView<int> indices, ArrayView<int> offsets, ArrayView<float> perValueWeights, ArrayView<float> dOutput,
        int batchSize, int numFeatures, int dim, Pooling pooling, float learningRate, float beta1, float beta2, float eps, long step)
    {
        const string op = nameof(BackwardAdamDeterministic);
        GpuKernelUtil.AtLeast(m, weights.Length, nameof(m), op);
        GpuKernelUtil.AtLeast(v, weights.Length, nameof(v), op);
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, $"{op}: step is 1-based, got {step}.");
        // step_size = lr · √(1-β2^t) / (1-β1^t), in double as the CPU kernel (and Python) computes it.
        double bc1 = 1 - Math.Pow(beta1, step);
        double bc2 = 1 - Math.Pow(beta2, step);
        float stepSize = (float)(learningRate * Math.Sqrt(bc2) / bc1);
        Deterministic(device, weights, tableRowStart, indices, offsets, perValueWeights, dOutput, batchSize, numFeatures, dim, pooling,
            learningRate, eps, m, v, mode: 2, op, beta1, beta2, stepSize);
    }

    private static void Deterministic(GpuDevice device, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> perValueWeights, ArrayView<float> dOutput, int batchSize, int numFeatures, int dim,
        Pooling pooling, float learningRate, float eps, ArrayView<float> state, ArrayView<float> state2, int mode, string op,
        float beta1 = 0f, float beta2 = 0f, float stepSize = 0f)
    {
        var args = Check(device, weights, tableRowStart, indices, offsets, perValueWeights, batchSize, numFeatures, dim, pooling, op);
        GpuKernelUtil.AtLeast(dOutput, (long)batchSize * numFeatures * dim, nameof(dOutput), op);
        int nnz = (int)indices.Length;
        if (nnz == 0 || (long)batchSize * numFeatures * dim == 0) return;
        args.Lr = learningRate;
        args.Eps = eps;
        args.Adagrad = mode == 1 ? 1 : 0;
        args.Adam = mode == 2 ? 1 : 0;
        args.Beta1 = beta1;
        args.Beta2 = beta2;
        args.StepSize = stepSize;
        var set = device.Kernels<KernelSet>();
        var acc = device.Accelerator;
        long tempSize = acc.ComputeRadixSortPairsTempStorageSize<int, int, AscendingInt32>(nnz);
        using var keys = device.Pool.Rent<int>(nnz);
        using var positions = device.Pool.Rent<int>(nnz);
        using var bagOf = device.Pool.Rent<int>(nnz);
        using var temp = device.Pool.Rent<int>(Math.Max(1, tempSize));
        device.ClearErrorFlag();
        set.Keys(batchSize * numFeatures, args, tableRowStart, indices, offsets, keys.View, positions.View, bagOf.View, device.ErrorFlag);
        set.Sort(device.Stream, keys.View, positions.View, temp.View);
        set.SegmentUpdate(nnz, args, keys.View, positions.View, bagOf.View, offsets,
            perValueWeights.Length > 0 ? perValueWeights : dOutput, dOutput, weights, mode != 0 ? state : weights, mode == 2 ? state2 : weights);
        ThrowOnError(device, op);
    }

    private static BagArgs Check(GpuDevice device, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> perValueWeights, int batchSize, int numFeatures, int dim, Pooling pooling, string op)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(batchSize, nameof(batchSize), op);
        GpuKernelUtil.NonNegative(numFeatures, nameof(numFeatures), op);
        GpuKernelUtil.Positive(dim, nameof(dim), op);
        GpuKernelUtil.AtLeast(tableRowStart, numFeatures + 1, nameof(tableRowStart), op);
        GpuKernelUtil.AtLeast(offsets, (long)numFeatures * batchSize + 1, nameof(offsets), op);
        if (perValueWeights.Length > 0 && perValueWeights.Length < indices.Length)
            throw new ArgumentException($"{op}: 'perValueWeights' needs {indices.Length} entries (one per index) or none, got {perValueWeights.Length}.", nameof(perValueWeights));
        if (pooling is not (Pooling.Sum or Pooling.Mean))
            throw new ArgumentOutOfRangeException(nameof(pooling), pooling, $"{op}: unknown pooling {pooling}.");
        return new BagArgs
        {
            B = batchSize, F = numFeatures, D = dim,
            Mean = pooling == Pooling.Mean ? 1 : 0,
            HasWeights = perValueWeights.Length > 0 ? 1 : 0,
            WeightRows = (int)Math.Min(int.MaxValue, weights.Length / dim),
        };
    }

    private static void ThrowOnError(GpuDevice device, string op)
    {
        var e = device.ReadErrorFlag();
        if (e[0] == 0) return;
        device.ClearErrorFlag();
        throw new ArgumentOutOfRangeException("indices", e[2],
            $"{op}: feature {e[1]} has id {e[2]} outside its table of {e[3]} rows (ids must be in [0, {e[3]})); the id was not read.");
    }

    private static void Raise(ArrayView<int> error, int feature, int id, int rows)
    {
        if (Atomic.CompareExchange(ref error[0], 0, 1) == 0)
        {
            error[1] = feature;
            error[2] = id;
            error[3] = rows;
        }
    }

    /// <summary>Global row of value p of feature f, or -1 (and the error flag raised) when the id is outside the table.</summary>
    private static int GlobalRow(BagArgs p, ArrayView<int> tableRowStart, ArrayView<int> indices, ArrayView<int> error, int f, int pos, bool report)
    {
        int start = tableRowStart[f];
        int rows = tableRowStart[f + 1] - start;
        int id = indices[pos];
        if (id < 0 || id >= rows || start < 0 || start + id >= p.WeightRows)
        {
            if (report) Raise(error, f, id, rows);
            return -1;
        }
        return start + id;
    }

    private static void ForwardKernel(Index1D idx, BagArgs p, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> valueWeights, ArrayView<float> output, ArrayView<int> error)
    {
        int d = idx % p.D;
        int bag = idx / p.D;
        int f = bag / p.B, b = bag % p.B;
        int start = offsets[bag], end = offsets[bag + 1];
        float s = 0;
        for (int pos = start; pos < end; pos++)
        {
            int row = GlobalRow(p, tableRowStart, indices, error, f, pos, d == 0);
            if (row < 0) continue;
            float w = p.HasWeights != 0 ? valueWeights[pos] : 1f;
            s += w * weights[(long)row * p.D + d];
        }
        if (p.Mean != 0 && end > start) s /= end - start;
        output[((long)b * p.F + f) * p.D + d] = s;
    }

    private static void SgdAtomicKernel(Index1D idx, BagArgs p, ArrayView<float> weights, ArrayView<int> tableRowStart, ArrayView<int> indices,
        ArrayView<int> offsets, ArrayView<float> valueWeights, ArrayView<float> dOutput, ArrayView<int> error)
    {
        int d = idx % p.D;
        int bag = idx / p.D;
        int f = bag / p.B, b = bag % p.B;
        int start = offsets[bag], end = offsets[bag + 1];
        if (end <= start) return;
        float g = dOutput[((long)b * p.F + f) * p.D + d];
        if (p.Mean != 0) g /= end - start;
        for (int pos = start; pos < end; pos++)
        {
            int row = GlobalRow(p, tableRowStart, indices, error, f, pos, d == 0);
            if (row < 0) continue;
            float w = p.HasWeights != 0 ? valueWeights[pos] : 1f;
            Atomic.Add(ref weights[(long)row * p.D + d], -p.Lr * w * g);
        }
    }

    /// <summary>One thread per bag: key = global row (int.MaxValue for a bad id), value = position, and the bag of each position.</summary>
    private static void KeysKernel(Index1D bag, BagArgs p, ArrayView<int> tableRowStart, ArrayView<int> indices, ArrayView<int> offsets,
        ArrayView<int> keys, ArrayView<int> positions, ArrayView<int> bagOf, ArrayView<int> error)
    {
        int f = bag / p.B;
        int start = offsets[bag], end = offsets[bag + 1];
        for (int pos = start; pos < end; pos++)
        {
            int row = GlobalRow(p, tableRowStart, indices, error, f, pos, true);
            keys[pos] = row < 0 ? int.MaxValue : row;
            positions[pos] = pos;
            bagOf[pos] = bag;
        }
    }

    /// <summary>Gradient of sorted segment [i, end) at column d, summed in position order.</summary>
    private static float SegmentGrad(BagArgs p, ArrayView<int> positions, ArrayView<int> bagOf, ArrayView<int> offsets,
        ArrayView<float> valueWeights, ArrayView<float> dOutput, int i, int end, int d)
    {
        float g = 0;
        for (int j = i; j < end; j++)
        {
            int pos = positions[j];
            int bag = bagOf[pos];
            int f = bag / p.B, b = bag % p.B;
            float w = p.HasWeights != 0 ? valueWeights[pos] : 1f;
            if (p.Mean != 0) w /= offsets[bag + 1] - offsets[bag];
            g += w * dOutput[((long)b * p.F + f) * p.D + d];
        }
        return g;
    }

    /// <summary>One thread per sorted position; the head of each run of equal rows updates that row once.</summary>
    private static void SegmentUpdateKernel(Index1D i, BagArgs p, ArrayView<int> keys, ArrayView<int> positions, ArrayView<int> bagOf,
        ArrayView<int> offsets, ArrayView<float> valueWeights, ArrayView<float> dOutput, ArrayView<float> weights, ArrayView<float> state,
        ArrayView<float> state2)
    {
        int row = keys[i];
        if (row == int.MaxValue || (i > 0 && keys[i - 1] == row)) return;
        int n = (int)keys.Length;
        int end = i + 1;
        while (end < n && keys[end] == row) end++;
        long w0 = (long)row * p.D;
        if (p.Adam != 0)
        {
            float c1 = 1f - p.Beta1, c2 = 1f - p.Beta2;
            for (int d = 0; d < p.D; d++)
            {
                float g = SegmentGrad(p, positions, bagOf, offsets, valueWeights, dOutput, i, end, d);
                float mi = state[w0 + d] + (g - state[w0 + d]) * c1;
                float vi = state2[w0 + d] + (g * g - state2[w0 + d]) * c2;
                state[w0 + d] = mi;
                state2[w0 + d] = vi;
                weights[w0 + d] += -p.StepSize * (mi / (XMath.Sqrt(vi) + p.Eps));
            }
        }
        else if (p.Adagrad != 0)
        {
            float sq = 0;
            for (int d = 0; d < p.D; d++)
            {
                float g = SegmentGrad(p, positions, bagOf, offsets, valueWeights, dOutput, i, end, d);
                sq += g * g;
            }
            float st = state[row] + sq / p.D;
            state[row] = st;
            float scale = p.Lr / (XMath.Sqrt(st) + p.Eps);
            for (int d = 0; d < p.D; d++)
                weights[w0 + d] -= scale * SegmentGrad(p, positions, bagOf, offsets, valueWeights, dOutput, i, end, d);
        }
        else
        {
            for (int d = 0; d < p.D; d++)
                weights[w0 + d] -= p.Lr * SegmentGrad(p, positions, bagOf, offsets, valueWeights, dOutput, i, end, d);
        }
    }
}

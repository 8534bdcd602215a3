using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Optim;

/// <summary>
/// Dense optimizer updates with PyTorch's formulas (torch.optim.SGD / Adam / AdamW / Adagrad, non-foreach,
/// non-fused path). Memory-bound: one pass over weight, gradient and state, Vector&lt;float&gt; wide,
/// scalar tail. The scalar expressions in the tails are the reference formulas.
/// </summary>
public static class DenseOptimizerKernels
{
    /// <summary>
    /// SGD with optional weight decay and momentum (PyTorch: g += wd·w; buf = μ·buf + g (buf = g on the
    /// first step); w -= lr·buf). <paramref name="momentumBuffer"/> is empty when μ = 0.
    /// </summary>
    public static unsafe void Sgd(Span<float> weight, ReadOnlySpan<float> grad, Span<float> momentumBuffer,
        float lr, float momentum, float weightDecay, bool firstStep)
    {
        int n = weight.Length;
        KernelGuard.AtLeast(grad, n, nameof(grad), nameof(Sgd));
        if (momentum != 0f) KernelGuard.AtLeast(momentumBuffer, n, nameof(momentumBuffer), nameof(Sgd));
        int chunks = UpdateChunks(n);
        if (chunks == 1) { SgdRange(weight, grad, momentumBuffer, lr, momentum, weightDecay, firstStep); return; }
        fixed (float* w = weight, g = grad, b = momentumBuffer)
        {
            var body = new UpdateBody
            {
                Kind = UpdateKind.Sgd, N = n, W = w, G = g, S1 = b, Lr = lr, Momentum = momentum, WeightDecay = weightDecay,
                FirstStep = firstStep,
            };
            KernelParallelism.For(chunks, ref body);
        }
    }

    private static void SgdRange(Span<float> weight, ReadOnlySpan<float> grad, Span<float> momentumBuffer,
        float lr, float momentum, float weightDecay, bool firstStep)
    {
        int n = weight.Length;
        ref float w = ref MemoryMarshal.GetReference(weight);
        ref float g = ref MemoryMarshal.GetReference(grad);
        int i = 0;
        if (momentum == 0f)
        {
            if (Vector.IsHardwareAccelerated)
            {
                var vlr = new Vector<float>(lr);
                var vwd = new Vector<float>(weightDecay);
                for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
                {
                    var vw = Vector.LoadUnsafe(ref w, (nuint)i);
                    var vg = Vector.LoadUnsafe(ref g, (nuint)i) + vwd * vw;
                    (vw - vlr * vg).StoreUnsafe(ref w, (nuint)i);
                }
            }
            for (; i < n; i++)
            {
                float gi = Unsafe.Add(ref g, i) + weightDecay * Unsafe.Add(ref w, i);
                Unsafe.Add(ref w, i) -= lr * gi;
            }
            return;
        }

        ref float b = ref MemoryMarshal.GetReference(momentumBuffer);
        if (Vector.IsHardwareAccelerated)
        {
            // Same operations per element as the scalar loop below (no fused multiply-add), so the same bits.
            var vlr = new Vector<float>(lr);
            var vwd = new Vector<float>(weightDecay);
            var vm = new Vector<float>(momentum);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                var vw = Vector.LoadUnsafe(ref w, (nuint)i);
                var vg = Vector.LoadUnsafe(ref g, (nuint)i) + vwd * vw;
                var vb = firstStep ? vg : vm * Vector.LoadUnsafe(ref b, (nuint)i) + vg;
                vb.StoreUnsafe(ref b, (nuint)i);
                (vw - vlr * vb).StoreUnsafe(ref w, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float gi = Unsafe.Add(ref g, i) + weightDecay * Unsafe.Add(ref w, i);
            float bi = firstStep ? gi : momentum * Unsafe.Add(ref b, i) + gi;
            Unsafe.Add(ref b, i) = bi;
            Unsafe.Add(ref w, i) -= lr * bi;
        }
    }

    /// <summary>
    /// Adam / AdamW step <paramref name="step"/> (1-based). PyTorch: Adam adds wd·w to g; AdamW
    /// (<paramref name="decoupled"/>) multiplies w by (1 − lr·wd) first. m = β1·m + (1−β1)·g;
    /// v = β2·v + (1−β2)·g²; w -= (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
    /// </summary>
    public static unsafe void Adam(Span<float> weight, ReadOnlySpan<float> grad, Span<float> m, Span<float> v,
        float lr, float beta1, float beta2, float eps, float weightDecay, bool decoupled, long step)
    {
        int n = weight.Length;
        KernelGuard.AtLeast(grad, n, nameof(grad), nameof(Adam));
        KernelGuard.AtLeast(m, n, nameof(m), nameof(Adam));
        KernelGuard.AtLeast(v, n, nameof(v), nameof(Adam));
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "Adam: step is 1-based, got " + step);
        int chunks = UpdateChunks(n);
        if (chunks == 1) { AdamRange(weight, grad, m, v, lr, beta1, beta2, eps, weightDecay, decoupled, step); return; }
        fixed (float* pw = weight, pg = grad, pm = m, pv = v)
        {
            var body = new UpdateBody
            {
                Kind = UpdateKind.Adam, N = n, W = pw, G = pg, S1 = pm, S2 = pv, Lr = lr, Beta1 = beta1, Beta2 = beta2, Eps = eps,
                WeightDecay = weightDecay, Decoupled = decoupled, Step = step,
            };
            KernelParallelism.For(chunks, ref body);
        }
    }

    private static void AdamRange(Span<float> weight, ReadOnlySpan<float> grad, Span<float> m, Span<float> v,
        float lr, float beta1, float beta2, float eps, float weightDecay, bool decoupled, long step)
    {
        int n = weight.Length;
        float bc1 = 1f - MathF.Pow(beta1, step);
        float bc2Sqrt = MathF.Sqrt(1f - MathF.Pow(beta2, step));
        float stepSize = lr / bc1;
        float decay = decoupled ? 1f - lr * weightDecay : 1f;
        float l2 = decoupled ? 0f : weightDecay;

        ref float w = ref MemoryMarshal.GetReference(weight);
        ref float g = ref MemoryMarshal.GetReference(grad);
        ref float mr = ref MemoryMarshal.GetReference(m);
        ref float vr = ref MemoryMarshal.GetReference(v);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vb1 = new Vector<float>(beta1); var vb1c = new Vector<float>(1f - beta1);
            var vb2 = new Vector<float>(beta2); var vb2c = new Vector<float>(1f - beta2);
            var vInvBc2 = new Vector<float>(1f / bc2Sqrt); var vEps = new Vector<float>(eps);
            var vStep = new Vector<float>(stepSize); var vDecay = new Vector<float>(decay); var vL2 = new Vector<float>(l2);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                var vw = Vector.LoadUnsafe(ref w, (nuint)i) ;
                var vg = Vector.LoadUnsafe(ref g, (nuint)i) + vL2 * vw;
                vw *= vDecay;
                var vm = vb1 * Vector.LoadUnsafe(ref mr, (nuint)i) + vb1c * vg;
                var vv = vb2 * Vector.LoadUnsafe(ref vr, (nuint)i) + vb2c * vg * vg;
                vm.StoreUnsafe(ref mr, (nuint)i);
                vv.StoreUnsafe(ref vr, (nuint)i);
                var denom = Vector.SquareRoot(vv) * vInvBc2 + vEps;
                (vw - vStep * vm / denom).StoreUnsafe(ref w, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float wi = Unsafe.Add(ref w, i);
            float gi = Unsafe.Add(ref g, i) + l2 * wi;
            wi *= decay;
            float mi = beta1 * Unsafe.Add(ref mr, i) + (1f - beta1) * gi;
            float vi = beta2 * Unsafe.Add(ref vr, i) + (1f - beta2) * gi * gi;
            Unsafe.Add(ref mr, i) = mi;
            Unsafe.Add(ref vr, i) = vi;
            Unsafe.Add(ref w, i) = wi - stepSize * mi / (MathF.Sqrt(vi) / bc2Sqrt + eps);
        }
    }

    /// <summary>Adagrad (PyTorch, no lr decay): g += wd·w; sum += g²; w -= lr · g / (√sum + ε).</summary>
    public static unsafe void Adagrad(Span<float> weight, ReadOnlySpan<float> grad, Span<float> sumSquares,
        float lr, float eps, float weightDecay)
    {
        int n = weight.Length;
        KernelGuard.AtLeast(grad, n, nameof(grad), nameof(Adagrad));
        KernelGuard.AtLeast(sumSquares, n, nameof(sumSquares), nameof(Adagrad));
        int chunks = UpdateChunks(n);
        if (chunks == 1) { AdagradRange(weight, grad, sumSquares, lr, eps, weightDecay); return; }
        fixed (float* pw = weight, pg = grad, ps = sumSquares)
        {
            var body = new UpdateBody { Kind = UpdateKind.Adagrad, N = n, W = pw, G = pg, S1 = ps, Lr = lr, Eps = eps, WeightDecay = weightDecay };
            KernelParallelism.For(chunks, ref body);
        }
    }

    private static void AdagradRange(Span<float> weight, ReadOnlySpan<float> grad, Span<float> sumSquares,
        float lr, float eps, float weightDecay)
    {
        int n = weight.Length;
        ref float w = ref MemoryMarshal.GetReference(weight);
        ref float g = ref MemoryMarshal.GetReference(grad);
        ref float s = ref MemoryMarshal.GetReference(sumSquares);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vlr = new Vector<float>(lr); var veps = new Vector<float>(eps); var vwd = new Vector<float>(weightDecay);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                var vw = Vector.LoadUnsafe(ref w, (nuint)i);
                var vg = Vector.LoadUnsafe(ref g, (nuint)i) + vwd * vw;
                var vs = Vector.LoadUnsafe(ref s, (nuint)i) + vg * vg;
                vs.StoreUnsafe(ref s, (nuint)i);
                (vw - vlr * vg / (Vector.SquareRoot(vs) + veps)).StoreUnsafe(ref w, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float gi = Unsafe.Add(ref g, i) + weightDecay * Unsafe.Add(ref w, i);
            float si = Unsafe.Add(ref s, i) + gi * gi;
            Unsafe.Add(ref s, i) = si;
            Unsafe.Add(ref w, i) -= lr * gi / (MathF.Sqrt(si) + eps);
        }
    }

    /// <summary>
    /// Zeroes a gradient after its update, split across threads like the update (<see cref="UpdateChunks"/>): each thread
    /// clears the lines it has just read, instead of the calling thread pulling every line written by the other core.
    /// </summary>
    public static unsafe void ZeroGradient(Span<float> grad)
    {
        int chunks = UpdateChunks(grad.Length);
        if (chunks == 1) { grad.Clear(); return; }
        fixed (float* g = grad)
        {
            var body = new UpdateBody { Kind = UpdateKind.Zero, N = grad.Length, G = g };
            KernelParallelism.For(chunks, ref body);
        }
    }

    // ---- Threading ---------------------------------------------------------------------------------

    /// <summary>Below this many elements an update stays on the calling thread (waking a worker costs a few µs).</summary>
    private const int ParallelMinElements = 1 << 15;

    /// <summary>Elements per unit of the split: every chunk but the last is a whole number of vectors, so each element
    /// goes through the same (vector or scalar-tail) code, with the same bits, as in one serial pass.</summary>
    private const int SplitUnit = 16;

    /// <summary>
    /// How many chunks an update of n elements is split into. The chunks are contiguous halves (for two threads), which
    /// mostly coincide with the row halves that the weight-gradient GEMM's threads wrote: the gradient lines are read
    /// by the core whose cache holds them.
    /// </summary>
    private static int UpdateChunks(int n) =>
        n < 2 * ParallelMinElements ? 1 : KernelParallelism.Chunks(n / SplitUnit, SplitUnit, ParallelMinElements);

    private enum UpdateKind { Sgd, Adam, Adagrad, Zero }

    /// <summary>One chunk of an element-wise update: the serial kernel on the chunk's element range.</summary>
    private unsafe struct UpdateBody : IChunkBody
    {
        public UpdateKind Kind;
        public int N;
        public float* W, G, S1, S2;
        public float Lr, Momentum, WeightDecay, Beta1, Beta2, Eps;
        public bool FirstStep, Decoupled;
        public long Step;

        public readonly void Run(int chunk, int chunks)
        {
            var (u0, u1) = KernelParallelism.Range(N / SplitUnit, chunks, chunk);
            int start = u0 * SplitUnit, end = chunk == chunks - 1 ? N : u1 * SplitUnit, len = end - start;
            var w = new Span<float>(W + start, W == null ? 0 : len);
            var g = new Span<float>(G + start, len);
            switch (Kind)
            {
                case UpdateKind.Sgd:
                    SgdRange(w, g, Momentum == 0f ? default : new Span<float>(S1 + start, len), Lr, Momentum, WeightDecay, FirstStep);
                    break;
                case UpdateKind.Adam:
                    AdamRange(w, g, new Span<float>(S1 + start, len), new Span<float>(S2 + start, len), Lr, Beta1, Beta2, Eps,
                        WeightDecay, Decoupled, Step);
                    break;
                case UpdateKind.Adagrad:
                    AdagradRange(w, g, new Span<float>(S1 + start, len), Lr, Eps, WeightDecay);
                    break;
                default:
                    g.Clear();
                    break;
            }
        }
    }

    /// <summary>Σ gᵢ² in float64 (for global gradient-norm clipping).</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        double acc = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var vacc = Vector<float>.Zero;
            int blockEnd = 0;
            // Accumulate in float over blocks of 1024, then fold into double: bounded float error.
            while (i <= x.Length - Vector<float>.Count)
            {
                blockEnd = Math.Min(x.Length - Vector<float>.Count + 1, i + 1024);
                vacc = Vector<float>.Zero;
                for (; i < blockEnd; i += Vector<float>.Count)
                {
                    var v = Vector.LoadUnsafe(ref r, (nuint)i);
                    vacc += v * v;
                }
                acc += Vector.Sum(vacc);
            }
        }
        for (; i < x.Length; i++) acc += (double)x[i] * x[i];
        return acc;
    }
}

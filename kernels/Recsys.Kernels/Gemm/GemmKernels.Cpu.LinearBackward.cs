using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;
using Recsys.Kernels.Interaction;

namespace Recsys.Kernels.Gemm;

// The backward of a linear layer applied to many rows with a small weight (a token projection: 27,648 rows of 64 → 192 in
// W5). Its two products read the same upstream gradient dY: dX = dY·W and dW = dYᵀ·X. Run one after the other, each
// streams all of dY (21 MB in W5) from DRAM, since the step's other activations have pushed it out of L3 by then. Here
// both walk dY together, one block of rows at a time: dX's rows are computed from the block while it is in L2, then the
// same block is added into dW, so dY is read from memory once.
//
// dW is a sum over all rows. Each of a fixed number of row ranges (depending only on the row count, not on the threads)
// sums into its own partial, and the partials are added in range order at the end, so the bits are the same for any
// thread count.
public static partial class GemmKernels
{
    /// <summary>Rows of dY a thread takes at a time: dY's 128 × out block (96 KiB at out = 192) and X's stay in L2.</summary>
    private const int FusedBackwardBlockRows = 128;

    /// <summary>At most this many row ranges (partials of dW); each range has at least <see cref="FusedBackwardMinRangeRows"/> rows.</summary>
    private const int FusedBackwardMaxRanges = 16;

    private const int FusedBackwardMinRangeRows = 1024;

    /// <summary>
    /// The backward of Y[rows, out] = X[rows, in]·W[out, in]ᵀ (+ b): dX (+)= dY·W, dW (+)= dYᵀ·X, dB += column sums of dY.
    /// Any of <paramref name="dX"/>, <paramref name="dW"/>, <paramref name="dB"/> may be empty (not wanted). The results of
    /// <see cref="MatMul"/> for dX and <see cref="LinearWeightGradients"/> for dW and dB; for a small weight and many rows
    /// (see the file remarks) all three come from one pass over dY. There dX has MatMul's bits on whole 8-row tiles, while
    /// dW's sum is grouped by row range: its bits differ from the two-call path, but not between thread counts.
    /// </summary>
    public static void LinearBackward(ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        Span<float> dX, bool accumulateDx, Span<float> dW, Span<float> dB, bool accumulateDw, int rows, int outDim, int inDim)
    {
        const string op = nameof(LinearBackward);
        KernelGuard.NonNegative(rows, nameof(rows), op);
        KernelGuard.NonNegative(outDim, nameof(outDim), op);
        KernelGuard.NonNegative(inDim, nameof(inDim), op);
        KernelGuard.AtLeast(dY, (long)rows * outDim, nameof(dY), op);
        if (!dW.IsEmpty) KernelGuard.AtLeast(x, (long)rows * inDim, nameof(x), op);
        if (!dX.IsEmpty)
        {
            KernelGuard.AtLeast(w, (long)outDim * inDim, nameof(w), op);
            KernelGuard.AtLeast(dX, (long)rows * inDim, nameof(dX), op);
        }
        if (!dW.IsEmpty) KernelGuard.AtLeast(dW, (long)outDim * inDim, nameof(dW), op);
        if (!dB.IsEmpty) KernelGuard.AtLeast(dB, outDim, nameof(dB), op);
        if (dX.IsEmpty || dW.IsEmpty || !UseFusedBackward(rows, outDim, inDim))
        {
            if (!dX.IsEmpty) MatMul(dY, w, dX, rows, inDim, outDim, accumulateDx);
            if (!dW.IsEmpty || !dB.IsEmpty) LinearWeightGradients(dY, x, dW, dB, outDim, inDim, rows, accumulateDw);
            return;
        }
        RunFusedBackward(dY, x, w, dX, accumulateDx, dW, dB, accumulateDw, rows, outDim, inDim);
    }

    /// <summary>
    /// The fused path takes the shapes the long-k weight gradient takes (whole 8 × 32 tiles of dW, a small dW, many rows),
    /// with out ≤ KC so that dX is one k block.
    /// </summary>
    internal static bool UseFusedBackward(int rows, int outDim, int inDim) =>
        Selected == MicroKernel.V512x8x32 && outDim % 8 == 0 && inDim % 32 == 0 && outDim <= KC
        && (long)outDim * inDim <= LongKMaxOutput && rows >= LongKRatio * Math.Max(outDim, inDim)
        && rows >= 2 * FusedBackwardMinRangeRows;

    private static unsafe void RunFusedBackward(ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> w,
        Span<float> dX, bool accumulateDx, Span<float> dW, Span<float> dB, bool accumulateDw, int rows, int outDim, int inDim)
    {
        int ranges = Math.Clamp(rows / FusedBackwardMinRangeRows, 1, FusedBackwardMaxRanges);
        // Each partial padded by a cache line, so that the partials do not all start at one offset modulo 4 KiB.
        long partialStride = (long)outDim * inDim + 16, biasStride = outDim + 16;
        long floats = ranges * (partialStride + biasStride) + 16;
        // The calling thread's buffer, kept between calls (the workers only use it during this call): steady-state
        // training allocates nothing here.
        float* partials = PinnedBuffer(ref t_fusedPartials, checked((int)floats));
        fixed (float* pdy = dY, px = x, pw = w, pdx = dX, pdw = dW, pdb = dB)
        {
            var body = new FusedBackwardBody
            {
                DY = pdy, X = px, W = pw, DX = pdx, AccumulateDx = accumulateDx, Rows = rows, Out = outDim, In = inDim,
                Ranges = ranges, Partials = partials, PartialStride = partialStride,
                BiasPartials = dB.IsEmpty ? null : partials + ranges * partialStride, BiasStride = biasStride,
            };
            KernelParallelism.For(Math.Min(ranges, KernelParallelism.MaxThreads), ref body);
            var reduce = new ReducePartialsBody
            {
                Partials = partials, Stride = partialStride, Count = ranges, Dst = pdw, Length = outDim * inDim, Accumulate = accumulateDw,
            };
            KernelParallelism.For(KernelParallelism.Chunks(reduce.Length, ranges, 1 << 16), ref reduce);
            if (body.BiasPartials != null)
            {
                // dB always accumulates (it is a parameter gradient, like LinearWeightGradients' bias).
                var reduceBias = new ReducePartialsBody
                {
                    Partials = body.BiasPartials, Stride = biasStride, Count = ranges, Dst = pdb, Length = outDim, Accumulate = true,
                };
                reduceBias.Run(0, 1);
            }
        }
    }

    [ThreadStatic] private static float[]? t_fusedPartials;

    /// <summary>First row of row range <paramref name="r"/>: a multiple of 8, so only the last range has a partial tile.</summary>
    private static int RangeStart(int rows, int ranges, int r) => r == ranges ? rows : (int)((long)rows / 8 * r / ranges) * 8;

    private unsafe struct FusedBackwardBody : IChunkBody
    {
        public float* DY, X, W, DX, Partials, BiasPartials;
        public long PartialStride, BiasStride;
        public int Rows, Out, In, Ranges;
        public bool AccumulateDx;

        public readonly void Run(int chunk, int chunks)
        {
            var (s0, s1) = KernelParallelism.Range(Ranges, chunks, chunk);
            int outDim = Out, inDim = In;
            // W as B of dX = dY·W ([k = out, n = in]), packed by each thread for itself (48 KiB at 192 × 64).
            float* packedW = PinnedBuffer(ref t_packB, KC * NC);
            PackB(W, inDim, 1, 0, outDim, 0, inDim, 32, packedW);
            for (int s = s0; s < s1; s++)
            {
                int r0 = RangeStart(Rows, Ranges, s), r1 = RangeStart(Rows, Ranges, s + 1);
                float* partial = Partials + s * PartialStride;
                float* biasPartial = BiasPartials == null ? null : BiasPartials + s * BiasStride;
                if (biasPartial != null) new Span<float>(biasPartial, outDim).Clear();
                for (int rb = r0; rb < r1; rb += FusedBackwardBlockRows)
                {
                    int nb = Math.Min(FusedBackwardBlockRows, r1 - rb);
                    float* dyBlock = DY + (long)rb * outDim, xBlock = X + (long)rb * inDim;
                    // dX rows of the block: the same tiles (and bits) as MatMul's row-major-A path.
                    int full = nb & ~7;
                    for (int ir = 0; ir < full; ir += 8)
                        for (int jr = 0; jr < inDim; jr += 32)
                            Kernel8x32RowMajorA(outDim, dyBlock + (long)ir * outDim, outDim, packedW + (long)jr * outDim,
                                DX + (long)(rb + ir) * inDim + jr, inDim, AccumulateDx, null, Activation.None);
                    for (int ir = full; ir < nb; ir++) // the last range's last < 8 rows
                        RowMath.WeightedRowSum(dyBlock + (long)ir * outDim, 1, W, inDim, outDim, DX + (long)(rb + ir) * inDim, inDim, AccumulateDx);
                    // The block's share of dW (and of the bias gradient), from the dY block just read.
                    bool add = rb > r0;
                    for (int i0 = 0; i0 < outDim; i0 += 8)
                    {
                        for (int j0 = 0; j0 < inDim; j0 += 32)
                            Kernel8x32Strided(nb, dyBlock + i0, outDim, xBlock + j0, inDim, partial + (long)i0 * inDim + j0, inDim, add);
                        if (biasPartial != null) AddColumnSums8(dyBlock + i0, outDim, nb, biasPartial + i0);
                    }
                }
            }
        }
    }

    /// <summary>Dst[e] (+)= Σ_s Partials[s·Stride + e], s in order (the same bits for any chunking of e).</summary>
    private unsafe struct ReducePartialsBody : IChunkBody
    {
        public float* Partials, Dst;
        public long Stride;
        public int Count, Length;
        public bool Accumulate;

        public readonly void Run(int chunk, int chunks)
        {
            var (e0, e1) = KernelParallelism.Range(Length, chunks, chunk);
            int e = e0;
            for (; e + 16 <= e1; e += 16)
            {
                var acc = Vector512.Load(Partials + e);
                for (int s = 1; s < Count; s++) acc += Vector512.Load(Partials + s * Stride + e);
                if (Accumulate) acc = Vector512.Load(Dst + e) + acc;
                acc.Store(Dst + e);
            }
            for (; e < e1; e++)
            {
                float acc = Partials[e];
                for (int s = 1; s < Count; s++) acc += Partials[s * Stride + e];
                Dst[e] = Accumulate ? Dst[e] + acc : acc;
            }
        }
    }
}

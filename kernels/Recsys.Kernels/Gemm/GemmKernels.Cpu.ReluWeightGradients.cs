using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Gemm;

// The backward of a ReLU layer with a narrow input that needs no gradient: the first layer of DLRM's bottom MLP, whose
// input is the 13 dense features. Unfused, it is three passes over the [batch, out] gradient (8 MB at batch 4096 × 512):
// the ReLU mask written into it, the weight gradient reading it back, and the bias sums reading it a third time
// (batch 4096, 13 → 512, operands from memory: 0.45–0.65 + 0.72 + 0.29 ms). Here one pass reads dY and the saved output
// y together, masks each vector in registers, and adds it into both the weight gradient and the bias sums; nothing is
// written back, since no input gradient reads dPre afterwards.
//
// W6 per-op profile (`bench --workloads W6 --profile`, builds alternated, six pairs): this layer's backward 1.15–2.22 →
// 0.49–0.91 ms at batch 4096 and 0.08–0.37 → 0.04–0.06 ms at batch 256. Its forward in the next step measured 0.39–0.58
// → 0.48–0.93 ms at batch 4096 in the same runs, slower in five pairs of six (the forward code is unchanged; the cause is
// not pinned down), so the layer's forward plus backward gains 0.4–1.4 ms of a ~65 ms step.
public static partial class GemmKernels
{
    /// <summary>Rows of dY masked and added into a block's registers between loads and stores of its partial sums.</summary>
    private const int ReluGradientRowBlock = 8;


    /// <summary>
    /// For Y = relu(X·Wᵀ + b) with X [k, n] and Y [k, m]: dW[m, n] (+)= dPreᵀ·X and dB[m] += Σ_p dPre[p], where
    /// dPre = dY where Y &gt; 0, else 0 — without writing dPre: <paramref name="dY"/> is only read. Returns false, having
    /// done nothing, unless the shape is one this fuses (an AVX-512 host, n ≤ 16, m ≥ 16, k &gt; 16: the shapes whose
    /// weight gradient otherwise takes the narrow outer-product path); the caller then masks dY itself and calls
    /// <see cref="LinearWeightGradients"/>. The bits are those of that unfused sequence: dW is the narrow path's chain over
    /// p, dB the column sums' chain, for any thread count.
    /// </summary>
    public static unsafe bool TryReluWeightGradients(ReadOnlySpan<float> dY, ReadOnlySpan<float> y, ReadOnlySpan<float> x,
        Span<float> dW, Span<float> dB, int m, int n, int k, bool accumulate)
    {
        const string op = nameof(TryReluWeightGradients);
        KernelGuard.NonNegative(m, nameof(m), op);
        KernelGuard.NonNegative(n, nameof(n), op);
        KernelGuard.NonNegative(k, nameof(k), op);
        if (!FusesReluWeightGradients(m, n, k)) return false;
        KernelGuard.AtLeast(dY, (long)k * m, nameof(dY), op);
        KernelGuard.AtLeast(y, (long)k * m, nameof(y), op);
        KernelGuard.AtLeast(x, (long)k * n, nameof(x), op);
        KernelGuard.AtLeast(dW, (long)m * n, nameof(dW), op);
        if (!dB.IsEmpty) KernelGuard.AtLeast(dB, m, nameof(dB), op);
        fixed (float* pdy = dY, py = y, px = x, pdw = dW, pdb = dB)
        {
            var body = new ReluWeightGradientBody
            {
                DY = pdy, Y = py, X = px, DW = pdw, DB = dB.IsEmpty ? null : pdb, M = m, N = n, K = k, Accumulate = accumulate,
                Lines = (m + 15) / 16,
            };
            KernelParallelism.For(KernelParallelism.Chunks(body.Lines, 16L * n * k, 1 << 18), ref body);
        }
        return true;
    }

    /// <summary>The shapes <see cref="TryReluWeightGradients"/> fuses: those whose weight gradient takes <see cref="RunOuterProducts"/>.</summary>
    private static bool FusesReluWeightGradients(int m, int n, int k) =>
        Selected == MicroKernel.V512x8x32 && n >= 1 && n <= NarrowLimit && m >= NarrowLimit && k > ShortKLimit;

    private unsafe struct ReluWeightGradientBody : IChunkBody
    {
        public float* DY, Y, X, DW, DB;
        public int M, N, K, Lines;
        public bool Accumulate;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = NarrowRows(Lines, M, chunks, chunk);
            const int bw = OuterProductBlockRows;
            float* buffer = stackalloc float[2 * NarrowLimit * bw + bw + NarrowLimit * ReluGradientRowBlock + 16];
            float* sums = AlignToCacheLine(buffer), part = sums + NarrowLimit * bw, bias = part + NarrowLimit * bw;
            for (int i0 = start; i0 < end; i0 += bw)
                Block(i0, Math.Min(bw, end - i0), sums, part, bias, bias + bw);
        }

        /// <summary>
        /// Columns [i0, i0+w) of dY (rows of dW), w ≤ bw: sums[j·bw + q] is dW[i0+q, j] and bias[q] is dB[i0+q]. As in
        /// <see cref="OuterProductBody"/>, each KC block of k is one chain from zero (<paramref name="part"/>) then added to
        /// the running value; the bias is one chain from dB's value over all k, as the column sums add row by row.
        /// </summary>
        private readonly void Block(int i0, int w, float* sums, float* part, float* bias, float* xBlock)
        {
            const int bw = OuterProductBlockRows;
            float* dy = DY, yv = Y, x = X, dw = DW;
            int m = M, n = N, k = K;
            BeginColumnBlock(dw, n, i0, w, Accumulate, sums);
            bool withBias = DB != null;
            if (withBias) new ReadOnlySpan<float>(DB + i0, w).CopyTo(new Span<float>(bias, w));
            int full = w / 16 * 16;
            for (int pc = 0; pc < k; pc += KC)
            {
                int pEnd = Math.Min(k, pc + KC);
                new Span<float>(part, NarrowLimit * bw).Clear(); // all 16 rows: the kernel loads the unused ones too
                // Rows of dY in blocks of a few, each block walked along its row (contiguous reads of dY and y) for all
                // the block's 16-column slices; a slice's running sums wait in part (L1) between blocks. Walking one
                // slice down the whole k block instead reads 64 bytes every 2 KiB of dY, which the narrow path does at
                // ~11 GB/s.
                for (int rb = pc; rb < pEnd; rb += ReluGradientRowBlock)
                {
                    int rows = Math.Min(ReluGradientRowBlock, pEnd - rb);
                    // The block's rows of X, each padded to 16 with its last value, so the inner loop's broadcasts
                    // are at fixed offsets (n variable offsets would take more registers than x64 has).
                    for (int r = 0; r < rows; r++)
                    {
                        float* src = x + (long)(rb + r) * n;
                        for (int j = 0; j < NarrowLimit; j++) xBlock[r * NarrowLimit + j] = src[Math.Min(j, n - 1)];
                    }
                    // The same slice of the next block's rows, asked for now: a block's rows are 8 short runs of each
                    // of dY and y, which the hardware prefetchers do not pick up. Batch 4096, 13 → 512, the pass 1.03–1.50
                    // → 0.52–0.76 ms with it (one block ahead; two or four blocks the same).
                    int nextRows = Sse.IsSupported ? Math.Min(ReluGradientRowBlock, k - (rb + ReluGradientRowBlock)) : 0;
                    for (int q = 0; q < full; q += 16)
                    {
                        for (int r = 0; r < nextRows; r++)
                        {
                            long e = (long)(rb + ReluGradientRowBlock + r) * m + i0 + q;
                            Sse.Prefetch0(dy + e);
                            Sse.Prefetch0(yv + e);
                        }
                        MaskedColumns16(dy + (long)rb * m + i0 + q, yv + (long)rb * m + i0 + q, m, xBlock, n, rows,
                            part + q, withBias ? bias + q : null);
                    }
                    for (int q = full; q < w; q++)
                        for (int r = rb; r < rb + rows; r++)
                        {
                            long e = (long)r * m + i0 + q;
                            float v = yv[e] > 0f ? dy[e] : 0f;
                            for (int j = 0; j < n; j++) part[j * bw + q] = MathF.FusedMultiplyAdd(v, x[(long)r * n + j], part[j * bw + q]);
                            if (withBias) bias[q] += v;
                        }
                }
                AddKBlock(part, sums, n, w, first: pc == 0 && !Accumulate);
            }
            EndColumnBlock(sums, dw, n, i0, w);
            if (withBias) new ReadOnlySpan<float>(bias, w).CopyTo(new Span<float>(DB + i0, w));
        }
    }

    /// <summary>
    /// For p &lt; <paramref name="steps"/>: v = dy[p·lda + 0..16) where y[p·lda + 0..16) &gt; 0, else 0;
    /// part[j·bw + 0..16) = fma(v, x[p·16 + j], part[j·bw + 0..16)) for j &lt; n ≤ 16 (x: rows padded to 16, so its
    /// columns past n repeat the last one and are not stored), and bias[0..16) += v when bias is not null.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void MaskedColumns16(float* dy, float* y, long lda, float* x, int n, int steps, float* part, float* bias)
    {
        const int bw = OuterProductBlockRows;
        var c0 = Vector512.Load(part); var c1 = Vector512.Load(part + 1 * bw); var c2 = Vector512.Load(part + 2 * bw);
        var c3 = Vector512.Load(part + 3 * bw); var c4 = Vector512.Load(part + 4 * bw); var c5 = Vector512.Load(part + 5 * bw);
        var c6 = Vector512.Load(part + 6 * bw); var c7 = Vector512.Load(part + 7 * bw); var c8 = Vector512.Load(part + 8 * bw);
        var c9 = Vector512.Load(part + 9 * bw); var c10 = Vector512.Load(part + 10 * bw); var c11 = Vector512.Load(part + 11 * bw);
        var c12 = Vector512.Load(part + 12 * bw); var c13 = Vector512.Load(part + 13 * bw); var c14 = Vector512.Load(part + 14 * bw);
        var c15 = Vector512.Load(part + 15 * bw);
        var b = bias == null ? Vector512<float>.Zero : Vector512.Load(bias);
        for (int p = 0; p < steps; p++, dy += lda, y += lda, x += NarrowLimit)
        {
            var v = Vector512.Load(dy) & Vector512.GreaterThan(Vector512.Load(y), Vector512<float>.Zero);
            b += v;
            c0 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[0]), c0);
            c1 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[1]), c1);
            c2 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[2]), c2);
            c3 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[3]), c3);
            c4 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[4]), c4);
            c5 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[5]), c5);
            c6 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[6]), c6);
            c7 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[7]), c7);
            c8 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[8]), c8);
            c9 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[9]), c9);
            c10 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[10]), c10);
            c11 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[11]), c11);
            c12 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[12]), c12);
            c13 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[13]), c13);
            c14 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[14]), c14);
            c15 = Vector512.FusedMultiplyAdd(v, Vector512.Create(x[15]), c15);
        }
        if (bias != null) b.Store(bias);
        c0.Store(part);
        if (n > 1) c1.Store(part + 1 * bw);
        if (n > 2) c2.Store(part + 2 * bw);
        if (n > 3) c3.Store(part + 3 * bw);
        if (n > 4) c4.Store(part + 4 * bw);
        if (n > 5) c5.Store(part + 5 * bw);
        if (n > 6) c6.Store(part + 6 * bw);
        if (n > 7) c7.Store(part + 7 * bw);
        if (n > 8) c8.Store(part + 8 * bw);
        if (n > 9) c9.Store(part + 9 * bw);
        if (n > 10) c10.Store(part + 10 * bw);
        if (n > 11) c11.Store(part + 11 * bw);
        if (n > 12) c12.Store(part + 12 * bw);
        if (n > 13) c13.Store(part + 13 * bw);
        if (n > 14) c14.Store(part + 14 * bw);
        if (n > 15) c15.Store(part + 15 * bw);
    }
}

using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Interaction;

/// <summary>
/// DLRM dot interaction. Per sample b the feature rows T = [x_b, e_b0 .. e_b(F-1)] ([F+1, D]) are
/// multiplied with each other, Z = T·Tᵀ, and the strict lower triangle (i &gt; j, row-major in i then
/// j: (1,0), (2,0), (2,1), (3,0), ...) is appended to the dense row:
/// <c>out[b] = concat(x_b, Z_b[1,0], Z_b[2,0], Z_b[2,1], ...)</c>, shape [B, D + (F+1)F/2].
/// Work is per sample: the F+1 rows are copied into one contiguous scratch block (27 x 64 floats =
/// 7 KB at DLRM sizes, so it stays in L1) and every dot product reads from there.
/// </summary>
public static unsafe partial class DotInteractionKernels
{
    /// <summary>Output width: D + (F+1)F/2.</summary>
    public static int OutputDim(int features, int dim) => dim + (features + 1) * features / 2;

    /// <summary>Forward: output [B, D + (F+1)F/2] from dense [B, D] and sparse [B, F, D].</summary>
    public static void Forward(ReadOnlySpan<float> dense, ReadOnlySpan<float> sparse, Span<float> output, int batch, int features, int dim)
    {
        Check(dense.Length, sparse.Length, output.Length, batch, features, dim, nameof(Forward), "output");
        if (batch == 0) return;
        fixed (float* pd = dense, ps = sparse, po = output)
        {
            var body = new WithScratch<ForwardBody> { Body = new() { Dense = pd, Sparse = ps, Output = po, Batch = batch, F = features, D = dim } };
            KernelParallelism.For(KernelParallelism.Chunks(batch, ForwardCostPerSample(features, dim)), ref body);
        }
    }

    /// <summary>
    /// Backward: dDense [B, D] += ∂/∂x and dSparse [B, F, D] += ∂/∂e from dOutput [B, D + (F+1)F/2].
    /// With G the symmetric [F+1, F+1] matrix holding dOutput's pair gradients in both triangles
    /// (zero diagonal), dT_i = Σ_j G_ij T_j; the dense row also gets the pass-through dOutput[b, 0..D).
    /// With <paramref name="accumulateDense"/> / <paramref name="accumulateSparse"/> false that gradient is overwritten
    /// (every element is written), so it need not be zeroed first: at batch 4096 dSparse is 27 MB, whose zero-fill and
    /// read-back were a third of this kernel's memory traffic.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dense, ReadOnlySpan<float> sparse, ReadOnlySpan<float> dOutput,
        Span<float> dDense, Span<float> dSparse, int batch, int features, int dim, bool accumulateDense = true, bool accumulateSparse = true)
    {
        Check(dense.Length, sparse.Length, dOutput.Length, batch, features, dim, nameof(Backward), nameof(dOutput));
        KernelGuard.AtLeast(dDense, (long)batch * dim, nameof(dDense), nameof(Backward));
        KernelGuard.AtLeast(dSparse, (long)batch * features * dim, nameof(dSparse), nameof(Backward));
        if (batch == 0) return;
        int n = features + 1;
        fixed (float* pd = dense, ps = sparse, pg = dOutput, pdd = dDense, pds = dSparse)
        {
            var body = new WithScratch<BackwardBody>
            {
                Body = new()
                {
                    Dense = pd, Sparse = ps, DOutput = pg, DDense = pdd, DSparse = pds, Batch = batch, F = features, D = dim,
                    AccumulateDense = accumulateDense, AccumulateSparse = accumulateSparse,
                },
            };
            KernelParallelism.For(KernelParallelism.Chunks(batch, (long)n * n * dim + dim), ref body);
        }
    }

    /// <summary>Multiply-adds of one sample's forward (half of T·Tᵀ, plus the dense copy), for chunking.</summary>
    private static long ForwardCostPerSample(int features, int dim) => (long)(features + 1) * (features + 1) * dim / 2 + dim;

    /// <summary>
    /// Scratch floats a forward chunk needs: T rows (dot-product forward), or Tᵀ padded to whole Vector512s plus one
    /// block of Z rows (blocked forward). The backward's: <see cref="BackwardScratchFloats"/>.
    /// </summary>
    private static int ScratchFloats(int n, int dim) => Math.Max(n * dim, (dim + RowBlock) * PadColumns(n));

    /// <summary>Columns of Tᵀ / Z: n rounded up to a whole number of Vector512s (zero padding).</summary>
    private static int PadColumns(int n) => (n + 15) & ~15;

    /// <summary>
    /// Rows of Z computed together in the blocked forward: 8 rows x 1 or 2 vectors = 8 or 16 accumulators, so that each
    /// FMA chain (one per accumulator, d long) has as many siblings as the two FMA pipes need to stay busy; a final block of
    /// at most 4 rows takes the 4-row kernels.
    /// </summary>
    private const int RowBlock = 8;

    /// <summary>
    /// How many samples ahead the forward prefetches a sample's rows into L2 (the next sample's then go on into L1).
    /// Alternating builds, 2 threads, inputs from DRAM: batch 4096 3.5–3.8 → 3.0–3.3 ms with the L2 prefetch, 2.8–2.9 ms
    /// with both (batch 256 0.32–0.33 → 0.28–0.29 ms). One sample ahead into L1 alone: no gain; two, four or eight
    /// ahead into L2: the same. The backward gained nothing from it while its product was slow, and does now (see RowsBlocked).
    /// </summary>
    private const int PrefetchAhead = 4;

    private struct ForwardBody : IScratchChunkBody
    {
        public float* Dense, Sparse, Output;
        public int Batch, F, D;

        public readonly int ScratchFloats => DotInteractionKernels.ScratchFloats(F + 1, D);

        public readonly void Run(int chunk, int chunks, float* scratch)
        {
            var (start, end) = KernelParallelism.Range(Batch, chunks, chunk);
            int f = F, d = D, width = OutputDim(F, D);
            SampleForward.PrepareScratch(f, d, scratch);
            var sample = new SampleForward(f, d, scratch);
            for (int b = start; b < end; b++)
            {
                float* x = Dense + (long)b * d;
                float* e = Sparse + (long)b * f * d;
                // A later sample's embeddings (6.5 KiB at F = 26, D = 64) were written by the embedding forward with
                // non-temporal stores (past 1 MiB): they come from DRAM. The transpose reads them eight rows at a time,
                // a pattern the hardware prefetchers do not follow, so ask for them a few samples ahead.
                if (b + PrefetchAhead < end)
                {
                    CachePrefetch.IntoL2(e + PrefetchAhead * f * d, f * d);
                    CachePrefetch.IntoL2(x + PrefetchAhead * d, d);
                }
                if (b + 1 < end)
                {
                    CachePrefetch.IntoL1(e + f * d, f * d);
                    CachePrefetch.IntoL1(x + d, d);
                }
                sample.Run(x, e, Output + (long)b * width);
            }
        }
    }

    /// <summary>
    /// The forward of one sample at a time, on one chunk's scratch: o = concat(x, strict lower triangle of T·Tᵀ) with
    /// T = [x, e_0 .. e_(F-1)]. Shared by <see cref="Forward"/> (e = the sample's rows of the [B, F, D] embeddings) and
    /// <see cref="ForwardFromTables"/> (e = the sample's bags, just pooled into L1).
    /// </summary>
    private readonly struct SampleForward
    {
        private readonly float* _scratch;
        private readonly int _f, _d;

        /// <param name="scratch"><see cref="ScratchFloats"/>(F + 1, D) floats, prepared once per chunk by <see cref="PrepareScratch"/>.</param>
        public SampleForward(int features, int dim, float* scratch)
        {
            _f = features;
            _d = dim;
            _scratch = scratch;
        }

        /// <summary>Clears the zero padding of Tᵀ, once per chunk: only the AVX-512 transpose writes columns past F + 1.</summary>
        public static void PrepareScratch(int features, int dim, float* scratch)
        {
            if (Vector512.IsHardwareAccelerated) new Span<float>(scratch, dim * PadColumns(features + 1)).Clear();
        }

        public void Run(float* x, float* e, float* o)
        {
            if (Vector512.IsHardwareAccelerated) Blocked(x, e, o); else Rows(x, e, o);
        }

        /// <summary>
        /// Z rows by broadcast-FMA over Tᵀ: Z[i, j..j+16) = Σ_k T[i, k]·Tᵀ[k, j..j+16), with no horizontal sums; only the
        /// column blocks that hold some j &lt; i are computed. Rows go eight at a time (8 or 16 accumulators), a last block
        /// of at most four rows four at a time. Every Z element is one FMA chain over k in order, except in a last block of one
        /// or two rows that needs more than 16 columns: there two chains (k below and from d/2) are added at the end.
        /// </summary>
        private void Blocked(float* x, float* e, float* o)
        {
            int n = _f + 1, d = _d, np = PadColumns(n);
            float* tt = _scratch;           // [D, np]
            float* zb = _scratch + d * np;  // [RowBlock, np]
            RowMath.Copy(x, o, d);
            TransposeT(x, e, tt);
            int i0 = 1, last = n - 1;
            // Blocks of eight rows while more than four remain (rows past the end repeat the last one; their results are
            // dropped).
            for (; n - i0 > 4; i0 += RowBlock)
            {
                int rows = Math.Min(RowBlock, n - i0);
                float* r0 = e + (i0 - 1) * d;
                var block = new RowPointers8(r0, d, rows);
                int cols = i0 + rows - 1; // largest j needed + 1
                // One kernel call for all the block's columns, eight real rows, and the last row's whole vectors inside
                // the sample's triangle: the rows go straight to the output (see StoreLowerRows for why the overhang is
                // safe), not through the scratch block. DLRM's rows 1–24: 523 → 483–491 ns a sample (one thread, in cache).
                int wide = cols > 16 ? 32 : 16;
                if (rows == RowBlock && cols <= 32 && WholeRowFits(i0 + RowBlock - 1, wide, last))
                {
                    var direct = RowPointers8.Triangle(o + d, i0);
                    if (wide == 32) Rows8Columns32(tt, np, d, in block, in direct);
                    else Rows8Columns16(tt, np, d, in block, in direct);
                    continue;
                }
                for (int c = 0; c < cols;)
                {
                    int width = cols - c;
                    float* tc = tt + c;
                    var z = new RowPointers8(zb + c, np, RowBlock);
                    // Up to 16 columns one Vector512 (a Vector256 for up to 8 measured the same: 3.00 against 3.02 ms for W8's
                    // lookups + interaction, windows interleaved), up to 32 two.
                    if (width > 16 && c + 32 <= np) { Rows8Columns32(tc, np, d, in block, in z); c += 32; }
                    else { Rows8Columns16(tc, np, d, in block, in z); c += 16; }
                }
                StoreLowerRows(zb, np, o + d, i0, rows, last);
            }
            for (; i0 < n; i0 += 4)
            {
                int rows = Math.Min(4, n - i0);
                // Row pointers into T; rows past the end repeat the last one (their results are dropped).
                float* r0 = e + (i0 - 1) * d;
                float* r1 = e + (i0 - 1 + Math.Min(1, rows - 1)) * d;
                float* r2 = e + (i0 - 1 + Math.Min(2, rows - 1)) * d;
                float* r3 = e + (i0 - 1 + Math.Min(3, rows - 1)) * d;
                int cols = i0 + rows - 1; // largest j needed + 1
                for (int c = 0; c < cols; c += 32)
                {
                    // The columns still needed decide the width: 32 as two Vector512s, 24 as a Vector512 and a
                    // Vector256, 16 as one Vector512, 8 as one Vector256 (chosen when a Vector256 FMA measured half the
                    // cost of a Vector512 one; the eight-row kernels measured them the same on a later host). The lanes
                    // hold the same sums whatever the width.
                    int width = cols - c;
                    float* tc = tt + c;
                    if (rows <= 2 && width > 16) Rows2Columns32(tc, np, d, r0, r1, zb + c, np);
                    else if (width > 24) Columns32(tc, np, d, r0, r1, r2, r3, zb + c, np);
                    else if (width > 16) Columns24(tc, np, d, r0, r1, r2, r3, zb + c, np);
                    else if (width > 8) Columns16(tc, np, d, r0, r1, r2, r3, zb + c, np);
                    else Columns8(tc, np, d, r0, r1, r2, r3, zb + c, np);
                }
                StoreLowerRows(zb, np, o + d, i0, rows, last);
            }
        }

        /// <summary>
        /// Tᵀ into the scratch's [D, np] block: tt[k·np + i] = T[i, k] for T = [x, e_0 .. e_(F-1)]. With AVX-512 and D a
        /// multiple of 16, 16×16 blocks through registers straight from the rows (x is row 0); the columns from F + 1 to np
        /// then repeat T's last row (finite values; the Z entries they give are never stored). DLRM's 27 × 64: 8 blocks.
        /// Before, the x column was copied element by element and e transposed in 8×8 blocks into columns 1.. (stores
        /// across cache lines) with a scalar loop for the rows past the last 8: 147 → 70 ns of a 685 ns sample (one thread,
        /// all in cache).
        /// </summary>
        private void TransposeT(float* x, float* e, float* tt)
        {
            int n = _f + 1, d = _d, np = PadColumns(n);
            if (Avx512F.IsSupported && d % 16 == 0)
            {
                float** rows = stackalloc float*[16];
                for (int r0 = 0; r0 < np; r0 += 16)
                {
                    for (int q = 0; q < 16; q++)
                    {
                        int row = Math.Min(r0 + q, n - 1);
                        rows[q] = row == 0 ? x : e + (long)(row - 1) * d;
                    }
                    for (int c = 0; c < d; c += 16) Transpose16.Block(new PointerRows(rows, c), tt + c * np + r0, np);
                }
                return;
            }
            for (int k = 0; k < d; k++) tt[k * np] = x[k];
            RowMath.Transpose(e, d, _f, d, tt + 1, np);
        }

        /// <summary>
        /// Whether <paramref name="width"/> floats stored from where row <paramref name="i"/> starts in the lower triangle
        /// (i·(i-1)/2) stay inside the sample's triangle, whose last row is <paramref name="last"/>: the rule for every
        /// whole-vector row store (the overhang past row i lands on rows stored after it).
        /// </summary>
        private static bool WholeRowFits(int i, int width, int last) => i * (i - 1) / 2 + width <= last * (last + 1) / 2;

        /// <summary>
        /// Writes rows i0 .. i0+rows-1 of a block of Z (row r at <c>zb + r·np</c>) to the output's lower triangle
        /// <paramref name="z"/>: row i's first i entries (Z[i, j], j &lt; i) at <c>i·(i-1)/2</c>. <paramref name="last"/> is
        /// the triangle's last row (F). Rows are whole Vector512 stores where their overhang stays inside the triangle, instead
        /// of 26 small copies per sample: W3's forward 1.80–1.83 → 1.77–1.80 ms (interleaved in one process), same bits.
        /// </summary>
        private static void StoreLowerRows(float* zb, int np, float* z, int i0, int rows, int last)
        {
            for (int r = 0; r < rows; r++)
            {
                int i = i0 + r;
                float* src = zb + r * np, dst = z + i * (i - 1) / 2;
                int whole = (i + 15) & ~15; // ≤ np: i < n ≤ np, a multiple of 16
                if (i < last && WholeRowFits(i, whole, last))
                {
                    // Whole vectors: what lands past row i's end is the start of the rows after it, which are written
                    // next (rows go in order, on this thread), and it stays inside this sample's triangle.
                    for (int c = 0; c < whole; c += 16) Vector512.Load(src + c).Store(dst + c);
                }
                else RowMath.Copy(src, dst, i);
            }
        }

        /// <summary>Eight row pointers into T for one block of Z rows; rows past the end repeat the last one.</summary>
        private readonly struct RowPointers8
        {
            public readonly float* R0, R1, R2, R3, R4, R5, R6, R7;

            public RowPointers8(float* first, int d, int rows)
            {
                R0 = first;
                R1 = first + Math.Min(1, rows - 1) * d; R2 = first + Math.Min(2, rows - 1) * d; R3 = first + Math.Min(3, rows - 1) * d;
                R4 = first + Math.Min(4, rows - 1) * d; R5 = first + Math.Min(5, rows - 1) * d; R6 = first + Math.Min(6, rows - 1) * d;
                R7 = first + Math.Min(7, rows - 1) * d;
            }

            private RowPointers8(float* r0, float* r1, float* r2, float* r3, float* r4, float* r5, float* r6, float* r7)
            {
                R0 = r0; R1 = r1; R2 = r2; R3 = r3; R4 = r4; R5 = r5; R6 = r6; R7 = r7;
            }

            /// <summary>Where rows i0 .. i0+7 of Z start in the output's lower triangle <paramref name="z"/> (row i at i·(i-1)/2).</summary>
            public static RowPointers8 Triangle(float* z, int i0)
            {
                static float* Row(float* z, int i) => z + i * (i - 1) / 2;
                return new(Row(z, i0), Row(z, i0 + 1), Row(z, i0 + 2), Row(z, i0 + 3), Row(z, i0 + 4), Row(z, i0 + 5), Row(z, i0 + 6), Row(z, i0 + 7));
            }
        }

        /// <summary>
        /// Z[r, c..c+16) for eight rows: eight Vector512 accumulators, each T value broadcast straight into its FMA. The
        /// four-row kernels below had four chains of d dependent FMAs at this width, which left the FMA pipes half idle.
        /// </summary>
        private static void Rows8Columns16(float* tc, int np, int d, in RowPointers8 rows, in RowPointers8 z)
        {
            // Locals, not the struct's fields: the stores through z would make the JIT reload every field each k step.
            float* q0 = rows.R0, q1 = rows.R1, q2 = rows.R2, q3 = rows.R3, q4 = rows.R4, q5 = rows.R5, q6 = rows.R6, q7 = rows.R7;
            Vector512<float> a0 = default;
            Vector512<float> a1 = default;
            Vector512<float> a2 = default;
            Vector512<float> a3 = default;
            Vector512<float> a4 = default;
            Vector512<float> a5 = default;
            Vector512<float> a6 = default;
            Vector512<float> a7 = default;
            for (int k = 0; k < d; k++, tc += np)
            {
                var v0 = Vector512.Load(tc);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[k]), v0, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[k]), v0, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[k]), v0, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[k]), v0, a3);
                a4 = Vector512.FusedMultiplyAdd(Vector512.Create(q4[k]), v0, a4);
                a5 = Vector512.FusedMultiplyAdd(Vector512.Create(q5[k]), v0, a5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.Create(q6[k]), v0, a6);
                a7 = Vector512.FusedMultiplyAdd(Vector512.Create(q7[k]), v0, a7);
            }
            // In row order: a row stored straight into the triangle overhangs into the rows after it.
            a0.Store(z.R0);
            a1.Store(z.R1);
            a2.Store(z.R2);
            a3.Store(z.R3);
            a4.Store(z.R4);
            a5.Store(z.R5);
            a6.Store(z.R6);
            a7.Store(z.R7);
        }

        /// <summary>Z[r, c..c+32) for eight rows: sixteen Vector512 accumulators.</summary>
        private static void Rows8Columns32(float* tc, int np, int d, in RowPointers8 rows, in RowPointers8 z)
        {
            // Locals, not the struct's fields: the stores through z would make the JIT reload every field each k step.
            float* q0 = rows.R0, q1 = rows.R1, q2 = rows.R2, q3 = rows.R3, q4 = rows.R4, q5 = rows.R5, q6 = rows.R6, q7 = rows.R7;
            Vector512<float> a00 = default, a01 = default;
            Vector512<float> a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default;
            Vector512<float> a30 = default, a31 = default;
            Vector512<float> a40 = default, a41 = default;
            Vector512<float> a50 = default, a51 = default;
            Vector512<float> a60 = default, a61 = default;
            Vector512<float> a70 = default, a71 = default;
            for (int k = 0; k < d; k++, tc += np)
            {
                var v0 = Vector512.Load(tc);
                var v1 = Vector512.Load(tc + 16);
                var w0 = Vector512.Create(q0[k]); a00 = Vector512.FusedMultiplyAdd(w0, v0, a00); a01 = Vector512.FusedMultiplyAdd(w0, v1, a01);
                var w1 = Vector512.Create(q1[k]); a10 = Vector512.FusedMultiplyAdd(w1, v0, a10); a11 = Vector512.FusedMultiplyAdd(w1, v1, a11);
                var w2 = Vector512.Create(q2[k]); a20 = Vector512.FusedMultiplyAdd(w2, v0, a20); a21 = Vector512.FusedMultiplyAdd(w2, v1, a21);
                var w3 = Vector512.Create(q3[k]); a30 = Vector512.FusedMultiplyAdd(w3, v0, a30); a31 = Vector512.FusedMultiplyAdd(w3, v1, a31);
                var w4 = Vector512.Create(q4[k]); a40 = Vector512.FusedMultiplyAdd(w4, v0, a40); a41 = Vector512.FusedMultiplyAdd(w4, v1, a41);
                var w5 = Vector512.Create(q5[k]); a50 = Vector512.FusedMultiplyAdd(w5, v0, a50); a51 = Vector512.FusedMultiplyAdd(w5, v1, a51);
                var w6 = Vector512.Create(q6[k]); a60 = Vector512.FusedMultiplyAdd(w6, v0, a60); a61 = Vector512.FusedMultiplyAdd(w6, v1, a61);
                var w7 = Vector512.Create(q7[k]); a70 = Vector512.FusedMultiplyAdd(w7, v0, a70); a71 = Vector512.FusedMultiplyAdd(w7, v1, a71);
            }
            // In row order, as above.
            a00.Store(z.R0); a01.Store(z.R0 + 16);
            a10.Store(z.R1); a11.Store(z.R1 + 16);
            a20.Store(z.R2); a21.Store(z.R2 + 16);
            a30.Store(z.R3); a31.Store(z.R3 + 16);
            a40.Store(z.R4); a41.Store(z.R4 + 16);
            a50.Store(z.R5); a51.Store(z.R5 + 16);
            a60.Store(z.R6); a61.Store(z.R6 + 16);
            a70.Store(z.R7); a71.Store(z.R7 + 16);
        }

        /// <summary>Z[r, c..c+32) for the four rows r0..r3: two Vector512 accumulators per row.</summary>
        private static void Columns32(float* tc, int np, int d, float* r0, float* r1, float* r2, float* r3, float* z, int ldz)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
            for (int k = 0; k < d; k++, tc += np)
            {
                var v0 = Vector512.Load(tc);
                var v1 = Vector512.Load(tc + 16);
                var w0 = Vector512.Create(r0[k]); var w1 = Vector512.Create(r1[k]);
                var w2 = Vector512.Create(r2[k]); var w3 = Vector512.Create(r3[k]);
                a00 = Vector512.FusedMultiplyAdd(w0, v0, a00); a01 = Vector512.FusedMultiplyAdd(w0, v1, a01);
                a10 = Vector512.FusedMultiplyAdd(w1, v0, a10); a11 = Vector512.FusedMultiplyAdd(w1, v1, a11);
                a20 = Vector512.FusedMultiplyAdd(w2, v0, a20); a21 = Vector512.FusedMultiplyAdd(w2, v1, a21);
                a30 = Vector512.FusedMultiplyAdd(w3, v0, a30); a31 = Vector512.FusedMultiplyAdd(w3, v1, a31);
            }
            a00.Store(z); a01.Store(z + 16);
            a10.Store(z + ldz); a11.Store(z + ldz + 16);
            a20.Store(z + 2 * ldz); a21.Store(z + 2 * ldz + 16);
            a30.Store(z + 3 * ldz); a31.Store(z + 3 * ldz + 16);
        }

        /// <summary>
        /// Z[r, c..c+32) for the two rows r0, r1 of a last block: the k range in two halves, each its own FMA chains, added
        /// at the end. Eight chains of d/2 FMAs instead of the four-row kernel's eight chains of d, two of them for rows past
        /// the end: DLRM's rows 25 and 26 in half the time (the whole sample 588 → 560 ns, one thread, all in cache).
        /// </summary>
        private static void Rows2Columns32(float* tc, int np, int d, float* r0, float* r1, float* z, int ldz)
        {
            int h = d / 2;
            float* tc2 = tc + h * np;
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> b00 = default, b01 = default, b10 = default, b11 = default;
            for (int k = 0; k < h; k++, tc += np, tc2 += np)
            {
                var v0 = Vector512.Load(tc);
                var v1 = Vector512.Load(tc + 16);
                var u0 = Vector512.Load(tc2);
                var u1 = Vector512.Load(tc2 + 16);
                var w0 = Vector512.Create(r0[k]); var w1 = Vector512.Create(r1[k]);
                var x0 = Vector512.Create(r0[k + h]); var x1 = Vector512.Create(r1[k + h]);
                a00 = Vector512.FusedMultiplyAdd(w0, v0, a00); a01 = Vector512.FusedMultiplyAdd(w0, v1, a01);
                a10 = Vector512.FusedMultiplyAdd(w1, v0, a10); a11 = Vector512.FusedMultiplyAdd(w1, v1, a11);
                b00 = Vector512.FusedMultiplyAdd(x0, u0, b00); b01 = Vector512.FusedMultiplyAdd(x0, u1, b01);
                b10 = Vector512.FusedMultiplyAdd(x1, u0, b10); b11 = Vector512.FusedMultiplyAdd(x1, u1, b11);
            }
            // Odd d: the last k joins the second half's chains.
            for (int k = 2 * h; k < d; k++, tc2 += np)
            {
                var u0 = Vector512.Load(tc2);
                var u1 = Vector512.Load(tc2 + 16);
                var x0 = Vector512.Create(r0[k]); var x1 = Vector512.Create(r1[k]);
                b00 = Vector512.FusedMultiplyAdd(x0, u0, b00); b01 = Vector512.FusedMultiplyAdd(x0, u1, b01);
                b10 = Vector512.FusedMultiplyAdd(x1, u0, b10); b11 = Vector512.FusedMultiplyAdd(x1, u1, b11);
            }
            (a00 + b00).Store(z); (a01 + b01).Store(z + 16);
            (a10 + b10).Store(z + ldz); (a11 + b11).Store(z + ldz + 16);
        }

        /// <summary>Z[r, c..c+24): a Vector512 and a Vector256 accumulator per row.</summary>
        private static void Columns24(float* tc, int np, int d, float* r0, float* r1, float* r2, float* r3, float* z, int ldz)
        {
            Vector512<float> a00 = default, a10 = default, a20 = default, a30 = default;
            Vector256<float> a01 = default, a11 = default, a21 = default, a31 = default;
            for (int k = 0; k < d; k++, tc += np)
            {
                var v0 = Vector512.Load(tc);
                var v1 = Vector256.Load(tc + 16);
                float s0 = r0[k], s1 = r1[k], s2 = r2[k], s3 = r3[k];
                a00 = Vector512.FusedMultiplyAdd(Vector512.Create(s0), v0, a00); a01 = Vector256.FusedMultiplyAdd(Vector256.Create(s0), v1, a01);
                a10 = Vector512.FusedMultiplyAdd(Vector512.Create(s1), v0, a10); a11 = Vector256.FusedMultiplyAdd(Vector256.Create(s1), v1, a11);
                a20 = Vector512.FusedMultiplyAdd(Vector512.Create(s2), v0, a20); a21 = Vector256.FusedMultiplyAdd(Vector256.Create(s2), v1, a21);
                a30 = Vector512.FusedMultiplyAdd(Vector512.Create(s3), v0, a30); a31 = Vector256.FusedMultiplyAdd(Vector256.Create(s3), v1, a31);
            }
            a00.Store(z); a01.Store(z + 16);
            a10.Store(z + ldz); a11.Store(z + ldz + 16);
            a20.Store(z + 2 * ldz); a21.Store(z + 2 * ldz + 16);
            a30.Store(z + 3 * ldz); a31.Store(z + 3 * ldz + 16);
        }

        /// <summary>Z[r, c..c+16): one Vector512 accumulator per row.</summary>
        private static void Columns16(float* tc, int np, int d, float* r0, float* r1, float* r2, float* r3, float* z, int ldz)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int k = 0; k < d; k++, tc += np)
            {
                var v0 = Vector512.Load(tc);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(r0[k]), v0, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(r1[k]), v0, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(r2[k]), v0, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(r3[k]), v0, a3);
            }
            a0.Store(z); a1.Store(z + ldz); a2.Store(z + 2 * ldz); a3.Store(z + 3 * ldz);
        }

        /// <summary>Z[r, c..c+8): one Vector256 accumulator per row.</summary>
        private static void Columns8(float* tc, int np, int d, float* r0, float* r1, float* r2, float* r3, float* z, int ldz)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int k = 0; k < d; k++, tc += np)
            {
                var v0 = Vector256.Load(tc);
                a0 = Vector256.FusedMultiplyAdd(Vector256.Create(r0[k]), v0, a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Create(r1[k]), v0, a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Create(r2[k]), v0, a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.Create(r3[k]), v0, a3);
            }
            a0.Store(z); a1.Store(z + ldz); a2.Store(z + 2 * ldz); a3.Store(z + 3 * ldz);
        }

        /// <summary>Without Vector512: T copied into one block, then one dot product per pair.</summary>
        private void Rows(float* x, float* e, float* o)
        {
            int n = _f + 1, d = _d;
            float* t = _scratch;
            RowMath.Copy(x, t, d);
            RowMath.Copy(e, t + d, _f * d);
            RowMath.Copy(x, o, d);
            float* z = o + d;
            for (int i = 1; i < n; i++)
            {
                float* ti = t + i * d;
                for (int j = 0; j < i; j++) *z++ = RowMath.Dot(ti, t + j * d, d);
            }
        }
    }

    private static void Check(int denseLen, int sparseLen, int outLen, int batch, int features, int dim, string op, string outName)
    {
        KernelGuard.NonNegative(batch, nameof(batch), op);
        KernelGuard.Positive(features, nameof(features), op);
        KernelGuard.Positive(dim, nameof(dim), op);
        if (denseLen < (long)batch * dim)
            throw new ArgumentException($"{op}: 'dense' needs {(long)batch * dim} elements ([{batch}, {dim}]), got {denseLen}.", "dense");
        if (sparseLen < (long)batch * features * dim)
            throw new ArgumentException($"{op}: 'sparse' needs {(long)batch * features * dim} elements ([{batch}, {features}, {dim}]), got {sparseLen}.", "sparse");
        long need = (long)batch * OutputDim(features, dim);
        if (outLen < need)
            throw new ArgumentException($"{op}: '{outName}' needs {need} elements ([{batch}, {OutputDim(features, dim)}]), got {outLen}.", outName);
    }
}

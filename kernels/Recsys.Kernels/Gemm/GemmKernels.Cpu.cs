using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Gemm;

/// <summary>
/// Single-precision GEMM in the three layouts an MLP's forward and backward need, row-major:
/// <list type="bullet">
/// <item><c>MatMul</c>   C[m,n] (+)= Σ_k A[m,k]·B[k,n]   (A·B)</item>
/// <item><c>MatMulTN</c> C[m,n] (+)= Σ_k A[k,m]·B[k,n]   (Aᵀ·B, A stored [k,m])</item>
/// <item><c>MatMulNT</c> C[m,n] (+)= Σ_k A[m,k]·B[n,k]   (A·Bᵀ, B stored [n,k])</item>
/// </list>
/// <c>accumulate</c> adds into C instead of overwriting it (backward's <c>+=</c> contract).
/// </summary>
/// <remarks>
/// One blocked driver serves all layouts: A and B are read through (row stride, column stride) pairs
/// and packed into contiguous panels (B: KC×NR column panels, A: MR×KC row panels), so the register-tiled
/// micro-kernel always streams unit-stride memory whatever the layout (a row-major A is read in place by
/// the AVX-512 kernel, its eight rows being eight sequential streams). When threads split rows they share
/// one packed copy of a large B (a small one each packs for itself). Loop order follows BLIS
/// (jc → pc → ic → jr → ir): a B micro-panel stays in L1 while A panels stream from L2.
/// The micro-kernel is chosen once per process: Vector512 8×32, Vector256 6×16, Vector128 6×8, scalar 4×4.
/// Threads split the output into disjoint row (or, for few rows, column) ranges — a thread mostly reads what it
/// wrote itself, which matters when the host makes core-to-core transfers slow — and every element is
/// summed in the same k order whatever the split, so results are bit-identical for any thread count.
/// </remarks>
public static partial class GemmKernels
{
    /// <summary>C[m,n] (+)= A[m,k]·B[k,n].</summary>
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate)
    {
        CheckShapes(a.Length, b.Length, c.Length, m, n, k, nameof(MatMul));
        Run(a, k, 1, b, n, 1, c, m, n, k, accumulate, default, Activation.None);
    }

    /// <summary>C[m,n] (+)= A[k,m]ᵀ·B[k,n] (weight gradient dW = dYᵀ·X).</summary>
    public static void MatMulTN(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate)
    {
        CheckShapes(a.Length, b.Length, c.Length, m, n, k, nameof(MatMulTN));
        Run(a, 1, m, b, n, 1, c, m, n, k, accumulate, default, Activation.None);
    }

    /// <summary>
    /// A Linear's parameter gradients from its output gradient dY [k, m] and input X [k, n]: dW[m,n] (+)= dYᵀ·X and
    /// dB[m] += Σ_p dY[p, m] (the bias gradient always accumulates). Either output may be empty (not needed). When the
    /// product packs dY (the blocked path) or reads it unpacked (the long-k path) the column sums of dY are taken from
    /// the values it reads anyway, instead of a second pass over dY; the small-shape paths leave them to a separate
    /// pass (<see cref="Reduce.ReduceKernels.ColumnSums"/>).
    /// </summary>
    public static void LinearWeightGradients(ReadOnlySpan<float> dY, ReadOnlySpan<float> x, Span<float> dW, Span<float> dB,
        int m, int n, int k, bool accumulate)
    {
        if (dW.IsEmpty)
        {
            if (!dB.IsEmpty) Reduce.ReduceKernels.ColumnSums(dY, dB, k, m, accumulate: true);
            return;
        }
        CheckShapes(dY.Length, x.Length, dW.Length, m, n, k, nameof(LinearWeightGradients));
        if (dB.IsEmpty)
        {
            Run(dY, 1, m, x, n, 1, dW, m, n, k, accumulate, default, Activation.None);
            return;
        }
        KernelGuard.AtLeast(dB, m, nameof(dB), nameof(LinearWeightGradients));
        if (!Run(dY, 1, m, x, n, 1, dW, m, n, k, accumulate, default, Activation.None, dB.Slice(0, m)))
            Reduce.ReduceKernels.ColumnSums(dY, dB, k, m, accumulate: true);
    }

    /// <summary>C[m,n] (+)= A[m,k]·B[n,k]ᵀ (linear forward with a PyTorch-layout [out, in] weight).</summary>
    public static void MatMulNT(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate)
    {
        CheckShapes(a.Length, b.Length, c.Length, m, n, k, nameof(MatMulNT));
        Run(a, k, 1, b, 1, k, c, m, n, k, accumulate, default, Activation.None);
    }

    /// <summary>
    /// Linear layer forward with fused epilogue: Y[m,n] = act(X[m,k]·W[n,k]ᵀ + bias[n]).
    /// W uses PyTorch's [out, in] layout. <paramref name="bias"/> may be empty (no bias).
    /// Bias and activation are applied to each register tile right after its last k block, while it is in L1.
    /// </summary>
    public static void LinearForward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y,
        int m, int n, int k, Activation activation)
    {
        CheckShapes(x.Length, w.Length, y.Length, m, n, k, nameof(LinearForward));
        if (!bias.IsEmpty) KernelGuard.AtLeast(bias, n, nameof(bias), nameof(LinearForward));
        if (activation is not (Activation.None or Activation.Relu or Activation.Sigmoid))
            throw new ArgumentOutOfRangeException(nameof(activation), activation, $"{nameof(LinearForward)}: unknown activation {activation}.");
        Run(x, k, 1, w, 1, k, y, m, n, k, accumulate: false, bias.IsEmpty ? default : bias.Slice(0, n), activation);
    }

    /// <summary>
    /// A Linear forward whose output feeds a residual product, DCNv2's cross layer: H[m,n] = X[m,k]·W[n,k]ᵀ + bias[n] and
    /// Y = S ⊙ H + R (S, R [m, n]; DCNv2 passes S = x0, R = x_l). Each thread's block of rows of H gets its Y right after
    /// its last k block, while it is in L2, instead of a second pass that reads H back from memory.
    /// The bits of <see cref="LinearForward"/> followed by <c>Y = FusedMultiplyAdd(S, H, R)</c> per element.
    /// <paramref name="bias"/> may be empty. S and R may be the same buffer; Y may not overlap H, S or R.
    /// </summary>
    public static unsafe void LinearForwardResidualProduct(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias,
        Span<float> hidden, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift, Span<float> output, int m, int n, int k)
    {
        const string op = nameof(LinearForwardResidualProduct);
        CheckShapes(x.Length, w.Length, hidden.Length, m, n, k, op);
        if (!bias.IsEmpty) KernelGuard.AtLeast(bias, n, nameof(bias), op);
        long size = (long)m * n;
        KernelGuard.AtLeast(scale, size, nameof(scale), op);
        KernelGuard.AtLeast(shift, size, nameof(shift), op);
        KernelGuard.AtLeast(output, size, nameof(output), op);
        if (size == 0) return;
        var y = output.Slice(0, (int)size);
        if (y.Overlaps(hidden.Slice(0, (int)size)) || y.Overlaps(scale.Slice(0, (int)size)) || y.Overlaps(shift.Slice(0, (int)size)))
            throw new ArgumentException($"{op}: 'output' shares memory with 'hidden', 'scale' or 'shift'; it must be a buffer of its own.", nameof(output));
        fixed (float* ps = scale, pr = shift, py = output)
        {
            var product = new ResidualProduct { Scale = ps, Shift = pr, Output = py };
            Run(x, k, 1, w, 1, k, hidden, m, n, k, accumulate: false, bias.IsEmpty ? default : bias.Slice(0, n), Activation.None,
                product: product);
        }
    }

    private static void CheckShapes(int aLen, int bLen, int cLen, int m, int n, int k, string op)
    {
        KernelGuard.NonNegative(m, nameof(m), op);
        KernelGuard.NonNegative(n, nameof(n), op);
        KernelGuard.NonNegative(k, nameof(k), op);
        if (aLen < (long)m * k) throw new ArgumentException($"{op}: 'a' needs {(long)m * k} elements (m={m} x k={k}), got {aLen}.", "a");
        if (bLen < (long)k * n) throw new ArgumentException($"{op}: 'b' needs {(long)k * n} elements (k={k} x n={n}), got {bLen}.", "b");
        if (cLen < (long)m * n) throw new ArgumentException($"{op}: 'c' needs {(long)m * n} elements (m={m} x n={n}), got {cLen}.", "c");
    }

    // ---- Blocking parameters -------------------------------------------------------------------

    /// <summary>
    /// k block. A KC×NR B micro-panel is 64 KiB at NR = 32, more than the 48 KiB L1, so it streams from L2 (sequentially,
    /// 128 bytes per 16 FMAs); in exchange every model layer here (k ≤ 512) is one k block, with no second pass over C.
    /// 512 against 256 (whose panel fits L1), alternating builds: W2 78.0–79.4 → 75.6–75.8 ms, W4 81.0–81.5 → 77.0–77.2
    /// ms, W8 batch 4096 +6–8 %.
    /// </summary>
    internal const int KC = 512;
    /// <summary>m block, a multiple of every MR: the MC×KC A block (288 KiB) stays in L2.</summary>
    internal const int MC = 144;
    /// <summary>n block, a multiple of every NR: the KC×NC packed B block (2 MiB) streams from L2/L3.</summary>
    internal const int NC = 1024;

    /// <summary>Up to this many rows of a row-major A, threads split C by columns (see <see cref="Run"/>).</summary>
    internal const int ColumnSplitMaxRows = 512;
    /// <summary>Up to this many elements of B, each thread of a row split packs B for itself instead of sharing one copy.</summary>
    internal const long PrivatePackMaxFloats = 512 * 1024;

    /// <summary>Which micro-kernel this process uses (fixed at start-up from the hardware the JIT reports).</summary>
    internal enum MicroKernel { Scalar4x4, V128x6x8, V256x6x16, V512x8x32 }

    internal static readonly MicroKernel Selected =
        Vector512.IsHardwareAccelerated ? MicroKernel.V512x8x32
        : Vector256.IsHardwareAccelerated ? MicroKernel.V256x6x16
        : Vector128.IsHardwareAccelerated ? MicroKernel.V128x6x8
        : MicroKernel.Scalar4x4;

    private static readonly int MR = Selected switch
    {
        MicroKernel.V512x8x32 => 8,
        MicroKernel.V256x6x16 => 6,
        MicroKernel.V128x6x8 => 6,
        _ => 4,
    };

    private static readonly int NR = Selected switch
    {
        MicroKernel.V512x8x32 => 32,
        MicroKernel.V256x6x16 => 16,
        MicroKernel.V128x6x8 => 8,
        _ => 4,
    };

    // ---- Driver ----------------------------------------------------------------------------------

    /// <summary>
    /// C (+)= op(A)·op(B) through (row stride, column stride) views, then the epilogue. <paramref name="aColumnSums"/>:
    /// empty, or (A stored transposed, ars = 1) [m] that also gets aColumnSums[i] += Σ_p A(i, p) from the A values the
    /// product reads anyway — the bias gradient of a weight gradient. Returns false when the path taken does not do
    /// those sums (the caller then takes them itself).
    /// </summary>
    private static unsafe bool Run(ReadOnlySpan<float> a, long ars, long acs, ReadOnlySpan<float> b, long brs, long bcs,
        Span<float> c, int m, int n, int k, bool accumulate, ReadOnlySpan<float> bias, Activation activation,
        Span<float> aColumnSums = default, ResidualProduct product = default)
    {
        if (m == 0 || n == 0) return false;
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        fixed (float* pbias = bias)
        fixed (float* psums = aColumnSums)
        {
            float* pBias = bias.IsEmpty ? null : pbias;
            float* pSums = aColumnSums.IsEmpty || ars != 1 || acs == 1 ? null : psums;
            if (bcs == 1 && m <= SkinnyLimit && activation == Activation.None && pBias == null && product.Output == null)
            {
                RunAxpys(pa, ars, acs, pb, pc, m, n, k, accumulate);
                return false;
            }
            if (k >= 1 && k <= ShortKLimit && m > SkinnyLimit && product.Output == null
                && RunShortK(pa, ars, acs, pb, brs, bcs, pc, m, n, k, accumulate, pBias, activation))
                return false;
            if (ars == 1 && acs == m && bcs == 1 && brs == n && n <= NarrowLimit && m >= NarrowLimit && activation == Activation.None && pBias == null
                && product.Output == null)
            {
                RunOuterProducts(pa, pb, pc, m, n, k, accumulate);
                return false;
            }
            if (bcs != 1 && acs == 1 && (m <= SkinnyLimit || n <= SkinnyLimit))
            {
                RunDots(pa, pb, pc, m, n, k, accumulate, pBias, activation);
                // Few rows or columns: the residual product (if any) as a pass of its own.
                if (product.Output != null) product.Apply(pc, n, 0, m, 0, n);
                return false;
            }
            bool hasEpilogue = pBias != null || activation != Activation.None || product.Output != null;
            if (UseLongKTransposed(ars, acs, bcs, m, n, k, hasEpilogue))
            {
                RunLongKTransposed(pa, acs, pb, brs, pc, m, n, k, accumulate, pSums);
                return pSums != null;
            }
            if (UseKSplitTransposed(ars, acs, brs, bcs, m, n, k, hasEpilogue))
            {
                RunKSplitTransposed(pa, pb, pc, m, n, k, accumulate, pSums);
                return pSums != null;
            }
            var body = new GemmBody
            {
                A = pa, Ars = ars, Acs = acs,
                B = pb, Brs = brs, Bcs = bcs,
                C = pc, M = m, N = n, K = k,
                Accumulate = accumulate,
                Bias = pBias,
                Activation = activation,
                ColumnSums = pSums,
                Product = product,
            };
            int mr = MR, nr = NR;
            int rowTiles = (m + mr - 1) / mr;
            int colTiles = (n + nr - 1) / nr;
            long flopsPerRowTile = (long)mr * n * Math.Max(k, 1);
            long flopsPerColTile = (long)nr * m * Math.Max(k, 1);
            // Splitting rows keeps each thread's C rows and A panels private; only when there are too few
            // row tiles to go round do threads split columns instead. ~1M multiply-adds per chunk pays for
            // waking a worker.
            const long minChunk = 1 << 20;
            int rowChunks = KernelParallelism.Chunks(rowTiles, flopsPerRowTile, minChunk);
            int colChunks = KernelParallelism.Chunks(colTiles, flopsPerColTile, minChunk);
            int threads = KernelParallelism.MaxThreads;
            if (acs == 1 && Selected == MicroKernel.V512x8x32 && m <= ColumnSplitMaxRows && colChunks > 1)
            {
                // Few rows of a row-major A (a small batch's forward and input gradient): A is read in place and shared
                // read-only, each thread packs only its own columns of B. A row split would have each thread read the
                // half of a shared packed B that the other core just wrote: when the host makes core-to-core transfers
                // slow (~300 ns round trips), batch 256's 256×512×415 forward ran at 161 GFLOP/s that way against
                // 222 split by columns (209 against 222 when transfers are fast).
                body.SplitRows = false;
                body.Tiles = colTiles;
                KernelParallelism.For(colChunks, ref body);
            }
            else if (rowChunks >= Math.Min(threads, rowTiles) && rowTiles >= threads)
            {
                body.SplitRows = true;
                body.Tiles = rowTiles;
                // A small B is packed by each thread for itself: cheaper than reading the half another core packed
                // (batch 256's weight gradient 512×415×256: 173 → 207 GFLOP/s with slow core-to-core transfers,
                // 206 → 212 with fast ones).
                if (rowChunks > 1 && (long)k * n > PrivatePackMaxFloats) RunWithSharedB(ref body, rowChunks, colTiles);
                else KernelParallelism.For(rowChunks, ref body);
            }
            else
            {
                if (colChunks > rowChunks)
                {
                    body.SplitRows = false;
                    body.Tiles = colTiles;
                    KernelParallelism.For(colChunks, ref body);
                }
                else
                {
                    body.SplitRows = true;
                    body.Tiles = rowTiles;
                    KernelParallelism.For(rowChunks, ref body);
                }
            }
            return pSums != null;
        }
    }

    /// <summary>
    /// Row-split run whose threads share one packed copy of all of B (packed in parallel first), instead of
    /// each thread packing all of B for itself: for the weight gradient (k = batch) that copy is a sizeable
    /// fraction of the work. The buffer is rented, so steady-state training allocates nothing here.
    /// </summary>
    private static unsafe void RunWithSharedB(ref GemmBody body, int rowChunks, int colTiles)
    {
        int nr = NR;
        long nPad = (long)colTiles * nr;
        long size = body.K * nPad + 16;
        if (size > Array.MaxLength / 2)
        {
            KernelParallelism.For(rowChunks, ref body);
            return;
        }
        float[] rented = System.Buffers.ArrayPool<float>.Shared.Rent((int)size);
        try
        {
            fixed (float* raw = rented)
            {
                float* shared = AlignToCacheLine(raw);
                int kBlocks = (body.K + KC - 1) / KC;
                var pack = new PackBBody
                {
                    B = body.B, Brs = body.Brs, Bcs = body.Bcs, K = body.K, N = body.N, NPad = nPad,
                    ColTiles = colTiles, Panels = kBlocks * colTiles, Dst = shared,
                };
                KernelParallelism.For(Math.Min(rowChunks, pack.Panels), ref pack);
                body.SharedB = shared;
                body.SharedBStride = nPad;
                KernelParallelism.For(rowChunks, ref body);
                body.SharedB = null;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>Packs a range of (k block, column panel) pairs of B into the shared layout Dst[pc·NPad + j·kc + p·NR + jj].</summary>
    private unsafe struct PackBBody : IChunkBody
    {
        public float* B, Dst;
        public long Brs, Bcs, NPad;
        public int K, N, ColTiles, Panels;

        public void Run(int chunk, int chunks)
        {
            int nr = NR;
            var (q0, q1) = KernelParallelism.Range(Panels, chunks, chunk);
            for (int q = q0; q < q1; q++)
            {
                int pc = q / ColTiles * KC, jr = q % ColTiles * nr;
                int kc = Math.Min(KC, K - pc);
                PackB(B, Brs, Bcs, pc, kc, jr, Math.Min(nr, N - jr), nr, Dst + pc * NPad + (long)jr * kc);
            }
        }
    }

    private unsafe struct GemmBody : IChunkBody
    {
        public float* A; public long Ars, Acs;
        public float* B; public long Brs, Bcs;
        public float* C;
        public int M, N, K;
        public bool Accumulate;
        public float* Bias;
        public Activation Activation;
        public bool SplitRows;
        public int Tiles;
        /// <summary>Null, or [M]: += the column sums of (transposed) A, taken while packing A (see <see cref="PackA"/>).</summary>
        public float* ColumnSums;
        /// <summary>Y = S ⊙ C + R for each block of rows after its last k block (see <see cref="LinearForwardResidualProduct"/>), or none.</summary>
        public ResidualProduct Product;
        /// <summary>All of B already packed (shared by every thread), or null to pack per thread.</summary>
        public float* SharedB;
        public long SharedBStride;

        public void Run(int chunk, int chunks)
        {
            var (t0, t1) = KernelParallelism.Range(Tiles, chunks, chunk);
            if (SplitRows)
                Block(in this, t0 * MR, Math.Min(M, t1 * MR), 0, N);
            else
                Block(in this, 0, M, t0 * NR, Math.Min(N, t1 * NR));
        }
    }

    [ThreadStatic] private static float[]? t_packA;
    [ThreadStatic] private static float[]? t_packB;

    /// <summary>A 64-byte aligned pointer into a pinned, per-thread buffer of at least <paramref name="floats"/>.</summary>
    private static unsafe float* PinnedBuffer(ref float[]? buffer, int floats)
    {
        if (buffer is null || buffer.Length < floats + 16)
            buffer = GC.AllocateUninitializedArray<float>(floats + 16, pinned: true);
        float* p = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
        return AlignToCacheLine(p);
    }

    /// <summary>The first 64-byte boundary at or after <paramref name="p"/> (callers leave 15 floats of slack).</summary>
    private static unsafe float* AlignToCacheLine(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    /// <summary>Computes rows [i0, i1) × columns [j0, j1) of C on the calling thread.</summary>
    private static unsafe void Block(in GemmBody g, int i0, int i1, int j0, int j1)
    {
        int mr = MR, nr = NR;
        int n = g.N, k = g.K;
        long ldc = n;
        bool epilogue = g.Bias != null || g.Activation != Activation.None;

        if (k == 0)
        {
            // Empty sum: C keeps its value (accumulate) or becomes 0, then the epilogue (act(bias)).
            for (int i = i0; i < i1; i++)
            {
                float* row = g.C + i * ldc + j0;
                if (!g.Accumulate) new Span<float>(row, j1 - j0).Clear();
                if (epilogue) Epilogue(row, j1 - j0, g.Bias == null ? null : g.Bias + j0, g.Activation);
            }
            if (g.Product.Output != null) g.Product.Apply(g.C, ldc, i0, i1, j0, j1);
            return;
        }

        float* packA = PinnedBuffer(ref t_packA, MC * KC);
        float* packB = g.SharedB != null ? null : PinnedBuffer(ref t_packB, KC * NC);
        float* tile = stackalloc float[8 * 32 + 16];
        tile = AlignToCacheLine(tile);
        var kernel = Selected;
        // Row-major A feeds the AVX-512 kernel directly; other layouts and kernels read packed panels.
        bool directA = g.Acs == 1 && kernel == MicroKernel.V512x8x32;

        for (int jc = j0; jc < j1; jc += NC)
        {
            int nc = Math.Min(NC, j1 - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                bool add = g.Accumulate || pc > 0;
                bool last = pc + kc == k;
                float* pbBlock;
                if (g.SharedB != null)
                {
                    pbBlock = g.SharedB + pc * g.SharedBStride + (long)jc * kc;
                }
                else
                {
                    PackB(g.B, g.Brs, g.Bcs, pc, kc, jc, nc, nr, packB);
                    pbBlock = packB;
                }
                for (int ic = i0; ic < i1; ic += MC)
                {
                    int mc = Math.Min(MC, i1 - ic);
                    // The first column block's pack of A also sums its columns (each A element is packed once per
                    // column block; only the chunk that owns column 0 sums, so no two threads add to the same sum).
                    if (!directA) PackA(g.A, g.Ars, g.Acs, ic, mc, pc, kc, mr, packA, jc == 0 ? g.ColumnSums : null);
                    for (int jr = 0; jr < nc; jr += nr)
                    {
                        int nrr = Math.Min(nr, nc - jr);
                        float* pbPanel = pbBlock + (long)jr * kc;
                        for (int ir = 0; ir < mc; ir += mr)
                        {
                            int mrr = Math.Min(mr, mc - ir);
                            float* paPanel = packA + (long)ir * kc;
                            float* cTile = g.C + (ic + ir) * ldc + jc + jr;
                            // A full 8×32 tile of row-major A (every Linear) applies bias and activation as it stores
                            // in the last k block.
                            bool fuse = last && epilogue && nrr == 32 && directA;
                            float* fBias = fuse && g.Bias != null ? g.Bias + jc + jr : null;
                            var fAct = fuse ? g.Activation : Activation.None;
                            if (directA)
                            {
                                if (mrr == mr)
                                {
                                    float* aRows = g.A + (ic + ir) * g.Ars + pc;
                                    if (nrr == nr)
                                    {
                                        Kernel8x32RowMajorA(kc, aRows, g.Ars, pbPanel, cTile, ldc, add, fBias, fAct);
                                        if (fuse) continue;
                                        goto Epilogue;
                                    }
                                    // Edge panel: at most 16 valid columns take the half-width kernel.
                                    if (nrr <= 16) Kernel8x16RowMajorA(kc, aRows, g.Ars, pbPanel, tile, nr);
                                    else Kernel8x32RowMajorA(kc, aRows, g.Ars, pbPanel, tile, nr, add: false, null, Activation.None);
                                    goto MergeTile;
                                }
                                // Last rows of the matrix: pack (and zero-pad) just this panel.
                                if (jr == 0) PackA(g.A, g.Ars, g.Acs, ic + ir, mrr, pc, kc, mr, paPanel, null);
                            }
                            if (mrr == mr && nrr == nr)
                            {
                                Micro(kernel, kc, paPanel, pbPanel, cTile, ldc, add);
                                goto Epilogue;
                            }
                            // Edge tile: compute the full padded tile into scratch (at most 16 valid columns of an 8×32
                            // tile: just its left half), then merge the valid part.
                            if (kernel == MicroKernel.V512x8x32 && nrr <= 16) Kernel8x16(kc, paPanel, pbPanel, tile, nr);
                            else Micro(kernel, kc, paPanel, pbPanel, tile, nr, add: false);
                        MergeTile:
                            {
                                for (int r = 0; r < mrr; r++)
                                {
                                    float* src = tile + r * nr;
                                    float* dst = cTile + r * ldc;
                                    if (add) for (int j = 0; j < nrr; j++) dst[j] += src[j];
                                    else for (int j = 0; j < nrr; j++) dst[j] = src[j];
                                }
                            }
                        Epilogue:
                            if (last && epilogue)
                            {
                                float* bias = g.Bias == null ? null : g.Bias + jc + jr;
                                for (int r = 0; r < mrr; r++) Epilogue(cTile + r * ldc, nrr, bias, g.Activation);
                            }
                        }
                    }
                    // The block's rows of C are final and still in L2: their residual product now, row by row (sequential
                    // streams of S and R), not in a pass of its own that reads C back from memory. Per tile instead, right
                    // after each (in L1), was slower: eight 128-byte pieces of rows far apart per tile, inside the GEMM.
                    // W4's three forwards, variants interleaved: per tile 13.2 against 12.4 ms for the separate pass; per
                    // block 12.7 / 13.0 against 12.9 / 13.3 in a second pair of runs.
                    if (last && g.Product.Output != null) g.Product.Apply(g.C, ldc, ic, ic + mc, jc, jc + nc);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Micro(MicroKernel kernel, int kc, float* a, float* b, float* c, long ldc, bool add)
    {
        switch (kernel)
        {
            case MicroKernel.V512x8x32: Kernel8x32(kc, a, b, c, ldc, add); break;
            case MicroKernel.V256x6x16: Kernel6x16(kc, a, b, c, ldc, add); break;
            case MicroKernel.V128x6x8: Kernel6x8(kc, a, b, c, ldc, add); break;
            default: Kernel4x4(kc, a, b, c, ldc, add); break;
        }
    }

    /// <summary>
    /// Packs B rows [p0, p0+kc) × columns [j0, j0+nc) into column panels of <paramref name="nr"/>:
    /// panel q holds dst[q·kc·nr + p·nr + j] = B(p0+p, j0+q·nr+j), zero-padded past nc.
    /// </summary>
    private static unsafe void PackB(float* b, long brs, long bcs, int p0, int kc, int j0, int nc, int nr, float* dst)
    {
        for (int jr = 0; jr < nc; jr += nr)
        {
            int w = Math.Min(nr, nc - jr);
            float* panel = dst + (long)jr * kc;
            if (bcs == 1 && w == 32 && nr == 32 && Vector512.IsHardwareAccelerated)
            {
                // Row-major B, full AVX-512 panel: two vector copies per row (a memmove call per 128-byte row cost
                // more than the copy when B's rows are not 64-byte aligned, e.g. the 415-wide top-MLP input).
                float* src = b + p0 * brs + j0 + jr;
                float* d = panel;
                for (int p = 0; p < kc; p++, src += brs, d += 32)
                {
                    Vector512.Load(src).Store(d);
                    Vector512.Load(src + 16).Store(d + 16);
                }
            }
            else if (bcs == 1)
            {
                // Row-major B: each panel row is a contiguous run.
                for (int p = 0; p < kc; p++)
                {
                    float* src = b + (p0 + p) * brs + j0 + jr;
                    float* d = panel + p * nr;
                    new ReadOnlySpan<float>(src, w).CopyTo(new Span<float>(d, w));
                    for (int j = w; j < nr; j++) d[j] = 0f;
                }
            }
            else if (brs == 1 && w == 32 && nr == 32 && kc >= 16 && Avx512F.IsSupported)
            {
                // B stored transposed ([n, k]: a Linear forward's [out, in] weight), full AVX-512 panel: 16×16 blocks
                // go through registers (16 row loads, a 16×16 transpose, 16 panel-row stores) instead of one scalar
                // load and store per element; the k tail (kc mod 16) takes the scalar loop.
                float* src = b + (long)(j0 + jr) * bcs + p0;
                int p = 0;
                for (; p + 16 <= kc; p += 16)
                {
                    Transpose16.Block(new StridedRows(src + p, bcs), panel + p * 32, 32);
                    Transpose16.Block(new StridedRows(src + 16 * bcs + p, bcs), panel + p * 32 + 16, 32);
                }
                for (; p < kc; p++)
                    for (int j = 0; j < 32; j++) panel[p * 32 + j] = src[j * bcs + p];
            }
            else
            {
                // B stored transposed ([n, k]): read each column contiguously, scatter with stride nr.
                for (int j = 0; j < w; j++)
                {
                    float* src = b + (j0 + jr + j) * bcs + p0 * brs;
                    float* d = panel + j;
                    for (int p = 0; p < kc; p++) d[p * nr] = src[p * brs];
                }
                for (int j = w; j < nr; j++)
                    for (int p = 0; p < kc; p++) panel[p * nr + j] = 0f;
            }
        }
    }

    /// <summary>
    /// Packs A rows [i0, i0+mc) × columns [p0, p0+kc) into row panels of <paramref name="mr"/>:
    /// panel q holds dst[q·mr·kc + p·mr + r] = A(i0+q·mr+r, p0+p), zero-padded past mc.
    /// </summary>
    /// <param name="sums">Null, or (A stored transposed, ars = 1) sums[i0 + r] += Σ over this k block of A(i0 + r, p),
    /// summed in p order from zero and then added: the same bits as the long-k path's column sums.</param>
    private static unsafe void PackA(float* a, long ars, long acs, int i0, int mc, int p0, int kc, int mr, float* dst, float* sums)
    {
        for (int ir = 0; ir < mc; ir += mr)
        {
            int h = Math.Min(mr, mc - ir);
            float* panel = dst + (long)ir * kc;
            if (ars == 1 && mr == 8 && mc - ir >= 16 && Vector512.IsHardwareAccelerated)
            {
                // A stored transposed, two full panels at once: each k step's 16 values are one 64-byte load, split into
                // the two panels. One panel at a time reads each line of A twice, half of it each time, and with A's
                // row stride a multiple of 2 KiB (dY of a 512-wide layer) the first read's line is evicted before the
                // second, since every row maps to the same few L1 sets. Weight gradients at batch 4096, alternated in one
                // process (medians of 12): 429 × 429 5.21 / 5.07 / 4.75 → 5.04 / 4.95 / 4.66 ms; the 512-wide shapes of W2
                // and W6 0–2 % faster. The same values in the same order: the same bits.
                float* src = a + p0 * acs + i0 + ir;
                float* d0 = panel, d1 = panel + 8L * kc;
                var s = Vector512<float>.Zero;
                for (int p = 0; p < kc; p++, src += acs, d0 += 8, d1 += 8)
                {
                    var v = Vector512.Load(src);
                    v.GetLower().Store(d0);
                    v.GetUpper().Store(d1);
                    s += v;
                }
                if (sums != null)
                {
                    (Vector256.Load(sums + i0 + ir) + s.GetLower()).Store(sums + i0 + ir);
                    (Vector256.Load(sums + i0 + ir + 8) + s.GetUpper()).Store(sums + i0 + ir + 8);
                }
                ir += mr; // the second panel is done too
            }
            else if (ars == 1 && h == 8 && mr == 8 && Vector256.IsHardwareAccelerated)
            {
                // A stored transposed ([k, m]), full AVX-512 panel: each k step's 8 values are one Vector256.
                // (The weight gradient's A is dYᵀ with k = batch: this copy runs once per k step of every panel.)
                float* src = a + p0 * acs + i0 + ir;
                float* d = panel;
                if (sums == null)
                {
                    for (int p = 0; p < kc; p++, src += acs, d += 8) Vector256.Load(src).Store(d);
                }
                else
                {
                    var s = Vector256<float>.Zero;
                    for (int p = 0; p < kc; p++, src += acs, d += 8)
                    {
                        var v = Vector256.Load(src);
                        v.Store(d);
                        s += v;
                    }
                    (Vector256.Load(sums + i0 + ir) + s).Store(sums + i0 + ir);
                }
            }
            else if (ars == 1)
            {
                // A stored transposed ([k, m]): each k step's mr values are contiguous.
                for (int p = 0; p < kc; p++)
                {
                    float* src = a + (p0 + p) * acs + i0 + ir;
                    float* d = panel + p * mr;
                    int r = 0;
                    for (; r < h; r++) d[r] = src[r];
                    for (; r < mr; r++) d[r] = 0f;
                }
                if (sums != null)
                    for (int r = 0; r < h; r++)
                    {
                        float s = 0f;
                        for (int p = 0; p < kc; p++) s += panel[p * mr + r];
                        sums[i0 + ir + r] += s;
                    }
            }
            else if (h == mr && acs == 1)
            {
                // Row-major A, full panel: walk k once with mr row pointers, so the writes are sequential
                // (a column-at-a-time scatter with stride mr was measurably slower).
                float* src = a + (i0 + ir) * ars + p0;
                float* d = panel;
                for (int p = 0; p < kc; p++, d += mr)
                    for (int r = 0; r < mr; r++) d[r] = src[r * ars + p];
            }
            else
            {
                for (int r = 0; r < h; r++)
                {
                    float* src = a + (i0 + ir + r) * ars + p0 * acs;
                    float* d = panel + r;
                    for (int p = 0; p < kc; p++) d[p * mr] = src[p * acs];
                }
                for (int r = h; r < mr; r++)
                    for (int p = 0; p < kc; p++) panel[p * mr + r] = 0f;
            }
        }
    }

    /// <summary>row[j] = act(row[j] + bias[j]) for j &lt; len; <paramref name="bias"/> may be null.</summary>
    private static unsafe void Epilogue(float* row, int len, float* bias, Activation activation)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; j + 16 <= len; j += 16)
            {
                var v = Vector512.Load(row + j);
                if (bias != null) v += Vector512.Load(bias + j);
                v = activation switch
                {
                    Activation.Relu => Vector512.Max(v, Vector512<float>.Zero),
                    Activation.Sigmoid => VectorMath.Sigmoid(v),
                    _ => v,
                };
                v.Store(row + j);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; j + 8 <= len; j += 8)
            {
                var v = Vector256.Load(row + j);
                if (bias != null) v += Vector256.Load(bias + j);
                v = activation switch
                {
                    Activation.Relu => Vector256.Max(v, Vector256<float>.Zero),
                    Activation.Sigmoid => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-v)),
                    _ => v,
                };
                v.Store(row + j);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; j + 4 <= len; j += 4)
            {
                var v = Vector128.Load(row + j);
                if (bias != null) v += Vector128.Load(bias + j);
                v = activation switch
                {
                    Activation.Relu => Vector128.Max(v, Vector128<float>.Zero),
                    Activation.Sigmoid => Vector128<float>.One / (Vector128<float>.One + Vector128.Exp(-v)),
                    _ => v,
                };
                v.Store(row + j);
            }
        }
        for (; j < len; j++)
        {
            float v = row[j];
            if (bias != null) v += bias[j];
            row[j] = activation switch
            {
                Activation.Relu => MathF.Max(v, 0f),
                Activation.Sigmoid => 1f / (1f + MathF.Exp(-v)),
                _ => v,
            };
        }
    }
}

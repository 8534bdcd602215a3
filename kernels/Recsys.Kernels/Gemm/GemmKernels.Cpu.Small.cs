using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;
using Recsys.Kernels.Interaction;

namespace Recsys.Kernels.Gemm;

// Skinny shapes (batch-1 inference, a one-logit output layer, its weight gradient) where packing would
// cost as much as the arithmetic: computed directly from the unpacked operands instead.
public static partial class GemmKernels
{
    /// <summary>At or below this many rows (or NT output columns) the direct paths beat packing.</summary>
    internal const int SkinnyLimit = 4;

    /// <summary>
    /// NT with few rows or few columns: every C[i,j] is one dot product of two contiguous rows,
    /// A[i,:] and B[j,:]. Threads split the longer of the two output dimensions, from 32k multiply-adds on: a batch-1
    /// forward reads every weight once for little arithmetic, so the split is about where the weights are. W8's 3 MB of
    /// weights do not fit one core's 2 MiB L2, but each core's contiguous half of each layer does, and the caller takes
    /// chunk 0 nearly every time, so a core meets the same half on the next inference. With the old threshold (256k)
    /// every layer ran on one core: W8 batch-1 latency 49.8–51.1 µs, against 31.1–36.5 at 32k (three order-rotated
    /// pairs); 8k was no better (31.2–39.3).
    /// </summary>
    private static unsafe void RunDots(float* a, float* b, float* c, int m, int n, int k, bool accumulate, float* bias, Activation activation)
    {
        var body = new DotBody { A = a, B = b, C = c, M = m, N = n, K = k, Accumulate = accumulate, Bias = bias, Activation = activation };
        body.SplitRows = m >= n;
        int items = body.SplitRows ? m : n;
        long cost = (long)(body.SplitRows ? n : m) * Math.Max(k, 1);
        int chunks = KernelParallelism.Chunks(items, cost, 1 << 15);
        KernelParallelism.For(chunks, ref body);
    }

    private unsafe struct DotBody : IChunkBody
    {
        public float* A, B, C, Bias;
        public int M, N, K;
        public bool Accumulate, SplitRows;
        public Activation Activation;

        public void Run(int chunk, int chunks)
        {
            int i0 = 0, i1 = M, j0 = 0, j1 = N;
            if (SplitRows) (i0, i1) = KernelParallelism.Range(M, chunks, chunk);
            else (j0, j1) = KernelParallelism.Range(N, chunks, chunk);
            bool epilogue = Bias != null || Activation != Activation.None;
            for (int i = i0; i < i1; i++)
            {
                float* ai = A + (long)i * K;
                float* ci = C + (long)i * N;
                for (int j = j0; j < j1; j++)
                {
                    float s = Dot(ai, B + (long)j * K, K);
                    ci[j] = Accumulate ? ci[j] + s : s;
                }
                if (epilogue) Epilogue(ci + j0, j1 - j0, Bias == null ? null : Bias + j0, Activation);
            }
        }
    }

    /// <summary>
    /// NN / TN with few rows: C[i,:] (+)= Σ_p A(i,p)·B[p,:], a sequence of row AXPYs over contiguous
    /// rows of B. Threads split the columns of C.
    /// </summary>
    private static unsafe void RunAxpys(float* a, long ars, long acs, float* b, float* c, int m, int n, int k, bool accumulate)
    {
        var body = new AxpyBody { A = a, Ars = ars, Acs = acs, B = b, C = c, M = m, N = n, K = k, Accumulate = accumulate };
        // Chunks of whole 64-byte lines so two threads never write the same cache line.
        int lines = (n + 15) / 16;
        body.Lines = lines;
        int chunks = KernelParallelism.Chunks(lines, 16L * m * Math.Max(k, 1), 1 << 18);
        KernelParallelism.For(chunks, ref body);
    }

    /// <summary>
    /// Rows of B ahead that <see cref="AxpyBody"/>'s one-row path asks for: each thread reads a 512-byte piece of every
    /// row, which the hardware prefetchers do not follow far enough on their own.
    /// </summary>
    private const int OneRowPrefetchRows = 8;

    private unsafe struct AxpyBody : IChunkBody
    {
        public float* A, B, C;
        public long Ars, Acs;
        public int M, N, K, Lines;
        public bool Accumulate;

        public void Run(int chunk, int chunks)
        {
            var (l0, l1) = KernelParallelism.Range(Lines, chunks, chunk);
            int j0 = l0 * 16, j1 = Math.Min(N, l1 * 16);
            int len = j1 - j0;
            if (M == 1 && Vector512.IsHardwareAccelerated)
            {
                OneRow(j0, len);
                return;
            }
            for (int i = 0; i < M; i++)
            {
                float* ci = C + (long)i * N + j0;
                if (!Accumulate) new Span<float>(ci, len).Clear();
                for (int p = 0; p < K; p++)
                    Axpy(A[i * Ars + p * Acs], B + (long)p * N + j0, ci, len);
            }
        }

        /// <summary>
        /// One row of C (a one-logit layer's weight gradient, dW[1, n] = dYᵀ·X over the batch), columns [j0, j0+len): 128
        /// columns at a time held in eight registers across all of k, instead of an axpy per k step that loads and stores
        /// C's row each time. Each element is the same FMA chain over p in order as the axpys: the same bits. Batch 4096,
        /// 256 → 1 (W2's and W6's output layer), X cycled from memory, medians of 30: 0.58–0.74 ms as axpys, 0.30–0.32
        /// in registers, 0.22–0.23 with the rows prefetched.
        /// </summary>
        private readonly void OneRow(int j0, int len)
        {
            float* a = A, c = C + j0;
            long acs = Acs, n = N;
            int k = K;
            int j = 0;
            for (; j + 128 <= len; j += 128)
            {
                float* b = B + j0 + j;
                Vector512<float> c0, c1, c2, c3, c4, c5, c6, c7;
                if (Accumulate)
                {
                    c0 = Vector512.Load(c + j); c1 = Vector512.Load(c + j + 16); c2 = Vector512.Load(c + j + 32); c3 = Vector512.Load(c + j + 48);
                    c4 = Vector512.Load(c + j + 64); c5 = Vector512.Load(c + j + 80); c6 = Vector512.Load(c + j + 96); c7 = Vector512.Load(c + j + 112);
                }
                else c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = Vector512<float>.Zero;
                for (int p = 0; p < k; p++, b += n)
                {
                    if (Sse.IsSupported && p + OneRowPrefetchRows < k)
                    {
                        float* f = b + OneRowPrefetchRows * n;
                        Sse.Prefetch0(f); Sse.Prefetch0(f + 16); Sse.Prefetch0(f + 32); Sse.Prefetch0(f + 48);
                        Sse.Prefetch0(f + 64); Sse.Prefetch0(f + 80); Sse.Prefetch0(f + 96); Sse.Prefetch0(f + 112);
                    }
                    var av = Vector512.Create(a[p * acs]);
                    c0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b), c0);
                    c1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 16), c1);
                    c2 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 32), c2);
                    c3 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 48), c3);
                    c4 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 64), c4);
                    c5 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 80), c5);
                    c6 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 96), c6);
                    c7 = Vector512.FusedMultiplyAdd(av, Vector512.Load(b + 112), c7);
                }
                c0.Store(c + j); c1.Store(c + j + 16); c2.Store(c + j + 32); c3.Store(c + j + 48);
                c4.Store(c + j + 64); c5.Store(c + j + 80); c6.Store(c + j + 96); c7.Store(c + j + 112);
            }
            for (; j + 16 <= len; j += 16)
            {
                float* b = B + j0 + j;
                var acc = Accumulate ? Vector512.Load(c + j) : Vector512<float>.Zero;
                for (int p = 0; p < k; p++, b += n) acc = Vector512.FusedMultiplyAdd(Vector512.Create(a[p * acs]), Vector512.Load(b), acc);
                acc.Store(c + j);
            }
            for (; j < len; j++)
            {
                float* b = B + j0 + j;
                float acc = Accumulate ? c[j] : 0f;
                for (int p = 0; p < k; p++, b += n) acc = MathF.FusedMultiplyAdd(a[p * acs], *b, acc);
                c[j] = acc;
            }
        }
    }

    /// <summary>At most this many k steps (and more than <see cref="SkinnyLimit"/> rows) send a product to <see cref="RunShortK"/>.</summary>
    internal const int ShortKLimit = 16;

    /// <summary>
    /// Largest B (k × n floats, 256 KiB) <see cref="RunShortK"/> takes: every row of C reads all of it, so it must stay in L2
    /// (a transposed B is also copied into [k, n] rows by each thread). Larger ones take the blocked path.
    /// </summary>
    internal const int ShortKMaxB = 64 * 1024;

    /// <summary>
    /// A product with a short k: C[i,:] (+)= Σ_{p&lt;k} A(i,p)·B[p,:], then bias and activation, row by row. The blocked path
    /// writes C in 8 × 32 tiles, so each row in 128-byte pieces far apart in time: the input gradient of a one-logit output
    /// layer (dX = dY·w, 4096 × 256 from k = 1 in W2 and W6) took ~0.55 ms for its 4 MB, and DLRM's first layer (13 dense
    /// features → 512, batch 4096) ~0.47 ms for 8 MB. Here each thread writes whole rows in order. A transposed B (a
    /// Linear's [out, in] weight) is first transposed into [k, n] rows by each thread. B may hold at most
    /// <see cref="ShortKMaxB"/> floats, with one of its strides 1; returns false otherwise, for the blocked path. Every
    /// element is the blocked path's FMA chain (from 0, p = 0..k-1, then + C when accumulating), and bias and activation
    /// take the steps of <see cref="Epilogue"/> (16 columns at a time, then its narrower tail) at the same columns: the
    /// same bits.
    /// </summary>
    private static unsafe bool RunShortK(float* a, long ars, long acs, float* b, long brs, long bcs, float* c, int m, int n, int k,
        bool accumulate, float* bias, Activation activation)
    {
        if ((long)k * n > ShortKMaxB || (bcs != 1 && brs != 1)) return false;
        var body = new ShortKBody
        {
            A = a, Ars = ars, Acs = acs, B = b, Brs = brs, Bcs = bcs, C = c, M = m, N = n, K = k, Accumulate = accumulate,
            Bias = bias, Activation = activation,
        };
        KernelParallelism.For(KernelParallelism.Chunks(m, (long)n * Math.Max(k, 4), 1 << 18), ref body);
        return true;
    }

    /// <remarks>
    /// Not <see cref="RowMath.WeightedRowSum"/>, which walks a row the same way: its scalar tail multiplies then adds (not
    /// the blocked path's fused multiply-add), and bias and activation would take a second pass over each row.
    /// </remarks>
    private unsafe struct ShortKBody : IChunkBody
    {
        public float* A, B, C, Bias;
        public long Ars, Acs, Brs, Bcs;
        public int M, N, K;
        public bool Accumulate;
        public Activation Activation;

        /// <summary>Stores 16 finished sums at column j as the blocked path's tiles do (<see cref="Store16"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void StoreShortK(float* c, Vector512<float> acc, int j) =>
            Store16(c, acc, Accumulate, Bias == null ? null : Bias + j, Activation);

        // Compiled fully optimized on first call, outside tiered PGO, and never inlined. Each call is one long loop per
        // thread: under the default runtime settings it reached tier 1 through on-stack replacement with a synthesized
        // profile, or inlined into the worker pool's PGO-compiled dispatch (Invoke<TBody>). That code ran DLRM's
        // 4096 × 13 → 512 forward in 0.8–2.4 ms, varying by process, against 0.25–0.31 ms: the first Linear of every W6
        // and W8 step, 0.9–1.2 ms in the step's profile against 0.36–0.44 now (and with DOTNET_TieredPGO=0).
        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        public readonly void Run(int chunk, int chunks)
        {
            var (i0, i1) = KernelParallelism.Range(M, chunks, chunk);
            int n = N, k = K;
            float* bt = B;
            long ldb = Brs;
            if (Bcs != 1)
            {
                // B stored [n, k] (Brs = 1): transposed into rows of n, this thread's own copy (k·n ≤ 64k floats). A plain
                // loop reading B in order: RowMath.Transpose takes its column-by-column scalar path for k not a multiple of 8,
                // and at 512 × 13 that measured slower (0.065–0.071 against 0.041–0.052 ms for the whole batch-256 forward).
                bt = PinnedBuffer(ref t_packB, k * n);
                for (int j = 0; j < n; j++)
                    for (int p = 0; p < k; p++) bt[(long)p * n + j] = B[j * Bcs + p];
                ldb = n;
            }
            bool epilogue = Bias != null || Activation != Activation.None;
            for (int i = i0; i < i1; i++)
            {
                float* ai = A + i * Ars, ci = C + (long)i * n;
                int j = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    // 64 columns at a time: one broadcast of A(i, p) feeds four FMAs.
                    for (; j + 64 <= n; j += 64)
                    {
                        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
                        float* bp = bt + j;
                        for (int p = 0; p < k; p++, bp += ldb)
                        {
                            var av = Vector512.Create(ai[p * Acs]);
                            acc0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp), acc0);
                            acc1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 16), acc1);
                            acc2 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 32), acc2);
                            acc3 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 48), acc3);
                        }
                        StoreShortK(ci + j, acc0, j);
                        StoreShortK(ci + j + 16, acc1, j + 16);
                        StoreShortK(ci + j + 32, acc2, j + 32);
                        StoreShortK(ci + j + 48, acc3, j + 48);
                    }
                    for (; j + 16 <= n; j += 16)
                    {
                        var acc = Vector512<float>.Zero;
                        for (int p = 0; p < k; p++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(ai[p * Acs]), Vector512.Load(bt + p * ldb + j), acc);
                        StoreShortK(ci + j, acc, j);
                    }
                }
                int tail = j;
                if (Vector256.IsHardwareAccelerated)
                    for (; j + 8 <= n; j += 8)
                    {
                        var acc = Vector256<float>.Zero;
                        for (int p = 0; p < k; p++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(ai[p * Acs]), Vector256.Load(bt + p * ldb + j), acc);
                        if (Accumulate) acc += Vector256.Load(ci + j);
                        acc.Store(ci + j);
                    }
                for (; j < n; j++)
                {
                    float acc = 0f;
                    for (int p = 0; p < k; p++) acc = MathF.FusedMultiplyAdd(ai[p * Acs], bt[p * ldb + j], acc);
                    ci[j] = Accumulate ? ci[j] + acc : acc;
                }
                // The columns past the last 16: bias and activation as the blocked path's Epilogue gives its edge tiles.
                if (epilogue && tail < n) Epilogue(ci + tail, n - tail, Bias == null ? null : Bias + tail, Activation);
            }
        }
    }

    /// <summary>At most this many output columns (and at least this many rows) send Aᵀ·B to <see cref="RunOuterProducts"/>.</summary>
    internal const int NarrowLimit = 16;

    /// <summary>
    /// Aᵀ·B with few output columns (A stored [k, m], B [k, n], n ≤ <see cref="NarrowLimit"/>): the weight gradient of a
    /// layer with a narrow input, e.g. DLRM's 13 dense features. Packed 8×32 tiles would compute 32 columns for n, and
    /// pack all of dY for it (batch 4096, 13 → 512: 1.2 ms, ~45 GFLOP/s). Here each thread owns a range of C's rows
    /// (A's columns); 16 of them times 4 of C's columns are summed in registers over a k block, reading A's rows in
    /// place (each 64-byte slice from memory once), and nothing is packed.
    /// Every element is the fused multiply-add chain over p in order from C (accumulate) or 0, like the packed path.
    /// </summary>
    private static unsafe void RunOuterProducts(float* a, float* b, float* c, int m, int n, int k, bool accumulate)
    {
        var body = new OuterProductBody { A = a, B = b, C = c, M = m, N = n, K = k, Accumulate = accumulate, Lines = (m + 15) / 16 };
        KernelParallelism.For(KernelParallelism.Chunks(body.Lines, 16L * n * Math.Max(k, 1), 1 << 18), ref body);
    }

    /// <summary>
    /// Rows of C (columns of A) one <see cref="OuterProductBody"/> block sums: every 16-row slice of a thread's rows is done
    /// for one k block before the next k block. Blocks of 64 rows instead (each walking all of k before the next block),
    /// 2 threads, dY cycled over four buffers: 512 × 13 from k = 4096 (DLRM's 13 dense features at batch 4096) 0.70–0.79 →
    /// 0.50–0.54 ms, the same at batch 256 0.15–0.16 → 0.032–0.034 ms, 512 × 4 0.55–0.62 → 0.30–0.35 ms, 64 × 13 unchanged.
    /// </summary>
    private const int OuterProductBlockRows = 256;

    /// <summary>
    /// Rows [start, end) of C (columns of A) that chunk <paramref name="chunk"/> of a narrow Aᵀ·B owns: whole 16-row lines
    /// of <paramref name="lines"/>, the last one cut at <paramref name="m"/>.
    /// </summary>
    private static (int Start, int End) NarrowRows(int lines, int m, int chunks, int chunk)
    {
        var (l0, l1) = KernelParallelism.Range(lines, chunks, chunk);
        return (l0 * 16, Math.Min(m, l1 * 16));
    }

    private unsafe struct OuterProductBody : IChunkBody
    {
        public float* A, B, C;
        public int M, N, K, Lines;
        public bool Accumulate;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = NarrowRows(Lines, M, chunks, chunk);
            const int bw = OuterProductBlockRows;
            float* buffer = stackalloc float[2 * NarrowLimit * bw + 16];
            float* sums = AlignToCacheLine(buffer), part = sums + NarrowLimit * bw;
            for (int i0 = start; i0 < end; i0 += bw)
                Block(i0, Math.Min(bw, end - i0), sums, part);
        }

        /// <summary>
        /// Rows [i0, i0+w) of C, w ≤ bw = <see cref="OuterProductBlockRows"/>: sums[j·bw + q] is C[i0+q, j]. As in the packed micro-kernel, each KC block of k is
        /// one chain from zero (<paramref name="part"/>) that is then added to the running value, so the bits are the same.
        /// </summary>
        private readonly void Block(int i0, int w, float* sums, float* part)
        {
            const int bw = OuterProductBlockRows;
            float* a = A, b = B, c = C;
            int m = M, n = N, k = K;
            BeginColumnBlock(c, n, i0, w, Accumulate, sums);
            int full = Vector512.IsHardwareAccelerated ? w / 16 * 16 : 0;
            for (int pc = 0; pc < k; pc += KC)
            {
                int pEnd = Math.Min(k, pc + KC);
                int q = 0;
                // 16 rows of C at a time (one Vector512 of A's row p) times all n ≤ 16 columns in registers: per k step one
                // load, n broadcasts, n FMAs, and each 64-byte slice of A is read once (the slices of a k block lie 4 KiB
                // apart or so, where revisiting them missed L1). Narrower outputs (n ≤ 4) keep 4 accumulators.
                for (; q < full; q += 16)
                {
                    float* row = a + (long)pc * m + i0 + q;
                    float* bp = b + (long)pc * n;
                    if (n <= 4) Columns4(row, m, bp, n, pEnd - pc, part + q, bw);
                    else Columns16(row, m, bp, n, pEnd - pc, part + q, bw);
                }
                for (; q < w; q++)
                    for (int j = 0; j < n; j++)
                    {
                        float acc = 0f;
                        for (int p = pc; p < pEnd; p++) acc = MathF.FusedMultiplyAdd(a[(long)p * m + i0 + q], b[(long)p * n + j], acc);
                        part[j * bw + q] = acc;
                    }
                AddKBlock(part, sums, n, w, first: pc == 0 && !Accumulate);
            }
            EndColumnBlock(sums, c, n, i0, w);
        }
    }

    // The running sums of a block of C's rows (columns of A) on the narrow paths, kept transposed in scratch: sums[j·bw + q]
    // is C[i0 + q, j], bw = OuterProductBlockRows. Each KC block of k is summed from zero into part, then added here, as
    // the packed micro-kernel adds its k blocks, so the two paths give the same bits.

    /// <summary>sums ← C's rows [i0, i0+w) (accumulate) or 0.</summary>
    private static unsafe void BeginColumnBlock(float* c, int n, int i0, int w, bool accumulate, float* sums)
    {
        const int bw = OuterProductBlockRows;
        for (int j = 0; j < n; j++)
            for (int q = 0; q < w; q++) sums[j * bw + q] = accumulate ? c[(long)(i0 + q) * n + j] : 0f;
    }

    /// <summary>sums ← part (the first k block with nothing to add to) or part + sums.</summary>
    private static unsafe void AddKBlock(float* part, float* sums, int n, int w, bool first)
    {
        const int bw = OuterProductBlockRows;
        for (int j = 0; j < n; j++)
            for (int r = 0; r < w; r++) sums[j * bw + r] = first ? part[j * bw + r] : part[j * bw + r] + sums[j * bw + r];
    }

    /// <summary>C's rows [i0, i0+w) ← sums.</summary>
    private static unsafe void EndColumnBlock(float* sums, float* c, int n, int i0, int w)
    {
        const int bw = OuterProductBlockRows;
        for (int q = 0; q < w; q++)
        {
            float* ci = c + (long)(i0 + q) * n;
            for (int j = 0; j < n; j++) ci[j] = sums[j * bw + q];
        }
    }

    /// <summary>
    /// part[j·ps + 0..16) = Σ over <paramref name="steps"/> rows p of row[p·lda + 0..16) · bp[p·n + j], j &lt; n ≤ 4, each a
    /// fused multiply-add chain from zero in p order. Columns past n repeat the last one (valid reads) and are not stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Columns4(float* row, long lda, float* bp, int n, int steps, float* part, long ps)
    {
        int o1 = Math.Min(1, n - 1), o2 = Math.Min(2, n - 1), o3 = Math.Min(3, n - 1);
        var c0 = Vector512<float>.Zero; var c1 = c0; var c2 = c0; var c3 = c0;
        for (int p = 0; p < steps; p++, row += lda, bp += n)
        {
            var v = Vector512.Load(row);
            c0 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[0]), c0);
            c1 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o1]), c1);
            c2 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o2]), c2);
            c3 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o3]), c3);
        }
        c0.Store(part);
        if (n > 1) c1.Store(part + ps);
        if (n > 2) c2.Store(part + 2 * ps);
        if (n > 3) c3.Store(part + 3 * ps);
    }

    /// <summary>As <see cref="Columns4"/> for 4 &lt; n ≤ 16: sixteen accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Columns16(float* row, long lda, float* bp, int n, int steps, float* part, long ps)
    {
        int l = n - 1;
        int o5 = Math.Min(5, l), o6 = Math.Min(6, l), o7 = Math.Min(7, l), o8 = Math.Min(8, l), o9 = Math.Min(9, l), o10 = Math.Min(10, l);
        int o11 = Math.Min(11, l), o12 = Math.Min(12, l), o13 = Math.Min(13, l), o14 = Math.Min(14, l), o15 = Math.Min(15, l);
        var c0 = Vector512<float>.Zero; var c1 = c0; var c2 = c0; var c3 = c0; var c4 = c0; var c5 = c0; var c6 = c0; var c7 = c0;
        var c8 = c0; var c9 = c0; var c10 = c0; var c11 = c0; var c12 = c0; var c13 = c0; var c14 = c0; var c15 = c0;
        for (int p = 0; p < steps; p++, row += lda, bp += n)
        {
            var v = Vector512.Load(row);
            c0 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[0]), c0);
            c1 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[1]), c1);
            c2 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[2]), c2);
            c3 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[3]), c3);
            c4 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[4]), c4);
            c5 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o5]), c5);
            c6 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o6]), c6);
            c7 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o7]), c7);
            c8 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o8]), c8);
            c9 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o9]), c9);
            c10 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o10]), c10);
            c11 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o11]), c11);
            c12 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o12]), c12);
            c13 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o13]), c13);
            c14 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o14]), c14);
            c15 = Vector512.FusedMultiplyAdd(v, Vector512.Create(bp[o15]), c15);
        }
        c0.Store(part); c1.Store(part + ps); c2.Store(part + 2 * ps); c3.Store(part + 3 * ps); c4.Store(part + 4 * ps);
        if (n > 5) c5.Store(part + 5 * ps);
        if (n > 6) c6.Store(part + 6 * ps);
        if (n > 7) c7.Store(part + 7 * ps);
        if (n > 8) c8.Store(part + 8 * ps);
        if (n > 9) c9.Store(part + 9 * ps);
        if (n > 10) c10.Store(part + 10 * ps);
        if (n > 11) c11.Store(part + 11 * ps);
        if (n > 12) c12.Store(part + 12 * ps);
        if (n > 13) c13.Store(part + 13 * ps);
        if (n > 14) c14.Store(part + 14 * ps);
        if (n > 15) c15.Store(part + 15 * ps);
    }

    /// <summary>Σ_p x[p]·y[p] with a fixed summation order for a given length.</summary>
    private static unsafe float Dot(float* x, float* y, int len)
    {
        int p = 0;
        float s = 0f;
        if (Vector512.IsHardwareAccelerated && len >= 16)
        {
            // Four independent FMA chains hide the FMA latency.
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; p + 64 <= len; p += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(y + p), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 16), Vector512.Load(y + p + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 32), Vector512.Load(y + p + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 48), Vector512.Load(y + p + 48), s3);
            }
            for (; p + 16 <= len; p += 16)
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(y + p), s0);
            s = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector256.IsHardwareAccelerated && len >= 8)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; p + 32 <= len; p += 32)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p), Vector256.Load(y + p), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 8), Vector256.Load(y + p + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 16), Vector256.Load(y + p + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 24), Vector256.Load(y + p + 24), s3);
            }
            for (; p + 8 <= len; p += 8)
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p), Vector256.Load(y + p), s0);
            s = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector128.IsHardwareAccelerated && len >= 4)
        {
            Vector128<float> s0 = default, s1 = default;
            for (; p + 8 <= len; p += 8)
            {
                s0 = Vector128.FusedMultiplyAdd(Vector128.Load(x + p), Vector128.Load(y + p), s0);
                s1 = Vector128.FusedMultiplyAdd(Vector128.Load(x + p + 4), Vector128.Load(y + p + 4), s1);
            }
            for (; p + 4 <= len; p += 4)
                s0 = Vector128.FusedMultiplyAdd(Vector128.Load(x + p), Vector128.Load(y + p), s0);
            s = Vector128.Sum(s0 + s1);
        }
        for (; p < len; p++) s = MathF.FusedMultiplyAdd(x[p], y[p], s);
        return s;
    }

    /// <summary>y[j] += alpha·x[j].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Axpy(float alpha, float* x, float* y, int len)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; j + 16 <= len; j += 16)
                Vector512.FusedMultiplyAdd(va, Vector512.Load(x + j), Vector512.Load(y + j)).Store(y + j);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; j + 8 <= len; j += 8)
                Vector256.FusedMultiplyAdd(va, Vector256.Load(x + j), Vector256.Load(y + j)).Store(y + j);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(alpha);
            for (; j + 4 <= len; j += 4)
                Vector128.FusedMultiplyAdd(va, Vector128.Load(x + j), Vector128.Load(y + j)).Store(y + j);
        }
        for (; j < len; j++) y[j] = MathF.FusedMultiplyAdd(alpha, x[j], y[j]);
    }
}

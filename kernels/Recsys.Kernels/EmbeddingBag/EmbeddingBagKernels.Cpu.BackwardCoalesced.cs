using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.EmbeddingBag;

public static unsafe partial class EmbeddingBagKernels
{
    // ------------------------------------------------------------------ backward fused with row-wise Adagrad or Adam: bucketed coalescing

    /// <summary>
    /// Backward fused with an optimizer whose update is not linear in the gradient (row-wise Adagrad, Adam): every
    /// touched row needs its whole gradient g_r = Σ_j c_j, c_j = s_b · w_j · dOutput[b], before its update.
    /// <para>
    /// Per table, the positions are first partitioned by row bucket (a one-pass counting sort on id / bucket rows,
    /// stable, so each bucket keeps position order). A bucket's rows are a contiguous block of the table small enough
    /// that their gradient rows, held densely, stay in L2 together with the table's dOutput rows, so the walk over a
    /// bucket's positions accumulates in cache; its touched rows are then updated while the block of table rows is
    /// being read anyway (a window of a few hundred KiB instead of random rows all over the table). The earlier path, a
    /// full radix sort by id and then one random dOutput row per position (kept for <see cref="SparseUpdateKind.Collect"/>,
    /// which promises ascending ids), was slower: W1 pooling 32 (26 × 100k × 64, batch 4096) fused training with
    /// row-wise Adagrad 139–192 → 93–96 ms, with Adam 165–173 → 139–148 ms (perf/RESULTS.md, run 10).
    /// </para>
    /// <para>
    /// Each row's contributions are summed in position order, starting from the first product, exactly as the sort path
    /// sums them, so gradients and updates have the same bits (tested). Work units are (table, row slice) as in
    /// <see cref="BackwardSgdScatter"/>: a row belongs to one unit, so results do not depend on the thread count.
    /// All ids are validated before any row changes.
    /// </para>
    /// </summary>
    private static void BackwardCoalesced(TablePtr* tables, int tableCount, int batch, int dim, int* idx, int* off, float* psw, bool mean,
        float* dOut, int stride, int offset, in SparseUpdate update, float adamStepSize, EmbeddingBagWorkspace ws)
    {
        long lookups = ValidateAllIds(tables, tableCount, batch, dim, idx, off, ws);
        if (lookups == 0) return;

        int maxRows = 0, maxLookups = 0;
        for (int f = 0; f < tableCount; f++)
        {
            maxRows = Math.Max(maxRows, tables[f].Rows);
            maxLookups = Math.Max(maxLookups, off[(f + 1) * batch] - off[f * batch]);
        }
        // One chunk per thread the work is worth; fewer tables than chunks: cut each table into row slices (every
        // slice's owner scans all of the table's ids, skipping other slices').
        int chunks = KernelParallelism.Chunks(lookups, 2 * dim + 16);
        int slices = (chunks + tableCount - 1) / tableCount;
        int sliceRows = (int)(((long)maxRows + slices - 1) / slices);
        int rowStride = EmbeddingBagWorkspace.RoundUp(dim);
        // Bucket rows: a power of two whose dense gradient rows take at most ~256 KiB.
        int bucketShift = Math.Clamp(31 - int.LeadingZeroCount(Math.Max(1, BucketGradientBytes / (rowStride * sizeof(float)))), 4, 16);
        ws.PrepareCoalesce(chunks, (sliceRows >> bucketShift) + 2, maxLookups, 1 << bucketShift, rowStride, batch);
        var body = new CoalescedBody
        {
            Tables = tables, Batch = batch, Dim = dim, Indices = idx, Offsets = off, Psw = psw, Mean = mean,
            DOut = dOut, Stride = stride, Offset = offset, Slices = slices, Units = tableCount * slices,
            Workspace = ws, RowStride = rowStride, BucketShift = bucketShift,
            Kind = update.Kind, Lr = update.LearningRate, Eps = update.Eps, Beta1 = update.Beta1, Beta2 = update.Beta2, StepSize = adamStepSize,
        };
        KernelParallelism.For(chunks, ref body);
    }

    /// <summary>Target size of one bucket's dense gradient rows: an eighth of the L2, beside the table's dOutput rows.</summary>
    private const int BucketGradientBytes = 256 << 10;

    /// <summary>Positions between the prefetch of a dOutput row and its use in the bucket walk.</summary>
    private const int BucketPrefetchDistance = 16;

    /// <summary>Units (table f, row slice s) of one chunk: partition the slice's positions by bucket, then coalesce and update bucket by bucket.</summary>
    private struct CoalescedBody : IChunkBody
    {
        public TablePtr* Tables;
        public int Batch, Dim, Stride, Offset, Slices, Units, RowStride, BucketShift;
        public int* Indices, Offsets;
        public float* Psw, DOut;
        public bool Mean;
        public EmbeddingBagWorkspace Workspace;
        public SparseUpdateKind Kind;
        public float Lr, Eps, Beta1, Beta2, StepSize;

        public readonly void Run(int chunk, int chunks)
        {
            var buffers = Workspace.Coalesce[chunk];
            var (start, end) = KernelParallelism.Range(Units, chunks, chunk);
            int batch = Batch, dim = Dim, stride = Stride;
            for (int u = start; u < end; u++)
            {
                int f = u / Slices, s = u - f * Slices;
                int rows = Tables[f].Rows;
                uint r0 = (uint)((long)rows * s / Slices), span = (uint)((long)rows * (s + 1) / Slices) - r0;
                int buckets = (int)((span + (1u << BucketShift) - 1) >> BucketShift);
                if (buckets == 0) continue; // an empty slice (a table with fewer rows than slices)
                int n = Partition(f, r0, span, buckets, buffers.BucketStart, buffers.Entries);
                if (n == 0) continue;
                // The table's dOutput rows (one per bag, an F·D stride apart) are gathered in bucket order. With several ids
                // per bag they are first copied into one contiguous block, which stays in L2: at a stride of F·D floats they
                // map to a fraction of the cache's sets and evict each other.
                float* dRows = DOut + Offset + (long)f * dim;
                long dStride = stride;
                int lookups = Offsets[(f + 1) * batch] - Offsets[f * batch];
                if (lookups >= 2 * batch)
                {
                    float* dst = buffers.DOutRows;
                    long rs = RowStride;
                    for (int b = 0; b < batch; b++) new ReadOnlySpan<float>(dRows + (long)b * stride, dim).CopyTo(new Span<float>(dst + b * rs, dim));
                    dRows = dst;
                    dStride = rs;
                }
                for (int k = 0; k < buckets; k++)
                {
                    int e0 = k == 0 ? 0 : buffers.BucketStart[k - 1], e1 = buffers.BucketStart[k];
                    if (e0 == e1) continue;
                    uint bucketRow0 = r0 + ((uint)k << BucketShift);
                    int touched = Coalesce(f, bucketRow0, buffers.Entries, e0, e1, n, dRows, dStride, buffers);
                    Update(f, bucketRow0, touched, buffers);
                }
            }
        }

        /// <summary>
        /// Stable counting sort of the positions of table f whose ids fall in [r0, r0+span) by bucket (id - r0) >> shift:
        /// entries[bucketStart[k-1] .. bucketStart[k]) are bucket k's (bag, position) pairs in position order.
        /// </summary>
        private readonly int Partition(int f, uint r0, uint span, int buckets, int* bucketStart, ulong* entries)
        {
            int batch = Batch, shift = BucketShift;
            int* idx = Indices, off = Offsets + f * batch;
            int p0 = off[0], p1 = off[batch];
            // Count bucket k into bucketStart[k+1]; the running sum then makes bucketStart[k] the start of bucket k, and
            // the scatter advances it to the end of bucket k (the layout Run reads).
            new Span<int>(bucketStart, buckets + 1).Clear();
            for (int p = p0; p < p1; p++)
            {
                uint r = (uint)idx[p] - r0;
                if (r < span) bucketStart[(int)(r >> shift) + 1]++;
            }
            for (int k = 1; k <= buckets; k++) bucketStart[k] += bucketStart[k - 1];
            for (int b = 0; b < batch; b++)
            {
                int q1 = off[b + 1];
                for (int p = off[b]; p < q1; p++)
                {
                    uint r = (uint)idx[p] - r0;
                    if (r < span) entries[bucketStart[(int)(r >> shift)]++] = ((ulong)(uint)b << 32) | (uint)p;
                }
            }
            return bucketStart[buckets - 1];
        }

        /// <summary>
        /// Dense gradient rows of one bucket (rows bucketRow0 + 0..2^shift) from entries [e0, e1) of the unit's n; returns
        /// the touched-row count. dOutput row of bag b: dRows + b·dStride.
        /// </summary>
        private readonly int Coalesce(int f, uint bucketRow0, ulong* entries, int e0, int e1, int n, float* dRows, long dStride,
            EmbeddingBagWorkspace.CoalesceBuffers buffers)
        {
            // Fields in locals: the row stores go through pointers, which would force a reload of every field.
            int batch = Batch, dim = Dim, rs = RowStride;
            int* idx = Indices, off = Offsets + f * batch;
            float* psw = Psw, grads = buffers.Gradients;
            bool mean = Mean, adam = Kind == SparseUpdateKind.Adam, row64 = dim == 64 && Vector512.IsHardwareAccelerated;
            TablePtr t = Tables[f];
            long ld = dim;
            int* mark = buffers.Marks, touchedRows = buffers.Touched;
            int stamp = buffers.NextStamp(), touched = 0;
            for (int i = e0; i < e1; i++)
            {
                // Ask for a later entry's dOutput row (across bucket ends: short buckets would otherwise start cold).
                if (i + BucketPrefetchDistance < n) PrefetchRow(dRows + (long)(entries[i + BucketPrefetchDistance] >> 32) * dStride, dim);
                ulong e = entries[i];
                int b = (int)(e >> 32), p = (int)(uint)e;
                int r = (int)((uint)idx[p] - bucketRow0);
                float bagScale = mean ? 1f / (off[b + 1] - off[b]) : 1f;
                float scale = psw == null ? bagScale : psw[p] * bagScale;
                float* d = dRows + b * dStride;
                float* g = grads + (long)r * rs;
                if (mark[r] == stamp)
                {
                    if (row64) AddScaled64(scale, d, g);
                    else Axpy(scale, d, g, dim);
                }
                else
                {
                    mark[r] = stamp;
                    touchedRows[touched++] = r;
                    if (row64) Scaled64(scale, d, g);
                    else Scale(scale, d, g, dim);
                    // First sighting: the row will be updated once this bucket is summed, so request it (and its state) now.
                    long row = (bucketRow0 + (uint)r) * ld;
                    PrefetchRow(t.Weight + row, dim);
                    if (adam) { PrefetchRow(t.State1 + row, dim); PrefetchRow(t.State2 + row, dim); }
                }
            }
            return touched;
        }

        /// <summary>Applies the update to the touched rows of one bucket (rows bucketRow0 + touchedRows[..touched]).</summary>
        private readonly void Update(int f, uint bucketRow0, int touched, EmbeddingBagWorkspace.CoalesceBuffers buffers)
        {
            TablePtr t = Tables[f];
            int dim = Dim, rs = RowStride;
            long ld = dim;
            var kind = Kind;
            float lr = Lr, eps = Eps, beta1 = Beta1, beta2 = Beta2, stepSize = StepSize;
            int* touchedRows = buffers.Touched;
            float* grads = buffers.Gradients;
            float* w = t.Weight + bucketRow0 * ld, s1 = t.State1, s2 = t.State2;
            if (kind == SparseUpdateKind.Adam) { s1 += bucketRow0 * ld; s2 += bucketRow0 * ld; }
            else s1 += bucketRow0;
            for (int u = 0; u < touched; u++)
            {
                int r = touchedRows[u];
                long row = r * ld;
                float* g = grads + (long)r * rs;
                if (kind == SparseUpdateKind.RowwiseAdagrad)
                {
                    float st = s1[r] + SumSquares(g, dim) / dim;
                    s1[r] = st;
                    Axpy(-lr / (MathF.Sqrt(st) + eps), g, w + row, dim);
                }
                else
                {
                    AdamRow(g, w + row, s1 + row, s2 + row, dim, beta1, beta2, stepSize, eps);
                }
            }
        }
    }
}

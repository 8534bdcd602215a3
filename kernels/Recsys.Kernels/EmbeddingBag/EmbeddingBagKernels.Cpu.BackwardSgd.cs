using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.EmbeddingBag;

public static unsafe partial class EmbeddingBagKernels
{
    // ------------------------------------------------------------------ backward fused with SGD: a direct scatter
    /// <summary>
    /// How many samples (or bags) ahead the SGD scatter asks for its dOutput rows. The rows are read in order, but the
    /// hardware prefetchers did not keep up with a stream of 3.3 KB runs (or single 256-byte rows) at a 6.6 KB stride
    /// interleaved with random row updates: W1 pooling 1, fused forward + backward, 12 alternating rounds of 60 steps,
    /// 5.19–5.22 → 3.78–3.85 ms (either walk direction; 1, 2 or 4 samples ahead the same); `bench --workloads W1`, three
    /// alternating pairs: pooling 1 4.88–5.69 → 3.63–3.91 ms, pooling 32 (one dOutput row per bag of 32) 54.7–57.1 → 52.0–52.8.
    /// The D = 64 short-bag loops (<see cref="SgdScatterBody.ScatterOneIdTables"/>,
    /// <see cref="SgdScatterBody.ScatterShortBagTable"/>), leaner than the loops this was measured with, run faster
    /// without it.
    /// </summary>
    private const int DOutputPrefetchSamples = 2;

    /// <summary>
    /// Bags at most this long on average take the short-bag scatter (<see cref="SgdScatterBody.ScatterSampleOrder"/>),
    /// longer ones the table loop with prefetches across bags (<see cref="SgdScatterBody.ScatterTable"/>). At D = 64 the
    /// short-bag scatter runs table by table in lean loops (one-id bags: <see cref="SgdScatterBody.ScatterOneIdTables"/>;
    /// others: <see cref="SgdScatterBody.ScatterShortBagTable"/>); at other widths it walks samples (all of a thread's
    /// tables for sample b, then b-1). History: when the forward pooled every bag length in table order, walking the
    /// backward in table order too measured faster on W1 (26 uniform tables, 2.43 → 2.13 ms a pooling-1 step) but slower
    /// on W6's DLRM step (EmbeddingBags backward 4.6 → 7.1–7.8 ms at batch 4096, 0.39–0.45 → 0.57–0.64 at 256, per-op
    /// profile), so short bags were walked by samples; those table-order loops read a table pointer and the bag offsets
    /// per row and prefetched the dOutput rows, and the lean ones measured faster in both places.
    /// </summary>
    private const int ShortBagLength = 4;

    /// <summary>
    /// How many bags ahead, divided by the tables a thread walks, the sample-order SGD backward prefetches a sample's rows.
    /// Measured when the forward also ran in sample order with this distance (W1 pooling 1, 26 tables, 13 per thread,
    /// `bench --workloads W1`, five interleaved runs each): the training step 3.89 / 3.79 / 3.77 ms at 32 / 16 / 64. The
    /// one-id table loop (<see cref="SgdScatterBody.ScatterOneIdTable"/>) prefetches its rows this many samples ahead.
    /// </summary>
    private const int SampleMajorPrefetchDistance = 64;

    /// <summary>
    /// Backward fused with plain SGD. SGD needs no coalesced gradient: w_r -= lr · Σ_j c_j equals applying each
    /// contribution c_j = s_b · w_j · dOutput[b] to row r in turn (up to float rounding), so no sort and no
    /// gathered dOutput rows are needed. Each table's bags are walked and every id's row is updated
    /// straight from its bag's dOutput row, which stays in L1 across the bag: the traffic is the forward's random
    /// row reads plus their write-back (W1 pooling 32: 3.4 M row updates against 1.9 M unique rows, but without
    /// the sort and the 3.4 M random dOutput gathers of the coalescing path).
    /// <para>
    /// Bags are walked from the last sample to the first (ids in position order within a bag): the forward read the
    /// last samples' rows last, so those are the ones still in L3 (32 MiB here) when the backward starts. Last-in,
    /// first-out reuse keeps part of them as hits, where walking in the forward's order would find every row evicted
    /// by the ones read after it. W1 pooling 1 (26 tables of 100k x 64, batch 4096, 27 MB of rows), forward + backward,
    /// 12 alternating rounds: 4.61 → 4.40 ms median. That was measured with a forward that also walked sample by
    /// sample, as its pooling-1 copies do again; longer bags are pooled table by table, so for them the rows still
    /// cached are mostly those of each thread's last tables.
    /// </para>
    /// <para>
    /// Determinism: a row is only ever updated by the one chunk that owns it, always in the walk's order. Work units are
    /// (table, row slice); with at least as many tables as threads a slice is the whole table, otherwise each
    /// table's rows are cut into slices and every slice's owner scans all of the table's ids, skipping those of
    /// other slices. The order of updates of any row is the same for every thread count, so results are bit
    /// identical run to run and across <see cref="KernelParallelism.MaxThreads"/>.
    /// </para>
    /// All ids are validated before any row changes (a bad id throws and updates nothing).
    /// </summary>
    private static void BackwardSgdScatter(TablePtr* tables, int tableCount, int batch, int dim, int* idx, int* off, float* psw, bool mean,
        float* dOut, int stride, int offset, float lr, EmbeddingBagWorkspace ws)
    {
        // One chunk per thread the work is worth; fewer tables than chunks: cut each table into row slices.
        long lookups = off[tableCount * batch] - off[0];
        int chunks = KernelParallelism.Chunks(lookups, dim + 8);
        if (tableCount == 1 && chunks > 1 && AtMostOneIdPerBag(off, batch))
        {
            // Checks its ids in its own first pass, each chunk those of its samples.
            BackwardSgdSampleSplit(tables, batch, dim, idx, off, psw, dOut, stride, offset, lr, chunks, ws);
            return;
        }
        ValidateAllIds(tables, tableCount, batch, dim, idx, off, ws);
        if (lookups == 0) return;
        int slices = (chunks + tableCount - 1) / tableCount;
        int units = tableCount * slices;
        var body = new SgdScatterBody
        {
            Tables = tables, Batch = batch, Dim = dim, Indices = idx, Offsets = off, Psw = psw, Mean = mean,
            DOut = dOut, Stride = stride, Offset = offset, NegLr = -lr, Slices = slices, Units = units,
            SampleOrder = slices == 1 && lookups <= (long)ShortBagLength * tableCount * batch,
        };
        KernelParallelism.For(chunks, ref body);
    }

    /// <summary>
    /// Checks every id of every table before a backward without a sort changes any row (those backwards validate up
    /// front, the sort validates as it goes); throws for the first bad position of the first table that has one.
    /// Returns the number of lookups.
    /// </summary>
    private static long ValidateAllIds(TablePtr* tables, int tableCount, int batch, int dim, int* idx, int* off, EmbeddingBagWorkspace ws)
    {
        ws.Prepare(tableCount, dim, 0);
        long lookups = off[tableCount * batch] - off[0];
        var check = new CheckIdsBody { Tables = tables, Batch = batch, Indices = idx, Offsets = off, Bad = Ptr(ws.BadPosition), TableCount = tableCount };
        KernelParallelism.For(KernelParallelism.Chunks(tableCount, Math.Max(1, lookups / Math.Max(1, tableCount))), ref check);
        for (int f = 0; f < tableCount; f++)
        {
            long bad = ws.BadPosition[f];
            if (bad != long.MaxValue)
                throw new EmbeddingIndexOutOfRangeException(f, (int)bad, idx[bad], tables[f].Rows);
        }
        return lookups;
    }

    /// <summary>First out-of-range position per table (long.MaxValue when all ids are valid).</summary>
    private struct CheckIdsBody : IChunkBody
    {
        public TablePtr* Tables;
        public int Batch, TableCount;
        public int* Indices, Offsets;
        public long* Bad;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(TableCount, chunks, chunk);
            for (int f = start; f < end; f++)
            {
                int bad = FirstOutOfRange(Indices, Offsets[f * Batch], Offsets[(f + 1) * Batch], (uint)Tables[f].Rows);
                Bad[f] = bad < 0 ? long.MaxValue : bad;
            }
        }
    }

    /// <summary>Units (table f, row slice s) of one chunk: every id of f in slice s gets w[id] += (-lr · s_b · w_j) · dOutput[b].</summary>
    private struct SgdScatterBody : IChunkBody
    {
        public TablePtr* Tables;
        public int Batch, Dim, Stride, Offset, Slices, Units;
        public int* Indices, Offsets;
        public float* Psw, DOut;
        public bool Mean, SampleOrder;
        public float NegLr;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(Units, chunks, chunk);
            if (SampleOrder) { ScatterSampleOrder(start, end); return; }
            for (int u = start; u < end; u++)
            {
                int f = u / Slices, s = u - f * Slices;
                int rows = Tables[f].Rows;
                uint r0 = (uint)((long)rows * s / Slices), span = (uint)((long)rows * (s + 1) / Slices) - r0;
                ScatterTable(f, r0, Slices == 1 ? uint.MaxValue : span);
            }
        }

        private readonly void ScatterTable(int f, uint r0, uint span)
        {
            // Fields in locals: the row updates store through pointers, which would force a reload of every field.
            int batch = Batch, dim = Dim, stride = Stride;
            int* idx = Indices, off = Offsets + f * batch;
            float* psw = Psw, w = Tables[f].Weight, dBase = DOut + Offset + (long)f * dim;
            bool mean = Mean, all = span == uint.MaxValue, row64 = dim == 64 && Vector512.IsHardwareAccelerated;
            float negLr = NegLr;
            long ld = dim;
            // Rows are prefetched about RowPrefetchDistance ids ahead in the walk: within a long bag (and on into the
            // previous one), or, for short bags, every id of the bag that many ids back in the walk.
            int meanLen = Math.Max(1, (off[batch] - off[0]) / Math.Max(1, batch));
            bool shortBags = meanLen < RowPrefetchDistance;
            int bagsAhead = Math.Max(1, RowPrefetchDistance / meanLen);
            for (int b = batch - 1; b >= 0; b--)
            {
                int p0 = off[b], p1 = off[b + 1];
                if (shortBags && b - bagsAhead >= 0)
                {
                    for (int pa = off[b - bagsAhead], paEnd = off[b - bagsAhead + 1]; pa < paEnd; pa++)
                    {
                        uint ida = (uint)idx[pa];
                        if (all || ida - r0 < span) PrefetchRow(w + ida * ld, dim);
                    }
                }
                if (p0 == p1) continue;
                // A one-id bag outside this chunk's row slice: nothing to do, and no need to read its dOutput row.
                if (!all && p1 - p0 == 1 && (uint)idx[p0] - r0 >= span) continue;
                float* g = dBase + (long)b * stride;
                if (b - DOutputPrefetchSamples >= 0) CachePrefetch.IntoL2(g - DOutputPrefetchSamples * (long)stride, dim);
                float a = mean ? negLr / (p1 - p0) : negLr;
                var g64 = row64 ? new Row64(g) : default;
                for (int p = p0; p < p1; p++)
                {
                    if (!shortBags)
                    {
                        // A hint only, it never faults; a previous bag shorter than the overshoot is skipped.
                        int pa = p + RowPrefetchDistance;
                        if (pa >= p1) pa = b > 0 && off[b - 1] + (pa - p1) < p0 ? off[b - 1] + (pa - p1) : -1;
                        if (pa >= 0)
                        {
                            uint ida = (uint)idx[pa];
                            if (all || ida - r0 < span) PrefetchRow(w + ida * ld, dim);
                        }
                    }
                    uint id = (uint)idx[p];
                    if (!all && id - r0 >= span) continue;
                    float scale = psw == null ? a : a * psw[p];
                    if (row64) g64.AxpyInto(scale, w + id * 64L);
                    else Axpy(scale, g, w + id * ld, dim);
                }
            }
        }

        /// <summary>
        /// <see cref="ScatterSampleOrder"/> when every bag of tables [f0, f1) holds one id, D = 64 and no per-id weights
        /// (pooling 1, every DLRM's case): table by table, each through <see cref="ScatterOneIdTable"/>. Bag (f, b)'s id is
        /// read straight from the ids, with no offsets, no empty-bag test and no scale per bag (the mean of one id is the
        /// id: the same −lr, the same bits); each row's updates still run from the last sample to the first, so the result
        /// is the same, bit for bit, as the sample walk this replaced.
        /// <para>
        /// History, W1 pooling 1 (26 tables of 100k × 64, batch 4096), fused forward + backward, the loops alternated in
        /// one process: reading the ids straight instead of through the offsets, 3.78 → 3.38 ms a step; the sample walk
        /// with each table's weights and ids in two small arrays, backward 3.41 / 3.35 → 2.85 / 2.76 ms; table by table in
        /// a loop with everything in locals and no dOutput prefetch, backward 2.34 / 2.53 / 2.81 → 1.87 / 1.98 / 2.24 ms
        /// (the sample walk with the table loop but the dOutput prefetch kept: 2.39 / 2.59 / 2.90; the sample walk without
        /// its dOutput prefetch: 2.24 / 2.35 / 2.56). Inside W6's step (`bench --workloads W6 --profile`, three alternated
        /// pairs) the EmbeddingBags backward went 4.51 / 4.63 / 4.20 → 3.36 / 3.27 / 3.24 ms at batch 4096 and
        /// 0.46 / 0.36 / 0.28 → 0.25 / 0.26 / 0.25 at batch 256.
        /// </para>
        /// </summary>
        private readonly void ScatterOneIdTables(int f0, int f1)
        {
            for (int f = f0; f < f1; f++) ScatterOneIdTable(f);
        }

        /// <summary>
        /// One table of <see cref="ScatterOneIdTables"/>: w[id[b]] += −lr · dOutput[b], from the last sample to the first,
        /// with the table's weights, ids and dOutput column in locals, each row prefetched
        /// <see cref="SampleMajorPrefetchDistance"/> samples ahead. The dOutput rows (256 bytes, F·256 bytes apart) are not
        /// prefetched: the hardware keeps up with that stride here, and the prefetches cost more than they saved (see
        /// above). A per-feature layout's one-table backwards (run a collection per thread) took 6.33–6.57 → 5.71–5.83 ms
        /// a W1 per-table step with this loop against the sample walk's arrays.
        /// </summary>
        private readonly void ScatterOneIdTable(int f)
        {
            int batch = Batch, stride = Stride;
            int* id = Indices + Offsets[f * batch]; // bag (f, b) holds the one id id[b]
            float* w = Tables[f].Weight, dOut = DOut + Offset + (long)f * 64;
            float negLr = NegLr;
            int b = batch - 1;
            for (; b - SampleMajorPrefetchDistance >= 0; b--)
            {
                PrefetchRow64(w, id[b - SampleMajorPrefetchDistance]);
                new Row64(dOut + (long)b * stride).AxpyInto(negLr, w + (nint)(uint)id[b] * 64);
            }
            for (; b >= 0; b--) new Row64(dOut + (long)b * stride).AxpyInto(negLr, w + (nint)(uint)id[b] * 64);
        }

        /// <summary>
        /// Short bags of one table at D = 64 (the <see cref="ScatterSampleOrder"/> case with several ids a bag): the bags
        /// from the last sample to the first, ids in position order, each bag's dOutput row held in registers across its
        /// ids, the rows of the bag <see cref="SampleMajorPrefetchDistance"/> ids back in the walk prefetched, and no
        /// dOutput prefetch. Each row gets the updates the sample walk gave it, in the same order, so the same bits. The
        /// sample walk it replaces read each table's pointer and each bag's offsets for every table of every sample and
        /// prefetched the sample's whole dOutput run; W1's shapes (26 tables of 100k × 64, batch 4096) with 2 and 3 ids
        /// a bag, training steps alternated with it in one process, median ratios of adjacent steps: 0.60 and 0.64
        /// (without only its dOutput prefetch: 0.94 and 0.95). The same loop in place of the long-bag one
        /// (<see cref="ScatterTable"/>) measured the same at 8 and 32 ids a bag (ratios 1.05, 1.00, 0.98).
        /// </summary>
        private readonly void ScatterShortBagTable(int f)
        {
            int batch = Batch, stride = Stride;
            int* idx = Indices, off = Offsets + (long)f * batch;
            float* w = Tables[f].Weight, dOut = DOut + Offset + (long)f * 64, psw = Psw;
            float negLr = NegLr;
            bool mean = Mean;
            int meanLen = Math.Max(1, (off[batch] - off[0]) / Math.Max(1, batch));
            int ahead = Math.Max(1, SampleMajorPrefetchDistance / meanLen); // bags
            for (int b = batch - 1; b >= 0; b--)
            {
                // A hint only: the ids read are this table's (all checked up front); a prefetch never faults.
                if (b - ahead >= 0)
                    for (int pa = off[b - ahead], pe = off[b - ahead + 1]; pa < pe; pa++) PrefetchRow64(w, idx[pa]);
                int p0 = off[b], p1 = off[b + 1];
                if (p0 == p1) continue;
                float a = mean ? negLr / (p1 - p0) : negLr;
                var g = new Row64(dOut + (long)b * stride);
                if (psw == null)
                    for (int p = p0; p < p1; p++) g.AxpyInto(a, w + (nint)(uint)idx[p] * 64);
                else
                    for (int p = p0; p < p1; p++) g.AxpyInto(a * psw[p], w + (nint)(uint)idx[p] * 64);
            }
        }

        /// <summary>
        /// Short bags, whole tables [f0, f1): sample by sample (bags (b, f0..f1), then b+1), as the forward pools them, so
        /// the dOutput rows of a chunk are read as one contiguous run per sample instead of one row per 4 KiB page
        /// (pooling 1, 26 tables: the table-by-table walk was ~1.5x slower). At D = 64 (with AVX-512) the bags go table by
        /// table instead, through the leaner loops of <see cref="ScatterOneIdTables"/> and <see cref="ScatterShortBagTable"/>;
        /// this walk is left to other widths.
        /// </summary>
        private readonly void ScatterSampleOrder(int f0, int f1)
        {
            if (Dim == 64 && Vector512.IsHardwareAccelerated)
            {
                if (Psw == null && OneIdBags(Offsets, f0 * Batch, f1 * Batch)) ScatterOneIdTables(f0, f1);
                else
                    for (int f = f0; f < f1; f++) ScatterShortBagTable(f);
                return;
            }
            TablePtr* tables = Tables;
            int batch = Batch, dim = Dim, stride = Stride, width = f1 - f0;
            int* idx = Indices, off = Offsets;
            float* psw = Psw, dOut = DOut + Offset;
            bool mean = Mean;
            float negLr = NegLr;
            long ld = dim;
            int indexEnd = off[f1 * batch];
            // Rows of a sample a fixed number of samples later in the walk (about SampleMajorPrefetchDistance ids).
            int ahead = Math.Max(1, SampleMajorPrefetchDistance / width);
            for (int b = batch - 1; b >= 0; b--)
            {
                float* g = dOut + (long)b * stride + (long)f0 * dim;
                if (b - ahead >= 0)
                {
                    // A hint only (see the forward's sample-order body): the id read stays inside this chunk's ids.
                    int ba = b - ahead;
                    for (int f = f0; f < f1; f++)
                    {
                        int pos = off[f * batch + ba];
                        if (pos < indexEnd) PrefetchRow(tables[f].Weight + (uint)idx[pos] * ld, dim);
                    }
                }
                // This chunk's run of dOutput a few samples on (see DOutputPrefetchSamples).
                if (b - DOutputPrefetchSamples >= 0) CachePrefetch.IntoL2(g - DOutputPrefetchSamples * (long)stride, (long)width * dim);
                for (int f = f0; f < f1; f++, g += dim)
                {
                    int bag = f * batch + b;
                    int p0 = off[bag], p1 = off[bag + 1];
                    if (p0 == p1) continue;
                    float a = mean ? negLr / (p1 - p0) : negLr;
                    float* w = tables[f].Weight;
                    for (int p = p0; p < p1; p++)
                        Axpy(psw == null ? a : a * psw[p], g, w + (uint)idx[p] * ld, dim);
                }
            }
        }
    }
}

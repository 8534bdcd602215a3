using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.EmbeddingBag;

/// <summary>
/// What consumes one sample's pooled bags [F, D] while they are in L1 (see
/// <see cref="EmbeddingBagKernels.ForwardTablesToConsumer{TConsumer}"/>).
/// </summary>
internal unsafe interface IPooledSampleConsumer
{
    /// <summary>Floats of scratch a chunk needs besides the pooled block.</summary>
    int ScratchFloats { get; }

    /// <summary>Work per sample, in the units of <see cref="KernelParallelism.Chunks"/> (multiply-adds).</summary>
    long CostPerSample { get; }

    /// <summary>Once per chunk, before its first sample.</summary>
    void BeginChunk(float* scratch);

    /// <summary>Sample <paramref name="sample"/>'s bags, pooled: bag of table f at <c>pooled[f·D ..+D]</c>.</summary>
    void Consume(int sample, float* pooled, float* scratch);
}

public static unsafe partial class EmbeddingBagKernels
{
    /// <summary>
    /// Samples ahead whose first rows (every table's) are prefetched (into L1, see <see cref="PrefetchRow"/>) while the
    /// current sample is pooled and consumed.
    /// </summary>
    private const int ConsumerSampleAhead = 2;

    /// <summary>
    /// The lookups of <see cref="ForwardTables"/> (same arguments, same pooled values), but each sample's F bags are
    /// pooled into a block that stays in L1 and handed to <paramref name="consumer"/> right away, instead of being written
    /// to a [B, F, D] output. For an op that only reads the embeddings once (inference through the dot interaction),
    /// this saves writing them out and reading them back: 2 x 27 MB per DLRM batch of 4096 x 26 x 64.
    /// Samples are split over threads in contiguous ranges; each sample is consumed exactly once, by one thread.
    /// </summary>
    /// <exception cref="EmbeddingIndexOutOfRangeException">An id is outside its table (the first such position is reported).</exception>
    internal static void ForwardTablesToConsumer<TConsumer>(ReadOnlySpan<float[]> weights, ReadOnlySpan<int> rows, int dim, int batchSize,
        ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets, ReadOnlySpan<float> perSampleWeights, PoolingMode mode,
        ReadOnlySpan<int> weightStarts, ref TConsumer consumer, string op)
        where TConsumer : struct, IPooledSampleConsumer
    {
        int tables = CheckTables(weights, rows, dim, batchSize, op, weightStarts);
        int bags = CheckCommon(dim, tables, indices, offsets, perSampleWeights, int.MaxValue, tables * dim, 0, op, "output", batchSize);
        if (bags == 0 || tables == 0) return;
        Span<GCHandle> handles = tables <= StackTables ? stackalloc GCHandle[StackTables] : new GCHandle[tables];
        Span<TablePtr> ptrs = tables <= StackTables ? stackalloc TablePtr[StackTables] : new TablePtr[tables];
        try
        {
            PinWeights(weights, rows, weightStarts, handles, ptrs);
            fixed (TablePtr* tp = ptrs)
            fixed (int* idx = indices)
            fixed (int* off = offsets)
            fixed (float* psw = perSampleWeights)
            {
                long lookups = off[bags] - off[0];
                long costPerSample = (long)dim * Math.Max(1, lookups / batchSize) + consumer.CostPerSample;
                int chunks = KernelParallelism.Chunks(batchSize, costPerSample);
                long* bad = stackalloc long[chunks];
                for (int c = 0; c < chunks; c++) bad[c] = long.MaxValue;
                var body = new WithScratch<ConsumerBody<TConsumer>>
                {
                    Body = new()
                    {
                        Consumer = consumer, Tables = tp, TableCount = tables, Batch = batchSize, Dim = dim, Indices = idx, Offsets = off,
                        Psw = perSampleWeights.IsEmpty ? null : psw, Mean = mode == PoolingMode.Mean, IndexEnd = off[bags], Bad = bad,
                    },
                };
                KernelParallelism.For(chunks, ref body);
                long first = long.MaxValue;
                for (int c = 0; c < chunks; c++) first = Math.Min(first, bad[c]);
                if (first != long.MaxValue) ThrowBadId(tp, tables, batchSize, off, idx, (int)first);
            }
        }
        finally
        {
            Unpin(handles);
        }
    }

    /// <summary>Whether every bag of samples [start, end) holds one id, in every table: offsets[f·B + b] = offsets[0] + f·B + b.</summary>
    private static bool OneIdSamples(int* offsets, int tables, int batch, int start, int end)
    {
        for (int f = 0; f < tables; f++)
            if (!OneIdBags(offsets, f * batch + start, f * batch + end) || offsets[f * batch + start] != offsets[0] + f * batch + start) return false;
        return true;
    }

    private struct ConsumerBody<TConsumer> : IScratchChunkBody where TConsumer : struct, IPooledSampleConsumer
    {
        public TConsumer Consumer;
        public TablePtr* Tables;
        public int TableCount, Batch, Dim, IndexEnd;
        public int* Indices, Offsets;
        public float* Psw;
        public bool Mean;
        public long* Bad;

        /// <summary>Floats of scratch for the one-id loop's two pointers per table, a whole number of cache lines.</summary>
        private readonly int LookupFloats => (4 * TableCount + 15) & ~15;

        public readonly int ScratchFloats => TableCount * Dim + LookupFloats + Consumer.ScratchFloats;

        /// <summary>
        /// Samples [start, end) when every bag holds one id and D = 64 (pooling 1, every DLRM's case): bag (f, b)'s id is
        /// <c>ids[f·batch + b]</c>. As in the [B, F, D] forward's row-copy loop (<see cref="CopyOneIdBags"/>), the ids are
        /// checked first, so the loop reads them straight, with no offsets and no branch per bag. W8's shape (4,096
        /// samples, 26 tables of 100k × 64, two threads), steps interleaved in one process: 3.19 → 2.85 ms and 3.89 → 3.75
        /// (medians of 13 and 16 windows); prefetching 1, 2 or 4 samples ahead timed the same. Each table's weights and ids
        /// are then put in two small arrays (<paramref name="lookups"/>: 2 × F pointers of the chunk's scratch) and each row's
        /// prefetch sits beside its copy, as in the forward's sample walk: 3.29 / 3.30 → 3.13 /
        /// 3.18 ms, 2.32 → 2.09 ms with 1,000-row tables in cache (alternated call by call in one process; same bits).
        /// Returns long.MaxValue, or the first position (ids[0] is at <paramref name="shift"/>) whose id is out of range:
        /// nothing is consumed then.
        /// </summary>
        private static long ConsumeOneIdSamples(TablePtr* tables, int tableCount, int batch, int* ids, int shift, int start, int end,
            float* pooled, void** lookups, float* rest, ref TConsumer consumer)
        {
            long bad = long.MaxValue;
            for (int f = 0; f < tableCount; f++)
            {
                int badBag = FirstOutOfRange(ids, f * batch + start, f * batch + end, (uint)tables[f].Rows);
                if (badBag >= 0) bad = Math.Min(bad, badBag + shift);
            }
            if (bad != long.MaxValue) return bad;
            float** w = (float**)lookups;
            int** id = (int**)(lookups + tableCount);
            FillTableLookups(tables, ids, batch, 0, tableCount, w, id);
            int b = start;
            for (; b + ConsumerSampleAhead < end; b++)
            {
                float* dst = pooled;
                for (int f = 0; f < tableCount; f++, dst += 64)
                {
                    int* t = id[f];
                    PrefetchRow64(w[f], t[b + ConsumerSampleAhead]);
                    CachedRowStore.Copy256(w[f] + (nint)(uint)t[b] * 64, dst);
                }
                consumer.Consume(b, pooled, rest);
            }
            for (; b < end; b++)
            {
                float* dst = pooled;
                for (int f = 0; f < tableCount; f++, dst += 64) CachedRowStore.Copy256(w[f] + (nint)(uint)id[f][b] * 64, dst);
                consumer.Consume(b, pooled, rest);
            }
            return long.MaxValue;
        }

        public readonly void Run(int chunk, int chunks, float* scratch)
        {
            // Locals, not fields, in the loop: stores through raw pointers would make the JIT reload fields after each one.
            TablePtr* tables = Tables;
            int tableCount = TableCount, batch = Batch, dim = Dim, indexEnd = IndexEnd;
            int* indices = Indices, offsets = Offsets;
            float* psw = Psw;
            bool mean = Mean, rowCopy = dim == 64 && psw == null && Vector512.IsHardwareAccelerated;
            var consumer = Consumer;
            float* pooled = scratch, lookups = scratch + tableCount * dim, rest = lookups + LookupFloats;
            consumer.BeginChunk(rest);
            long bad = long.MaxValue;
            var (start, end) = KernelParallelism.Range(batch, chunks, chunk);
            if (rowCopy && OneIdSamples(offsets, tableCount, batch, start, end))
            {
                Bad[chunk] = ConsumeOneIdSamples(tables, tableCount, batch, indices + offsets[0], offsets[0], start, end, pooled,
                    (void**)lookups, rest, ref consumer);
                return;
            }
            for (int b = start; b < end; b++)
            {
                int ahead = b + ConsumerSampleAhead;
                if (ahead < end)
                {
                    // Rows are random gathers from tables far larger than the caches: ask for a later sample's first row
                    // of every bag now (a hint only; only the read of the id must stay inside the indices).
                    for (int f = 0; f < tableCount; f++)
                    {
                        int pos = offsets[f * batch + ahead];
                        if (pos < indexEnd) PrefetchRow(tables[f].Weight + (uint)indices[pos] * (long)dim, dim);
                    }
                }
                bool ok = true;
                for (int f = 0; f < tableCount; f++)
                {
                    int bag = f * batch + b;
                    TablePtr* t = tables + f;
                    int badPos = PoolBagOrCopyRow(t, dim, indices, offsets[bag], offsets[bag + 1], psw, mean, rowCopy, nt: false, pooled + (long)f * dim);
                    if (badPos >= 0) { bad = Math.Min(bad, badPos); ok = false; }
                }
                // A sample with a bad id is not consumed: the call throws once every chunk is done.
                if (ok) consumer.Consume(b, pooled, rest);
            }
            Bad[chunk] = bad;
        }
    }
}

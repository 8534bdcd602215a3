using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.EmbeddingBag;

/// <summary>
/// Embedding bags on the CPU. For table f with weight W_f [rows, D] and bag (f, b) holding ids
/// <c>indices[offsets[f·B+b] .. offsets[f·B+b+1])</c>:
/// <code>
///   out[b, f, :] = s_b · Σ_j w_j · W_f[id_j, :]       s_b = 1 (Sum) or 1/len (Mean), w_j = 1 unless weighted
/// </code>
/// Backward is fused with the optimizer: the ids of each table are sorted (stable radix sort of
/// (id, position) pairs, so results never depend on thread timing), the contributions
/// <c>s_b · w_j · dOutput[b, f, :]</c> of each distinct id are summed in position order, and the update
/// is applied to that row only. Untouched rows and their optimizer state are never read or written.
/// Plain SGD needs no coalescing and skips the sort: each contribution is applied to its row directly
/// (see <c>BackwardSgdScatter</c>).
/// Offsets are absolute positions in <c>indices</c> (they may start above 0). Output and dOutput use a
/// strided layout: bag b of table f lives at <c>[b·stride + offset + f·D ..+D]</c>, so F tables write
/// straight into a [B, F, D] buffer (stride F·D, offset 0) or into a slice of a wider one.
/// </summary>
public static unsafe partial class EmbeddingBagKernels
{
    /// <summary>Raw pointers of one table for the parallel bodies (storage is pinned by the caller).</summary>
    internal struct TablePtr
    {
        public float* Weight;
        public float* State1;
        public float* State2;
        public int Rows;
    }

    private const int StackTables = 64;

    // ------------------------------------------------------------------ forward

    /// <summary>
    /// Pooled lookup of one table. <paramref name="weight"/> [rows, dim]; <paramref name="offsets"/> [bags+1];
    /// <paramref name="perSampleWeights"/> one per id or empty; bag b written at
    /// <c>output[b·outputStride + outputOffset ..+dim]</c>. An empty bag gives zeros.
    /// </summary>
    /// <exception cref="EmbeddingIndexOutOfRangeException">An id is &lt; 0 or &gt;= rows.</exception>
    public static void Forward(ReadOnlySpan<float> weight, int rows, int dim, ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets,
        ReadOnlySpan<float> perSampleWeights, PoolingMode mode, Span<float> output, int outputStride, int outputOffset)
    {
        const string op = "EmbeddingBag.Forward";
        KernelGuard.NonNegative(rows, nameof(rows), op);
        KernelGuard.AtLeast(weight, (long)rows * dim, nameof(weight), op);
        int bags = CheckCommon(dim, 1, indices, offsets, perSampleWeights, output.Length, outputStride, outputOffset, op, nameof(output));
        fixed (float* w = weight)
        fixed (int* idx = indices)
        fixed (int* off = offsets)
        fixed (float* psw = perSampleWeights)
        fixed (float* o = output)
        {
            var t = new TablePtr { Weight = w, Rows = rows };
            ForwardCore(&t, 1, bags, dim, idx, off, perSampleWeights.IsEmpty ? null : psw, mode, o, outputStride, outputOffset);
        }
    }

    /// <summary>
    /// Pooled lookups of F tables sharing <paramref name="dim"/>, in one parallel region split over
    /// (table, bag-range) chunks. <paramref name="weights"/>[f] is [rows[f], dim]; <paramref name="offsets"/>
    /// has F·batchSize+1 entries, feature-major (bag (f, b) at f·batchSize+b); bag (f, b) is written at
    /// <c>output[b·outputStride + outputOffset + f·dim ..+dim]</c> — stride F·dim, offset 0 gives [B, F, D].
    /// </summary>
    /// <param name="weightStarts">Optional: index of row 0 inside each weights array (lets callers start rows on a
    /// cache-line boundary); empty means 0 for every table.</param>
    /// <exception cref="EmbeddingIndexOutOfRangeException">An id is outside its table (the first such position is reported).</exception>
    public static void ForwardTables(ReadOnlySpan<float[]> weights, ReadOnlySpan<int> rows, int dim, int batchSize,
        ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets, ReadOnlySpan<float> perSampleWeights, PoolingMode mode,
        Span<float> output, int outputStride, int outputOffset, ReadOnlySpan<int> weightStarts = default)
    {
        const string op = "EmbeddingBag.ForwardTables";
        int tables = CheckTables(weights, rows, dim, batchSize, op, weightStarts);
        int bags = CheckCommon(dim, tables, indices, offsets, perSampleWeights, output.Length, outputStride, outputOffset, op, nameof(output), batchSize);
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
            fixed (float* o = output)
            {
                ForwardCore(tp, tables, batchSize, dim, idx, off, perSampleWeights.IsEmpty ? null : psw, mode, o, outputStride, outputOffset);
            }
        }
        finally
        {
            Unpin(handles);
        }
    }

    /// <summary>Pins each table's weight array and points <paramref name="ptrs"/>[f] at its row 0 (weightStarts[f] in).</summary>
    private static void PinWeights(ReadOnlySpan<float[]> weights, ReadOnlySpan<int> rows, ReadOnlySpan<int> weightStarts, Span<GCHandle> handles, Span<TablePtr> ptrs)
    {
        for (int f = 0; f < weights.Length; f++)
        {
            handles[f] = GCHandle.Alloc(weights[f], GCHandleType.Pinned);
            ptrs[f] = new TablePtr { Weight = (float*)handles[f].AddrOfPinnedObject() + (weightStarts.IsEmpty ? 0 : weightStarts[f]), Rows = rows[f] };
        }
    }

    /// <summary>Frees the handles <see cref="PinWeights"/> made (those it reached before a failure).</summary>
    private static void Unpin(Span<GCHandle> handles)
    {
        foreach (ref var h in handles)
            if (h.IsAllocated) h.Free();
    }

    private static void ForwardCore(TablePtr* tables, int tableCount, int batch, int dim, int* idx, int* off, float* psw,
        PoolingMode mode, float* output, int stride, int offset)
    {
        int items = tableCount * batch;
        if (items == 0) return;
        long lookups = off[items] - off[0];
        long costPerBag = (long)dim * Math.Max(1, lookups / items) + dim;
        int chunks = KernelParallelism.Chunks(items, costPerBag);
        long* bad = stackalloc long[chunks];
        for (int c = 0; c < chunks; c++) bad[c] = long.MaxValue;
        var body = new ForwardBody
        {
            Tables = tables, Batch = batch, Dim = dim, Indices = idx, Offsets = off, Psw = psw, Mean = mode == PoolingMode.Mean,
            Output = output, Stride = stride, Offset = offset, Items = items, Bad = bad, IndexEnd = off[items],
        };
        // Chunks are contiguous runs of table-major bags: with two chunks and an even table count each pools whole
        // tables, the same ones whose rows it updates in the fused-SGD backward (BackwardSgdScatter gives each chunk
        // whole tables), so no row it writes there was last read into the other core's caches.
        KernelParallelism.For(chunks, ref body);
        long first = long.MaxValue;
        for (int c = 0; c < chunks; c++) first = Math.Min(first, bad[c]);
        if (first != long.MaxValue) ThrowBadId(tables, tableCount, batch, off, idx, (int)first);
    }

    private static void ThrowBadId(TablePtr* tables, int tableCount, int batch, int* off, int* idx, int position)
    {
        // Find the table whose id range holds the position (offsets are monotone).
        int f = 0;
        while (f < tableCount - 1 && position >= off[(f + 1) * batch]) f++;
        throw new EmbeddingIndexOutOfRangeException(f, position, idx[position], tables[f].Rows);
    }

    /// <summary>
    /// Pools bags (f, b) of chunk <c>chunk</c> in table-major order: a table's bags, hence its ids, are consecutive, so the
    /// ids and offsets are read as two streams and the row prefetch runs ahead across bag boundaries. A chunk of one-id
    /// bags at D = 64 is copied by <see cref="CopyOneIdBags"/> instead, its whole tables sample by sample.
    /// <para>
    /// Short bags used to be pooled sample by sample (all of a thread's tables for sample b, then b+1) by this general
    /// loop, which writes the [B, F, D] output in longer runs but read the ids of every table as a stream of its own and
    /// prefetched only each bag's first row. Measured against it in one process, steps interleaved (W1, 26 tables of 100k
    /// x 64, batch 4096): pooling 1 forward 1.63 → 0.82 ms, pooling 1 forward + SGD backward 3.19 → 2.43 ms, pooling 3
    /// forward 19.1 → 6.5 ms. (The one-id copies, which prefetch every row, later measured faster sample by sample.)
    /// </para>
    /// </summary>
    private struct ForwardBody : IChunkBody
    {
        public TablePtr* Tables;
        public int Batch, Dim, Items, Stride, Offset, IndexEnd;
        public int* Indices, Offsets;
        public float* Psw, Output;
        public bool Mean;
        public long* Bad;

        public readonly void Run(int chunk, int chunks)
        {
            // Fields are copied to locals: the row stores go through raw pointers, which the JIT must assume may alias
            // this struct, so field reads inside the loop would be reloaded after every store.
            TablePtr* tables = Tables;
            int batch = Batch, dim = Dim, stride = Stride, offset = Offset, indexEnd = IndexEnd;
            int* indices = Indices, offsets = Offsets;
            float* psw = Psw, output = Output;
            bool mean = Mean, rowCopy = dim == 64 && psw == null && Vector512.IsHardwareAccelerated;
            bool pairs = rowCopy && Sse.IsSupported;
            // A large output bypasses the caches (non-temporal stores): it would not stay in them anyway, and a normal store
            // first reads each line it writes (W1 pooling 1, 27 MB of output: 0.95 → 0.82 ms in table order, 2.10 → 1.66
            // in the sample order before it). A small one is written normally: the next op reads it while it is cached.
            bool nt = rowCopy && Avx512F.IsSupported && ((nint)(output + offset) & 63) == 0 && stride % 16 == 0
                && (long)Batch * stride * sizeof(float) >= NonTemporalOutputBytes;
            var (start, end) = KernelParallelism.Range(Items, chunks, chunk);
            if (rowCopy && OneIdBags(offsets, start, end))
            {
                int shift = offsets[start] - start; // bag i's id is indices[i + shift]
                int bad = CopyOneIdBags(tables, batch, indices + shift, start, end, nt, output + offset, stride);
                if (bad >= 0) Bad[chunk] = bad + shift;
                if (nt) Sse.StoreFence();
                return;
            }
            int f = start / batch, b = start - f * batch;
            // Bags of one table are consecutive in the indices: row prefetches run ahead across bag boundaries up to
            // the end of this chunk's part of the table.
            int tableEnd = offsets[Math.Min((f + 1) * batch, end)];
            for (int i = start; i < end; i++)
            {
                TablePtr* t = tables + f;
                float* dst = output + (long)b * stride + offset + (long)f * dim;
                int p0 = offsets[i], p1 = offsets[i + 1];
                int badPos;
                if (rowCopy && p1 - p0 == 1)
                {
                    // Pooling 1 (every DLRM's case): the bag is its row. Ask for the row RowPrefetchDistance bags ahead.
                    if (p0 + RowPrefetchDistance < tableEnd) PrefetchRow64(t->Weight, indices[p0 + RowPrefetchDistance]);
                    badPos = CopyRow64(t, indices, p0, nt, dst);
                }
                else if (pairs && p1 - p0 >= 2 && i + 1 < end && b + 1 < batch && offsets[i + 2] - p1 >= 2)
                {
                    // This bag and the next (same table, this chunk) both have two ids or more: sum them together, then
                    // step over the second one here (it is not the table's last bag) and over the first one below.
                    int p2 = offsets[i + 2];
                    badPos = FirstOutOfRange(indices, p0, p2, (uint)t->Rows);
                    if (badPos < 0)
                        SumTwoBags64(t->Weight, indices, p0, p1, p2, tableEnd, mean ? 1f / (p1 - p0) : 1f, mean ? 1f / (p2 - p1) : 1f, mean, dst, dst + stride);
                    i++;
                    b++;
                }
                else
                {
                    // Rows are random gathers from tables far larger than the caches: also ask for the first row of a
                    // bag a few bags ahead, which covers short bags. A hint only: no check that the bag is non-empty or
                    // the id in range (a prefetch never faults); only the read of the id must stay inside the indices.
                    int ahead = i + BagPrefetchDistance;
                    if (ahead < end)
                    {
                        int pos = offsets[ahead];
                        if (pos < indexEnd) PrefetchRow(tables[ahead / batch].Weight + (uint)indices[pos] * (long)dim, dim);
                    }
                    badPos = PoolBag(t->Weight, t->Rows, dim, indices, p0, p1, tableEnd, psw, mean, dst);
                }
                if (badPos >= 0) { Bad[chunk] = badPos; break; }
                if (++b == batch) { b = 0; f++; tableEnd = offsets[Math.Min((f + 1) * batch, end)]; }
            }
            if (nt) Sse.StoreFence(); // non-temporal stores are weakly ordered: make them visible before the chunk reports done
        }
    }

    /// <summary>Whether every bag in [start, end) holds exactly one id: offsets[i] = offsets[start] + (i − start), 16 at a time.</summary>
    private static bool OneIdBags(int* offsets, int start, int end)
    {
        int shift = offsets[start] - start;
        int i = start;
        if (Vector512.IsHardwareAccelerated)
        {
            var expected = Vector512.Create(shift + start) + Vector512<int>.Indices;
            var step = Vector512.Create(16);
            for (; i + 16 <= end + 1; i += 16, expected += step)
                if (!Vector512.EqualsAll(Vector512.Load(offsets + i), expected)) return false;
        }
        for (; i <= end; i++)
            if (offsets[i] != shift + i) return false;
        return true;
    }

    /// <summary>
    /// Bags [start, end) of a chunk (table-major positions) when every one holds one id and D = 64 (pooling 1, every
    /// DLRM's case): bag i = (f, b) is row <c>ids[i]</c> of table f, copied to <c>output[b·stride + f·64 ..+64]</c>. The ids
    /// are checked first, a table's part at a time and 16 per compare, so the copy loops have no branch but their own and
    /// read neither offsets nor bounds. The general loop (offsets read per bag, the id checked next to its copy, the
    /// prefetch stopped at the table's end) ran the same copies ~30 % slower: W1 pooling 1, 26 tables of 100k × 64, batch
    /// 4096, two threads, steps interleaved in one process, medians of 18–30 windows: 1.86 / 2.19 → 1.31 / 1.42 ms (lab
    /// loops with only the id check or only the offsets read put back: 2.08 and 2.10).
    /// <para>
    /// The chunk's whole tables are copied sample by sample (<see cref="CopyOneIdSamples"/>), a part of a table at either
    /// end table by table (<see cref="CopyOneIdRun"/>). Returns -1, or the first bag whose id is out of range (nothing then
    /// copied).
    /// </para>
    /// </summary>
    private static int CopyOneIdBags(TablePtr* tables, int batch, int* ids, int start, int end, bool nt, float* output, int stride)
    {
        for (int s = start; s < end;)
        {
            int table = s / batch, e = Math.Min(end, (table + 1) * batch);
            int bad = FirstOutOfRange(ids, s, e, (uint)tables[table].Rows);
            if (bad >= 0) return bad;
            s = e;
        }
        if (nt) CopyOneIdChunk<NonTemporalRowStore>(tables, batch, ids, start, end, output, stride);
        else CopyOneIdChunk<CachedRowStore>(tables, batch, ids, start, end, output, stride);
        return -1;
    }

    /// <summary>The copies of <see cref="CopyOneIdBags"/>, ids checked: the chunk's whole tables sample by sample, a part of a table at either end table by table.</summary>
    private static void CopyOneIdChunk<TStore>(TablePtr* tables, int batch, int* ids, int start, int end, float* output, int stride)
        where TStore : struct, IRowStore
    {
        int f0 = (start + batch - 1) / batch, f1 = end / batch; // the chunk's whole tables: [f0, f1)
        if (f1 - f0 < 2)
        {
            CopyOneIdRun<TStore>(tables, batch, ids, start, end, output, stride);
            return;
        }
        CopyOneIdRun<TStore>(tables, batch, ids, start, f0 * batch, output, stride);
        for (int g = f0; g < f1; g += StackTables) CopyOneIdSamples<TStore>(tables, batch, ids, g, Math.Min(f1, g + StackTables), output, stride);
        CopyOneIdRun<TStore>(tables, batch, ids, f1 * batch, end, output, stride);
    }

    /// <summary>
    /// One-id bags [start, end), ids checked, table by table: each table's part by <see cref="CopyOneIdTablePart"/>, its
    /// rows prefetched <see cref="RowPrefetchDistance"/> bags ahead, on into the next table's part. This is the whole
    /// forward of a one-table collection (the per-feature layout). One loop over the run, reading the current and the
    /// prefetched bag's TablePtr and stepping two (table, sample) counters per row, ran 20–35 % slower from DRAM-sized
    /// tables: 26 one-table calls (100k × 64, batch 4096), the two alternated in one process, 1.84–1.91 → 1.50–1.57 ms
    /// on two threads, 4.20 → 3.43 on one; through the engine's per-table forward 1.56–1.62 → 1.28–1.33 ms.
    /// </summary>
    private static void CopyOneIdRun<TStore>(TablePtr* tables, int batch, int* ids, int start, int end, float* output, int stride)
        where TStore : struct, IRowStore
    {
        for (int s = start; s < end;)
        {
            int f = s / batch, e = Math.Min(end, (f + 1) * batch);
            int nextCount = Math.Min(end, (f + 2) * batch) - e; // the next table's part in this run (≤ 0: none)
            CopyOneIdTablePart<TStore>(tables[f].Weight, ids + (long)f * batch, s - f * batch, e - f * batch, output + (long)f * 64, stride,
                nextCount > 0 ? tables[f + 1].Weight : null, ids + (long)(f + 1) * batch, Math.Max(0, nextCount));
            s = e;
        }
    }

    /// <summary>
    /// Bags [b, bEnd) of one table (weights <paramref name="w"/>, bag b's id <c>id[b]</c>), row b copied to
    /// <c>dst[b·stride ..+64]</c>. The last <see cref="RowPrefetchDistance"/> rows prefetch the first rows of the next
    /// table's part (<paramref name="nextCount"/> bags, 0 for none).
    /// </summary>
    private static void CopyOneIdTablePart<TStore>(float* w, int* id, int b, int bEnd, float* dst, int stride, float* nextW, int* nextId, int nextCount)
        where TStore : struct, IRowStore
    {
        for (; b + RowPrefetchDistance < bEnd; b++)
        {
            PrefetchRow64(w, id[b + RowPrefetchDistance]);
            TStore.Copy256(w + (nint)(uint)id[b] * 64, dst + (long)b * stride);
        }
        for (; b < bEnd; b++)
        {
            int ahead = b + RowPrefetchDistance - bEnd; // the bag that many ahead, in the next table's part
            if (ahead < nextCount) PrefetchRow64(nextW, nextId[ahead]);
            TStore.Copy256(w + (nint)(uint)id[b] * 64, dst + (long)b * stride);
        }
    }

    /// <summary>
    /// One-id bags of whole tables [f0, f1) (at most <see cref="StackTables"/>), ids checked, sample by sample (bags
    /// (f0..f1, b), then b + 1): each sample's rows go out as one contiguous run of
    /// (f1 − f0) × 256 bytes, where table by table writes 256-byte pieces (f1 − f0) × 256 bytes apart. Rows are prefetched
    /// about <see cref="RowPrefetchDistance"/> bags ahead (that many over the tables' count, samples ahead).
    /// W1 pooling 1 (26 tables of 100k × 64, batch 4096, two threads, 13 tables each), the two walks interleaved call by
    /// call in one process: 0.929 / 0.939 / 0.941 → 0.885 / 0.889 / 0.904 ms in a fast minute, 1.409 / 1.337 → 1.146 /
    /// 1.135 in a slower one, 0.664 → 0.578 with 1,000-row tables in cache; forward + SGD backward 6.12 / 6.14 → 5.64 /
    /// 5.51 ms. (A first form that read each TablePtr and f·batch per row had measured 8–15 % faster in slow minutes, with
    /// `bench --workloads W1` 2.82–2.91 → 1.58–1.77 ms, but 6–13 % slower in a fast one.)
    /// </summary>
    private static void CopyOneIdSamples<TStore>(TablePtr* tables, int batch, int* ids, int f0, int f1, float* output, int stride)
        where TStore : struct, IRowStore
    {
        int width = f1 - f0, ahead = Math.Max(1, RowPrefetchDistance / width);
        float** w = stackalloc float*[width];
        int** id = stackalloc int*[width];
        FillTableLookups(tables, ids, batch, f0, width, w, id);
        int b = 0;
        for (; b + ahead < batch; b++)
        {
            float* dst = output + (long)b * stride + (long)f0 * 64;
            for (int k = 0; k < width; k++, dst += 64)
            {
                int* t = id[k];
                PrefetchRow64(w[k], t[b + ahead]);
                TStore.Copy256(w[k] + (nint)(uint)t[b] * 64, dst);
            }
        }
        for (; b < batch; b++)
        {
            float* dst = output + (long)b * stride + (long)f0 * 64;
            for (int k = 0; k < width; k++, dst += 64) TStore.Copy256(w[k] + (nint)(uint)id[k][b] * 64, dst);
        }
    }

    /// <summary>
    /// For the one-id sample walks (<see cref="CopyOneIdSamples"/> and the fused inference lookups):
    /// <paramref name="w"/>[k] = row 0 of table f0 + k, <paramref name="id"/>[k] = that table's ids (bag b's id at
    /// <c>id[k][b]</c>; <paramref name="ids"/> holds bag (f, b)'s id at f·batch + b). With these the walks read neither a
    /// TablePtr nor f·batch per row.
    /// </summary>
    private static void FillTableLookups(TablePtr* tables, int* ids, int batch, int f0, int width, float** w, int** id)
    {
        for (int k = 0; k < width; k++)
        {
            w[k] = tables[f0 + k].Weight;
            id[k] = ids + (long)(f0 + k) * batch;
        }
    }

    /// <summary>
    /// How a copy loop writes a 256-byte row: a type argument, so that each loop is compiled once per kind of store with
    /// no test per row, and the four loads and stores are written once. The copy loops used to spell the stores out in
    /// both kinds, since moving them into one shared inlined helper had measured 20–35 % slower; this way measured the
    /// same as the spelled-out loops (W1 pooling 1, both interleaved call by call in one process, medians of 700 calls:
    /// 2.282 / 2.654 against 2.270 / 2.655 ms, and with 1,000-row tables in cache 0.834 / 0.908 against 0.832 / 0.900).
    /// </summary>
    private interface IRowStore
    {
        static abstract void Copy256(float* row, float* dst);
    }

    /// <summary>Non-temporal stores (dst 64-byte aligned): the lines go to memory without being read first.</summary>
    private struct NonTemporalRowStore : IRowStore
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Copy256(float* r, float* dst)
        {
            Avx512F.StoreAlignedNonTemporal(dst, Vector512.Load(r)); Avx512F.StoreAlignedNonTemporal(dst + 16, Vector512.Load(r + 16));
            Avx512F.StoreAlignedNonTemporal(dst + 32, Vector512.Load(r + 32)); Avx512F.StoreAlignedNonTemporal(dst + 48, Vector512.Load(r + 48));
        }
    }

    /// <summary>Normal stores: the row stays in cache for the op that reads it next.</summary>
    private struct CachedRowStore : IRowStore
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Copy256(float* r, float* dst)
        {
            Vector512.Load(r).Store(dst); Vector512.Load(r + 16).Store(dst + 16);
            Vector512.Load(r + 32).Store(dst + 32); Vector512.Load(r + 48).Store(dst + 48);
        }
    }

    /// <summary>
    /// Output size from which the pooling-1 row copies use non-temporal stores: half of one core's 2 MiB L2. A smaller
    /// output stays in the L2s of the threads that wrote it until the next op reads it; a larger one is mostly evicted
    /// first, and then a normal store costs a read of each line before the write. One table of a per-table (dlrm-style)
    /// model at batch 4096 writes 1 MiB: 26 such calls went from 2.4–2.8 to 1.5–1.8 ms (W1 per_table pooling 1);
    /// the DLRM step at batch 256, whose 1.7 MB output the interaction reads next, measured the same (7.8 ms either way).
    /// </summary>
    private const long NonTemporalOutputBytes = 1L << 20;
    private const int BagPrefetchDistance = 8;
    private const int RowPrefetchDistance = 32;

    /// <summary>
    /// How many ids ahead <see cref="PoolBag"/> asks for a row while it sums a bag (and on across the next bags of the
    /// table). Longer than <see cref="RowPrefetchDistance"/>, which the pooling-1 copies and the SGD backward use: a long
    /// bag's sum is a chain of dependent adds, so the loads of the rows in flight have to cover more time. W1 pooling 32
    /// fused forward, steps interleaved in one process, three sessions: 32 ids 13.8 / 14.9 / 15.8 ms, 64 ids 12.8 / 14.3
    /// / 15.4 (128 about the same as 64, 16 ids 17.8). The training steps (pooling 1 and 32) and the pooling-1 forward
    /// measured the same or slower at 64, so they keep 32.
    /// </summary>
    private const int PoolRowPrefetchDistance = 64;

    /// <summary>
    /// The first position p in [start, end) with idx[p] outside [0, rows), or -1: 16 ids per compare (as unsigned, so
    /// negative ids fail too), then one by one for the tail or to find the bad one inside a failing block. Ids are
    /// checked on every lookup call (3.4M per W1 pooling-32 step: a scalar loop took 1.0 ms, this 0.15 ms).
    /// </summary>
    internal static int FirstOutOfRange(int* idx, int start, int end, uint rows)
    {
        int p = start;
        if (Vector512.IsHardwareAccelerated)
        {
            var limit = Vector512.Create(rows);
            for (; p + 16 <= end; p += 16)
                if (Vector512.GreaterThanOrEqualAny(Vector512.Load((uint*)idx + p), limit)) break;
        }
        for (; p < end; p++)
            if ((uint)idx[p] >= rows) return p;
        return -1;
    }

    /// <summary>
    /// Prefetches up to the first 256 bytes (4 cache lines) of a row into L1 (and so L2); a hint only, it never faults.
    /// Into L2 (prefetcht1) had measured faster when this loop was young (W1 pooling 32, 32 ids ahead: 42 → 24 ms against
    /// an L1 prefetch), on the grounds that the L1 tracks fewer outstanding misses. Re-measured with today's loops (26
    /// tables of 100k × 64, batch 4096, the two alternated in one process): pooling 32 forward 16.6 / 15.6 / 16.9 / 16.4
    /// → 14.8 / 14.3 / 15.1 / 14.5 ms, forward + SGD backward 50.2 / 44.6 → 45.7 / 41.3, per table forward 18.6 → 17.7 and
    /// training 43.8 → 41.3; pooling 1 the same within 1–3 % (forward 1.33 / 1.51 against 1.32 / 1.48, training 3.58 /
    /// 5.09 against 3.58 / 4.92; the fused inference lookups + interaction 3.74 / 3.59 / 3.70 against 3.72 / 3.56 / 3.68).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(float* row, int floats)
    {
        if (!Sse.IsSupported) return;
        Sse.Prefetch0(row);
        if (floats > 16) Sse.Prefetch0(row + 16);
        if (floats > 32) Sse.Prefetch0(row + 32);
        if (floats > 48) Sse.Prefetch0(row + 48);
    }

    /// <summary>
    /// Pools bag [p0, p1) of table <paramref name="t"/> into dst. With <paramref name="rowCopy"/> (D = 64, no per-id
    /// weights, Vector512) a one-id bag — pooling 1, every DLRM's case — is copied as one 256-byte row
    /// (<see cref="CopyRow64"/>), since sum and mean are both the row itself; PoolBag's general checks would cost about as
    /// much as the copy. Returns -1, or the first position whose id is out of range (dst then undefined).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int PoolBagOrCopyRow(TablePtr* t, int dim, int* indices, int p0, int p1, float* psw, bool mean, bool rowCopy, bool nt, float* dst)
    {
        if (!rowCopy || p1 - p0 != 1) return PoolBag(t->Weight, t->Rows, dim, indices, p0, p1, psw, mean, dst);
        return CopyRow64(t, indices, p0, nt, dst);
    }

    /// <summary>
    /// The one-id bag at position <paramref name="p0"/> of a D = 64 table: its 256-byte row copied to dst, with
    /// non-temporal stores when <paramref name="nt"/>. Returns -1, or p0 when the id is out of range (dst then untouched).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CopyRow64(TablePtr* t, int* indices, int p0, bool nt, float* dst)
    {
        uint id = (uint)indices[p0];
        if (id >= (uint)t->Rows) return p0;
        float* r = t->Weight + id * 64L;
        if (nt) NonTemporalRowStore.Copy256(r, dst);
        else CachedRowStore.Copy256(r, dst);
        return -1;
    }

    /// <summary>Pools one bag into dst[0..dim); returns -1, or the first position whose id is out of range (dst then undefined).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int PoolBag(float* w, int rows, int dim, int* idx, int start, int end, float* psw, bool mean, float* dst)
        => PoolBag(w, rows, dim, idx, start, end, end, psw, mean, dst);

    /// <summary>
    /// <see cref="PoolBag"/> for the common case, D = 64 without per-id weights: the sum of a bag's 256-byte rows in four
    /// Vector512 registers, in position order (the same bits as the general loop). The loop is split where the prefetch
    /// would run past <paramref name="prefetchEnd"/>, so its body has no branch but the loop's own: the general loop,
    /// with a bounds test and three width tests per row, spilled a bound to the stack and took five jumps a row. W1
    /// pooling 32, steps interleaved in one process: forward 17.1 → 15.6 ms (100k-row tables) and 4.53 → 4.00 ms (100-row
    /// tables, all in L1); forward + SGD backward 43.9 → 41.9 ms.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SumRows64(float* w, int* idx, int start, int end, int prefetchEnd, float scale, bool mean, float* dst)
    {
        var sum = new RowSum64();
        int p = start;
        int prefetchStop = Math.Min(end, prefetchEnd - PoolRowPrefetchDistance);
        for (; p < prefetchStop; p++)
        {
            PrefetchRow64(w, idx[p + PoolRowPrefetchDistance]);
            sum.Add(w, idx[p]);
        }
        for (; p < end; p++) sum.Add(w, idx[p]);
        sum.Store(dst, mean, scale);
    }

    /// <summary>
    /// Two consecutive bags of one table summed together (D = 64, no per-id weights), row k of each in turn into eight
    /// registers: twice the independent row loads in flight per loop, and each bag's sum still in position order (the
    /// same bits as <see cref="SumRows64"/>). Rows are prefetched <see cref="PoolRowPrefetchDistance"/> ids ahead of each
    /// bag's current row, which covers the next pair. W1 pooling 32, fused forward, steps interleaved in one process, three
    /// sessions: 16.1 / 16.1 / 16.6 → 15.6 / 15.3 / 15.8 ms; forward + SGD backward 44.2 → 43.1 ms. Writing the pooled rows
    /// with non-temporal stores as well was slower (16.3 ms): they are 256-byte pieces 6.6 KB apart.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SumTwoBags64(float* w, int* idx, int s0, int s1, int e1, int prefetchEnd, float sc0, float sc1, bool mean, float* d0, float* d1)
    {
        var a = new RowSum64();
        var b = new RowSum64();
        int n0 = s1 - s0, n1 = e1 - s1, m = Math.Min(n0, n1);
        int k = 0;
        int stop = Math.Min(m, prefetchEnd - PoolRowPrefetchDistance - s1);
        for (; k < stop; k++)
        {
            PrefetchRow64(w, idx[s0 + k + PoolRowPrefetchDistance]);
            PrefetchRow64(w, idx[s1 + k + PoolRowPrefetchDistance]);
            a.Add(w, idx[s0 + k]);
            b.Add(w, idx[s1 + k]);
        }
        for (; k < m; k++)
        {
            a.Add(w, idx[s0 + k]);
            b.Add(w, idx[s1 + k]);
        }
        for (int j = k; j < n0; j++) a.Add(w, idx[s0 + j]);
        for (int j = k; j < n1; j++) b.Add(w, idx[s1 + j]);
        a.Store(d0, mean, sc0);
        b.Store(d1, mean, sc1);
    }

    /// <summary>
    /// Asks for row <paramref name="id"/> of a D = 64 table into L1 (see <see cref="PrefetchRow"/>). A hint only: the id
    /// is not checked (a prefetch never faults).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow64(float* w, int id) => PrefetchRow(w + (nint)(uint)id * 64, 64);

    /// <summary>The running sum of a bag's 256-byte rows (D = 64) in four Vector512s; a local of it stays in registers.</summary>
    private struct RowSum64
    {
        private Vector512<float> _a0, _a1, _a2, _a3;

        /// <summary>Adds row <paramref name="id"/> (already checked to be in range).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(float* w, int id)
        {
            float* r = w + (nint)(uint)id * 64;
            _a0 += Vector512.Load(r); _a1 += Vector512.Load(r + 16); _a2 += Vector512.Load(r + 32); _a3 += Vector512.Load(r + 48);
        }

        /// <summary>Writes the sum to dst[0..64), times <paramref name="scale"/> for mean pooling.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(float* dst, bool mean, float scale)
        {
            var a0 = _a0; var a1 = _a1; var a2 = _a2; var a3 = _a3;
            if (mean) { var sv = Vector512.Create(scale); a0 *= sv; a1 *= sv; a2 *= sv; a3 *= sv; }
            a0.Store(dst); a1.Store(dst + 16); a2.Store(dst + 32); a3.Store(dst + 48);
        }
    }

    /// <summary>
    /// As above; rows are prefetched <see cref="PoolRowPrefetchDistance"/> ids ahead up to <paramref name="prefetchEnd"/>
    /// (≥ end): when the following bags of the same table come next in <paramref name="idx"/>, the prefetch runs on
    /// across the bag boundary, so a bag's first rows are already on their way when it starts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static int PoolBag(float* w, int rows, int dim, int* idx, int start, int end, int prefetchEnd, float* psw, bool mean, float* dst)
    {
        int len = end - start;
        if (len <= 0)
        {
            new Span<float>(dst, dim).Clear();
            return -1;
        }
        // Validate the bag's ids first (they are in L1 afterwards), keeping the row loops branch-free.
        int bad = FirstOutOfRange(idx, start, end, (uint)rows);
        if (bad >= 0) return bad;
        float scale = mean ? 1f / len : 1f;
        if (dim == 64 && psw == null && Vector512.IsHardwareAccelerated && Sse.IsSupported)
        {
            SumRows64(w, idx, start, end, prefetchEnd, scale, mean, dst);
            return -1;
        }
        long ld = dim;
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            // 64 columns = 4 × Vector512 = one 256-byte row of a D=64 table, accumulated in registers.
            for (; c + 64 <= dim; c += 64)
            {
                var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
                if (psw == null)
                {
                    for (int p = start; p < end; p++)
                    {
                        if (p + PoolRowPrefetchDistance < prefetchEnd) PrefetchRow(w + (uint)idx[p + PoolRowPrefetchDistance] * ld + c, dim - c);
                        float* r = w + idx[p] * ld + c;
                        a0 += Vector512.Load(r); a1 += Vector512.Load(r + 16);
                        a2 += Vector512.Load(r + 32); a3 += Vector512.Load(r + 48);
                    }
                }
                else
                {
                    for (int p = start; p < end; p++)
                    {
                        float* r = w + idx[p] * ld + c;
                        var s = Vector512.Create(psw[p]);
                        a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), s, a0); a1 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 16), s, a1);
                        a2 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 32), s, a2); a3 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 48), s, a3);
                    }
                }
                if (mean) { var sv = Vector512.Create(scale); a0 *= sv; a1 *= sv; a2 *= sv; a3 *= sv; }
                (a0).Store(dst + c); a1.Store(dst + c + 16); a2.Store(dst + c + 32); a3.Store(dst + c + 48);
            }
            for (; c + 16 <= dim; c += 16)
            {
                var a = Vector512<float>.Zero;
                for (int p = start; p < end; p++)
                {
                    var v = Vector512.Load(w + idx[p] * ld + c);
                    a = psw == null ? a + v : Vector512.FusedMultiplyAdd(v, Vector512.Create(psw[p]), a);
                }
                if (mean) a *= Vector512.Create(scale);
                a.Store(dst + c);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 32 <= dim; c += 32)
            {
                var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
                for (int p = start; p < end; p++)
                {
                    float* r = w + idx[p] * ld + c;
                    if (psw == null)
                    {
                        a0 += Vector256.Load(r); a1 += Vector256.Load(r + 8);
                        a2 += Vector256.Load(r + 16); a3 += Vector256.Load(r + 24);
                    }
                    else
                    {
                        var s = Vector256.Create(psw[p]);
                        a0 = Vector256.FusedMultiplyAdd(Vector256.Load(r), s, a0); a1 = Vector256.FusedMultiplyAdd(Vector256.Load(r + 8), s, a1);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.Load(r + 16), s, a2); a3 = Vector256.FusedMultiplyAdd(Vector256.Load(r + 24), s, a3);
                    }
                }
                if (mean) { var sv = Vector256.Create(scale); a0 *= sv; a1 *= sv; a2 *= sv; a3 *= sv; }
                a0.Store(dst + c); a1.Store(dst + c + 8); a2.Store(dst + c + 16); a3.Store(dst + c + 24);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 8 <= dim; c += 8)
            {
                var a = Vector256<float>.Zero;
                for (int p = start; p < end; p++)
                {
                    var v = Vector256.Load(w + idx[p] * ld + c);
                    a = psw == null ? a + v : Vector256.FusedMultiplyAdd(v, Vector256.Create(psw[p]), a);
                }
                if (mean) a *= Vector256.Create(scale);
                a.Store(dst + c);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; c + 4 <= dim; c += 4)
            {
                var a = Vector128<float>.Zero;
                for (int p = start; p < end; p++)
                {
                    var v = Vector128.Load(w + idx[p] * ld + c);
                    a = psw == null ? a + v : Vector128.FusedMultiplyAdd(v, Vector128.Create(psw[p]), a);
                }
                if (mean) a *= Vector128.Create(scale);
                a.Store(dst + c);
            }
        }
        for (; c < dim; c++)
        {
            float a = 0;
            for (int p = start; p < end; p++)
            {
                float v = w[idx[p] * ld + c];
                a = psw == null ? a + v : MathF.FusedMultiplyAdd(v, psw[p], a);
            }
            dst[c] = mean ? a * scale : a;
        }
        return -1;
    }

    // ------------------------------------------------------------------ argument checks

    /// <summary>
    /// The first i with offsets[i+1] &lt; offsets[i], or -1. Sixteen pairs per compare: this check runs on every lookup
    /// call, and one pass over 106k offsets (W1 pooling 1) was ~3 % of the forward as a scalar loop.
    /// </summary>
    private static int FirstDescent(ReadOnlySpan<int> offsets)
    {
        int pairs = offsets.Length - 1, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= pairs; i += 16)
                if (Vector512.LessThanAny(Vector512.Create(offsets.Slice(i + 1, 16)), Vector512.Create(offsets.Slice(i, 16)))) break;
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= pairs; i += 8)
                if (Vector256.LessThanAny(Vector256.Create(offsets.Slice(i + 1, 8)), Vector256.Create(offsets.Slice(i, 8)))) break;
        }
        for (; i < pairs; i++)
            if (offsets[i + 1] < offsets[i]) return i;
        return -1;
    }

    /// <summary>Checks ids/offsets/weights/output sizes; returns the number of bags (offsets.Length - 1).</summary>
    private static int CheckCommon(int dim, int tables, ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets, ReadOnlySpan<float> perSampleWeights,
        int outputLength, int outputStride, int outputOffset, string op, string outputName, int batchSize = -1)
    {
        KernelGuard.Positive(dim, nameof(dim), op);
        if (offsets.Length < 1)
            throw new ArgumentException($"{op}: 'offsets' needs at least 1 entry (bags + 1), got 0.", nameof(offsets));
        int bags = offsets.Length - 1;
        if (batchSize >= 0 && bags != tables * batchSize)
            throw new ArgumentException($"{op}: 'offsets' needs tables {tables} x batch {batchSize} + 1 = {tables * batchSize + 1} entries, got {offsets.Length}.", nameof(offsets));
        if (offsets[0] < 0)
            throw new ArgumentException($"{op}: offsets[0] must be >= 0, got {offsets[0]}.", nameof(offsets));
        int descent = FirstDescent(offsets);
        if (descent >= 0)
            throw new ArgumentException($"{op}: offsets must be non-decreasing; offsets[{descent + 1}] = {offsets[descent + 1]} < offsets[{descent}] = {offsets[descent]}.", nameof(offsets));
        if (offsets[bags] > indices.Length)
            throw new ArgumentException($"{op}: last offset {offsets[bags]} exceeds the {indices.Length} indices.", nameof(offsets));
        if (!perSampleWeights.IsEmpty && perSampleWeights.Length < offsets[bags])
            throw new ArgumentException($"{op}: 'perSampleWeights' needs one weight per id ({offsets[bags]}), got {perSampleWeights.Length}.", nameof(perSampleWeights));
        KernelGuard.NonNegative(outputOffset, nameof(outputOffset), op);
        int rowsOut = batchSize >= 0 ? batchSize : bags;
        long width = (long)tables * dim;
        if (rowsOut > 1 && outputStride < outputOffset + width)
            throw new ArgumentException($"{op}: '{outputName}' stride {outputStride} is smaller than offset {outputOffset} + tables {tables} x dim {dim}; bags would overlap.", outputName);
        if (rowsOut > 0 && (long)(rowsOut - 1) * outputStride + outputOffset + width > outputLength)
            throw new ArgumentException($"{op}: '{outputName}' needs at least {(long)(rowsOut - 1) * outputStride + outputOffset + width} elements ({rowsOut} bags, stride {outputStride}, offset {outputOffset}, width {width}), got {outputLength}.", outputName);
        return bags;
    }

    private static int CheckTables(ReadOnlySpan<float[]> weights, ReadOnlySpan<int> rows, int dim, int batchSize, string op,
        ReadOnlySpan<int> weightStarts = default)
    {
        KernelGuard.NonNegative(batchSize, nameof(batchSize), op);
        if (rows.Length != weights.Length)
            throw new ArgumentException($"{op}: {weights.Length} weight arrays but {rows.Length} row counts.", nameof(rows));
        if (!weightStarts.IsEmpty && weightStarts.Length != weights.Length)
            throw new ArgumentException($"{op}: {weights.Length} weight arrays but {weightStarts.Length} weight starts.", nameof(weightStarts));
        for (int f = 0; f < weights.Length; f++)
        {
            if (weights[f] is null) throw new ArgumentNullException(nameof(weights), $"{op}: weights[{f}] is null.");
            if (rows[f] < 0) throw new ArgumentOutOfRangeException(nameof(rows), rows[f], $"{op}: rows[{f}] must be >= 0, got {rows[f]}.");
            long start = weightStarts.IsEmpty ? 0 : weightStarts[f];
            if (start < 0) throw new ArgumentOutOfRangeException(nameof(weightStarts), start, $"{op}: weightStarts[{f}] must be >= 0, got {start}.");
            if (weights[f].Length < start + (long)rows[f] * dim)
                throw new ArgumentException($"{op}: weights[{f}] needs start {start} + rows {rows[f]} x dim {dim} = {start + (long)rows[f] * dim} elements, got {weights[f].Length}.", nameof(weights));
        }
        return weights.Length;
    }
}

namespace Recsys.Kernels.EmbeddingBag;

/// <summary>
/// Reusable buffers of the fused embedding-bag backward (sort keys, per-position bag and scale,
/// segment ends, scratch rows, collected gradients). Owned by a table or a collection and grown only
/// when a batch is bigger than any before, so steady-state steps allocate nothing. Arrays live on the
/// pinned object heap: parallel kernel bodies hold raw pointers to them. Not thread-safe: one
/// backward at a time per workspace.
/// </summary>
public sealed class EmbeddingBagWorkspace
{
    internal ulong[] Keys = Array.Empty<ulong>();
    internal ulong[] SortTmp = Array.Empty<ulong>();
    internal int[] PosBag = Array.Empty<int>();
    internal float[] PosScale = Array.Empty<float>();
    internal int[] SegEnd = Array.Empty<int>();
    internal int[] UniqueBase = Array.Empty<int>();
    internal long[] BadPosition = Array.Empty<long>();
    internal float[] Scratch = Array.Empty<float>();
    internal int[] CollectIds = Array.Empty<int>();
    internal float[] CollectGrads = Array.Empty<float>();
    internal EmbeddingBagKernels.TablePtr[] TablePtrs = Array.Empty<EmbeddingBagKernels.TablePtr>();

    /// <summary>Tables of the last backward.</summary>
    public int Tables { get; private set; }

    /// <summary>Embedding dimension of the last backward.</summary>
    public int Dim { get; private set; }

    /// <summary>True when the last backward ran in <see cref="SparseUpdateKind.Collect"/> mode, so the gradients below are valid.</summary>
    public bool HasCollected { get; internal set; }

    /// <summary>Number of distinct rows table <paramref name="table"/> touched in the last backward (valid after a Collect backward).</summary>
    public int UniqueRows(int table)
    {
        CheckCollected(table);
        return UniqueBase[table + 1] - UniqueBase[table];
    }

    /// <summary>Distinct ids of table <paramref name="table"/> in ascending order (valid after a Collect backward).</summary>
    public ReadOnlySpan<int> UniqueIds(int table)
    {
        CheckCollected(table);
        return CollectIds.AsSpan(UniqueBase[table], UniqueRows(table));
    }

    /// <summary>Coalesced gradients [UniqueRows, Dim] of table <paramref name="table"/>, row i for <c>UniqueIds(table)[i]</c>.</summary>
    public ReadOnlySpan<float> RowGradients(int table)
    {
        CheckCollected(table);
        return CollectGrads.AsSpan(UniqueBase[table] * Dim, UniqueRows(table) * Dim);
    }

    private void CheckTable(int table)
    {
        if ((uint)table >= (uint)Tables)
            throw new ArgumentOutOfRangeException(nameof(table), table, $"EmbeddingBagWorkspace: table must be in 0..{Tables - 1}, got {table}.");
    }

    private void CheckCollected(int table)
    {
        CheckTable(table);
        if (!HasCollected)
            throw new InvalidOperationException("EmbeddingBagWorkspace: the last backward applied an update; gradients are only kept in Collect mode.");
    }

    /// <summary>Sizes the per-lookup buffers for <paramref name="lookups"/> ids over <paramref name="tables"/> tables.</summary>
    internal void Prepare(int tables, int dim, int lookups)
    {
        Tables = tables;
        Dim = dim;
        HasCollected = false;
        Grow(ref Keys, lookups);
        Grow(ref SortTmp, lookups);
        Grow(ref PosBag, lookups);
        Grow(ref PosScale, lookups);
        Grow(ref SegEnd, lookups);
        Grow(ref UniqueBase, tables + 1);
        Grow(ref BadPosition, tables);
        Grow(ref TablePtrs, tables);
    }

    /// <summary>Per-chunk buffers of the bucketed coalescing backward (row-wise Adagrad, Adam).</summary>
    internal CoalesceBuffers[] Coalesce = Array.Empty<CoalesceBuffers>();

    /// <summary>
    /// Sizes <paramref name="chunks"/> coalescing buffers: <paramref name="buckets"/> bucket bounds, <paramref name="entries"/>
    /// partitioned positions, dense gradient rows for <paramref name="bucketRows"/> rows, and a copy of one table's
    /// <paramref name="batch"/> dOutput rows.
    /// </summary>
    internal void PrepareCoalesce(int chunks, int buckets, int entries, int bucketRows, int rowStride, int batch)
    {
        if (Coalesce.Length < chunks)
        {
            var grown = new CoalesceBuffers[chunks];
            Coalesce.CopyTo(grown, 0);
            for (int c = Coalesce.Length; c < chunks; c++) grown[c] = new CoalesceBuffers();
            Coalesce = grown;
        }
        for (int c = 0; c < chunks; c++) Coalesce[c].Ensure(buckets, entries, bucketRows, rowStride, batch);
    }

    internal void PrepareScratch(int chunks, int dim) => Grow(ref Scratch, chunks * RoundUp(dim));

    /// <summary>One bitmap of a lone table's rows per chunk (the sample-split SGD backward).</summary>
    internal ulong[] SampleMarks = Array.Empty<ulong>();

    internal void PrepareSampleMarks(int chunks, int words) => Grow(ref SampleMarks, (long)chunks * words);

    internal void PrepareCollect(int uniques, int dim)
    {
        Grow(ref CollectIds, uniques);
        Grow(ref CollectGrads, (long)uniques * dim);
    }

    /// <summary>Scratch row stride: whole cache lines, so two chunks never share one.</summary>
    internal static int RoundUp(int dim) => (dim + 15) & ~15;

    private static void Grow<T>(ref T[] array, long needed) where T : unmanaged
    {
        if (array.Length >= needed) return;
        if (needed > Array.MaxLength)
            throw new InvalidOperationException($"EmbeddingBagWorkspace: a buffer of {needed} elements exceeds the largest array.");
        long size = Math.Min(Array.MaxLength, Math.Max(needed, needed + needed / 4));
        array = GC.AllocateUninitializedArray<T>((int)size, pinned: true);
    }

    /// <summary>
    /// One chunk's buffers for bucketed coalescing: bucket bounds, the (bag, position) entries partitioned by bucket, and
    /// per bucket row a gradient row, a mark (the stamp of the bucket that last touched it, so marks are never cleared)
    /// and the list of touched rows. Pinned (the kernel holds raw pointers) and reused, so steady-state steps allocate nothing.
    /// </summary>
    internal sealed unsafe class CoalesceBuffers
    {
        private int[] _bucketStart = Array.Empty<int>(), _marks = Array.Empty<int>(), _touched = Array.Empty<int>();
        private ulong[] _entries = Array.Empty<ulong>();
        private float[] _grads = Array.Empty<float>(), _dOutRows = Array.Empty<float>();
        private int _stamp;

        public int* BucketStart { get; private set; }
        public ulong* Entries { get; private set; }
        public float* Gradients { get; private set; }
        public float* DOutRows { get; private set; }
        public int* Marks { get; private set; }
        public int* Touched { get; private set; }

        public void Ensure(int buckets, int entries, int bucketRows, int rowStride, int batch)
        {
            if (_bucketStart.Length < buckets + 1) BucketStart = Pin(ref _bucketStart, buckets + 1);
            if (_entries.Length < entries) Entries = Pin(ref _entries, entries);
            if (_marks.Length < bucketRows)
            {
                // Fresh marks are 0, a stamp no bucket uses.
                Marks = Pin(ref _marks, bucketRows);
                Touched = Pin(ref _touched, bucketRows);
            }
            if (_grads.Length < (long)bucketRows * rowStride + 16) Gradients = PinAligned(ref _grads, bucketRows * rowStride);
            if (_dOutRows.Length < (long)batch * rowStride + 16) DOutRows = PinAligned(ref _dOutRows, checked(batch * rowStride));
        }

        /// <summary>The stamp of the next bucket: rows whose mark differs are untouched so far.</summary>
        public int NextStamp()
        {
            if (_stamp == int.MaxValue)
            {
                _marks.AsSpan().Clear();
                _stamp = 0;
            }
            return ++_stamp;
        }

        // Pinned-heap arrays never move, so their address stays valid after the fixed block.
        private static T* Pin<T>(ref T[] array, int length) where T : unmanaged
        {
            array = GC.AllocateArray<T>(length, pinned: true);
            fixed (T* p = array) return p;
        }

        /// <summary>As <see cref="Pin{T}"/>, the returned rows starting on a cache line (row strides are whole lines).</summary>
        private static float* PinAligned(ref float[] array, int length)
        {
            float* p = Pin(ref array, length + 16);
            return p + ((64 - (nint)p % 64) % 64) / sizeof(float);
        }
    }
}

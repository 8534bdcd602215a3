using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.EmbeddingBag;

public static unsafe partial class EmbeddingBagKernels
{
    // ------------------------------------------------------------------ backward + fused update

    /// <summary>
    /// Backward of <see cref="Forward"/> for one table, fused with <paramref name="update"/>:
    /// for each distinct id r, g_r = Σ_{j: id_j = r} s_b(j) · w_j · dOutput[b(j)·stride + offset ..+dim],
    /// then row r (and its state) is updated; untouched rows are never read or written. With
    /// <see cref="SparseUpdateKind.Collect"/> nothing is updated and (ids, g) stay in <paramref name="workspace"/>.
    /// <paramref name="state1"/>: Adagrad [rows] or Adam m [rows, dim]; <paramref name="state2"/>: Adam v [rows, dim]; otherwise empty.
    /// </summary>
    /// <exception cref="EmbeddingIndexOutOfRangeException">An id is &lt; 0 or &gt;= rows (nothing is updated then).</exception>
    public static void Backward(Span<float> weight, int rows, int dim, ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets,
        ReadOnlySpan<float> perSampleWeights, PoolingMode mode, ReadOnlySpan<float> dOutput, int dOutputStride, int dOutputOffset,
        in SparseUpdate update, Span<float> state1, Span<float> state2, EmbeddingBagWorkspace workspace)
    {
        const string op = "EmbeddingBag.Backward";
        ArgumentNullException.ThrowIfNull(workspace);
        KernelGuard.NonNegative(rows, nameof(rows), op);
        KernelGuard.AtLeast(weight, (long)rows * dim, nameof(weight), op);
        int bags = CheckCommon(dim, 1, indices, offsets, perSampleWeights, dOutput.Length, dOutputStride, dOutputOffset, op, nameof(dOutput));
        CheckState(update, rows, dim, state1.Length, state2.Length, 0, op);
        fixed (float* w = weight)
        fixed (float* s1 = state1)
        fixed (float* s2 = state2)
        fixed (int* idx = indices)
        fixed (int* off = offsets)
        fixed (float* psw = perSampleWeights)
        fixed (float* dOut = dOutput)
        {
            var t = new TablePtr { Weight = w, State1 = s1, State2 = s2, Rows = rows };
            BackwardCore(&t, 1, bags, dim, idx, off, perSampleWeights.IsEmpty ? null : psw, mode == PoolingMode.Mean,
                dOut, dOutputStride, dOutputOffset, update, workspace);
        }
    }

    /// <summary>
    /// Backward of <see cref="ForwardTables"/> for F tables fused with <paramref name="update"/>, in two
    /// parallel regions: sort and coalesce per table, then gradient + update over (table, unique-row-range)
    /// chunks. <paramref name="state1"/>/<paramref name="state2"/> hold one array per table as in
    /// <see cref="Backward"/> (ignored entries may be null for SGD and Collect).
    /// </summary>
    public static void BackwardTables(ReadOnlySpan<float[]> weights, ReadOnlySpan<int> rows, int dim, int batchSize,
        ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets, ReadOnlySpan<float> perSampleWeights, PoolingMode mode,
        ReadOnlySpan<float> dOutput, int dOutputStride, int dOutputOffset, in SparseUpdate update,
        ReadOnlySpan<float[]?> state1, ReadOnlySpan<float[]?> state2, EmbeddingBagWorkspace workspace,
        ReadOnlySpan<int> weightStarts = default)
    {
        const string op = "EmbeddingBag.BackwardTables";
        ArgumentNullException.ThrowIfNull(workspace);
        int tables = CheckTables(weights, rows, dim, batchSize, op, weightStarts);
        CheckCommon(dim, tables, indices, offsets, perSampleWeights, dOutput.Length, dOutputStride, dOutputOffset, op, nameof(dOutput), batchSize);
        bool needs1 = update.Kind is SparseUpdateKind.RowwiseAdagrad or SparseUpdateKind.Adam;
        bool needs2 = update.Kind is SparseUpdateKind.Adam;
        if (needs1 && state1.Length != tables) throw new ArgumentException($"{op}: {update.Kind} needs {tables} state1 arrays, got {state1.Length}.", nameof(state1));
        if (needs2 && state2.Length != tables) throw new ArgumentException($"{op}: {update.Kind} needs {tables} state2 arrays, got {state2.Length}.", nameof(state2));
        for (int f = 0; f < tables; f++)
            CheckState(update, rows[f], dim, needs1 ? state1[f]?.Length ?? 0 : 0, needs2 ? state2[f]?.Length ?? 0 : 0, f, op);
        if (tables == 0 || batchSize == 0)
        {
            workspace.Prepare(tables, dim, 0);
            workspace.UniqueBase.AsSpan(0, tables + 1).Clear();
            workspace.HasCollected = update.Kind == SparseUpdateKind.Collect;
            return;
        }

        int handleCount = tables * 3;
        Span<GCHandle> handles = handleCount <= StackTables * 3 ? stackalloc GCHandle[StackTables * 3] : new GCHandle[handleCount];
        Span<TablePtr> ptrs = tables <= StackTables ? stackalloc TablePtr[StackTables] : new TablePtr[tables];
        try
        {
            for (int f = 0; f < tables; f++)
            {
                handles[3 * f] = GCHandle.Alloc(weights[f], GCHandleType.Pinned);
                ptrs[f] = new TablePtr { Weight = (float*)handles[3 * f].AddrOfPinnedObject() + (weightStarts.IsEmpty ? 0 : weightStarts[f]), Rows = rows[f] };
                if (needs1)
                {
                    handles[3 * f + 1] = GCHandle.Alloc(state1[f], GCHandleType.Pinned);
                    ptrs[f].State1 = (float*)handles[3 * f + 1].AddrOfPinnedObject();
                }
                if (needs2)
                {
                    handles[3 * f + 2] = GCHandle.Alloc(state2[f], GCHandleType.Pinned);
                    ptrs[f].State2 = (float*)handles[3 * f + 2].AddrOfPinnedObject();
                }
            }
            fixed (TablePtr* tp = ptrs)
            fixed (int* idx = indices)
            fixed (int* off = offsets)
            fixed (float* psw = perSampleWeights)
            fixed (float* dOut = dOutput)
            {
                BackwardCore(tp, tables, batchSize, dim, idx, off, perSampleWeights.IsEmpty ? null : psw, mode == PoolingMode.Mean,
                    dOut, dOutputStride, dOutputOffset, update, workspace);
            }
        }
        finally
        {
            for (int h = 0; h < handleCount; h++)
                if (handles[h].IsAllocated) handles[h].Free();
        }
    }

    private static void CheckState(in SparseUpdate update, int rows, int dim, int length1, int length2, int table, string op)
    {
        switch (update.Kind)
        {
            case SparseUpdateKind.Collect:
            case SparseUpdateKind.Sgd:
                break;
            case SparseUpdateKind.RowwiseAdagrad:
                if (length1 < rows)
                    throw new ArgumentException($"{op}: row-wise Adagrad state of table {table} needs {rows} elements (one per row), got {length1}.", "state1");
                break;
            case SparseUpdateKind.Adam:
                if (length1 < (long)rows * dim || length2 < (long)rows * dim)
                    throw new ArgumentException($"{op}: Adam state of table {table} needs rows {rows} x dim {dim} = {(long)rows * dim} elements in m and v, got {length1} and {length2}.", "state1");
                if (update.Step < 1)
                    throw new ArgumentOutOfRangeException(nameof(update), update.Step, $"{op}: Adam step must be >= 1, got {update.Step}.");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(update), update.Kind, $"{op}: unknown update kind {update.Kind}.");
        }
    }

    private static T* Ptr<T>(T[] array) where T : unmanaged =>
        // Workspace arrays live on the pinned object heap, so their address is stable.
        (T*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));

    private static void BackwardCore(TablePtr* tables, int tableCount, int batch, int dim, int* idx, int* off, float* psw, bool mean,
        float* dOut, int stride, int offset, in SparseUpdate update, EmbeddingBagWorkspace ws)
    {
        if (update.Kind == SparseUpdateKind.Sgd)
        {
            BackwardSgdScatter(tables, tableCount, batch, dim, idx, off, psw, mean, dOut, stride, offset, update.LearningRate, ws);
            return;
        }
        float stepSize = 0;
        if (update.Kind == SparseUpdateKind.Adam)
        {
            // PyTorch SparseAdam: step_size = lr · √(1-β2^t) / (1-β1^t), computed in double like Python.
            double bc1 = 1 - Math.Pow(update.Beta1, update.Step);
            double bc2 = 1 - Math.Pow(update.Beta2, update.Step);
            stepSize = (float)(update.LearningRate * Math.Sqrt(bc2) / bc1);
        }
        if (update.Kind is SparseUpdateKind.RowwiseAdagrad or SparseUpdateKind.Adam)
        {
            BackwardCoalesced(tables, tableCount, batch, dim, idx, off, psw, mean, dOut, stride, offset, update, stepSize, ws);
            return;
        }
        int items = tableCount * batch;
        int base0 = off[0];
        int lookups = off[items] - base0;
        ws.Prepare(tableCount, dim, lookups);

        // Phase 1: per table, (id, position) keys sorted by id; runs of equal ids are the unique rows.
        var sort = new SortBody
        {
            Tables = tables, Batch = batch, Indices = idx, Offsets = off, Psw = psw, Mean = mean, Base = base0, TableCount = tableCount,
            Keys = Ptr(ws.Keys), Tmp = Ptr(ws.SortTmp), PosBag = Ptr(ws.PosBag), PosScale = Ptr(ws.PosScale), SegEnd = Ptr(ws.SegEnd),
            UniqueCount = Ptr(ws.UniqueBase) + 1, Bad = Ptr(ws.BadPosition),
        };
        KernelParallelism.For(KernelParallelism.Chunks(tableCount, 24L * Math.Max(1, lookups / tableCount)), ref sort);
        for (int f = 0; f < tableCount; f++)
        {
            long bad = ws.BadPosition[f];
            if (bad != long.MaxValue)
                throw new EmbeddingIndexOutOfRangeException(f, (int)bad, idx[bad], tables[f].Rows);
        }
        var ub = ws.UniqueBase;
        ub[0] = 0;
        for (int f = 0; f < tableCount; f++) ub[f + 1] += ub[f];
        int totalUnique = ub[tableCount];

        // Phase 2: gradient of each unique row, then its update (or the collected copy).
        bool collect = update.Kind == SparseUpdateKind.Collect;
        if (collect) ws.PrepareCollect(totalUnique, dim);
        long perRow = (long)dim * (2 + Math.Max(1, lookups / Math.Max(1, totalUnique)));
        int chunks = KernelParallelism.Chunks(totalUnique, perRow);
        ws.PrepareScratch(chunks, dim);
        var body = new UpdateBody
        {
            Tables = tables, TableCount = tableCount, Batch = batch, Dim = dim, Offsets = off, Base = base0,
            DOut = dOut, Stride = stride, Offset = offset,
            Keys = Ptr(ws.Keys), PosBag = Ptr(ws.PosBag), PosScale = Ptr(ws.PosScale), SegEnd = Ptr(ws.SegEnd), UniqueBase = Ptr(ub),
            Scratch = Ptr(ws.Scratch), ScratchStride = EmbeddingBagWorkspace.RoundUp(dim),
            CollectIds = collect ? Ptr(ws.CollectIds) : null, CollectGrads = collect ? Ptr(ws.CollectGrads) : null,
            Kind = update.Kind, Lr = update.LearningRate, Eps = update.Eps, Beta1 = update.Beta1, Beta2 = update.Beta2, StepSize = stepSize,
            Total = totalUnique,
        };
        if (totalUnique > 0) KernelParallelism.For(chunks, ref body);
        ws.HasCollected = collect;
    }

    private struct SortBody : IChunkBody
    {
        public TablePtr* Tables;
        public int Batch, Base, TableCount;
        public int* Indices, Offsets;
        public float* Psw;
        public bool Mean;
        public ulong* Keys, Tmp;
        public int* PosBag, SegEnd, UniqueCount;
        public float* PosScale;
        public long* Bad;

        public void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(TableCount, chunks, chunk);
            int* count = stackalloc int[1 << RadixBits];
            for (int f = start; f < end; f++) SortTable(f, count);
        }

        private void SortTable(int f, int* count)
        {
            Bad[f] = long.MaxValue;
            UniqueCount[f] = 0;
            int rows = Tables[f].Rows;
            int* off = Offsets + f * Batch;
            int tStart = off[0], n = off[Batch] - tStart, lb = tStart - Base;
            ulong* keys = Keys + lb;
            int* posBag = PosBag + lb;
            float* posScale = PosScale + lb;
            for (int b = 0; b < Batch; b++)
            {
                int s = off[b], e = off[b + 1];
                float bagScale = Mean && e > s ? 1f / (e - s) : 1f;
                for (int p = s; p < e; p++)
                {
                    int id = Indices[p];
                    if ((uint)id >= (uint)rows) { Bad[f] = p; return; }
                    int lp = p - tStart;
                    keys[lp] = ((ulong)(uint)id << 32) | (uint)lp;
                    posBag[lp] = b;
                    posScale[lp] = Psw == null ? bagScale : Psw[p] * bagScale;
                }
            }
            int idBits = rows <= 1 ? 0 : 32 - int.LeadingZeroCount(rows - 1);
            RadixSortHigh(keys, Tmp + lb, n, idBits, count);
            int* segEnd = SegEnd + lb;
            int u = 0;
            for (int i = 1; i < n; i++)
                if ((keys[i] >> 32) != (keys[i - 1] >> 32)) segEnd[u++] = i;
            if (n > 0) segEnd[u++] = n;
            UniqueCount[f] = u;
        }
    }

    private const int RadixBits = 11;

    /// <summary>
    /// Stable LSD radix sort of <paramref name="keys"/> by their upper 32 bits (the id), of which only the
    /// low <paramref name="idBits"/> can be set. Stability keeps each id's positions in ascending order,
    /// which fixes the summation order of the gradient.
    /// </summary>
    internal static void RadixSortHigh(ulong* keys, ulong* tmp, int n, int idBits, int* count)
    {
        if (n <= 1 || idBits == 0) return;
        int passes = (idBits + RadixBits - 1) / RadixBits;
        int width = (idBits + passes - 1) / passes;
        int buckets = 1 << width;
        ulong mask = (ulong)(buckets - 1);
        ulong* src = keys, dst = tmp;
        for (int pass = 0, shift = 32; pass < passes; pass++, shift += width)
        {
            new Span<int>(count, buckets).Clear();
            for (int i = 0; i < n; i++) count[(int)((src[i] >> shift) & mask)]++;
            int sum = 0;
            for (int d = 0; d < buckets; d++) { int c = count[d]; count[d] = sum; sum += c; }
            for (int i = 0; i < n; i++)
            {
                ulong k = src[i];
                dst[count[(int)((k >> shift) & mask)]++] = k;
            }
            ulong* t = src; src = dst; dst = t;
        }
        if (src != keys) new ReadOnlySpan<ulong>(src, n).CopyTo(new Span<ulong>(keys, n));
    }

    private struct UpdateBody : IChunkBody
    {
        public TablePtr* Tables;
        public int TableCount, Batch, Dim, Base, Stride, Offset, ScratchStride, Total;
        public int* Offsets;
        public float* DOut;
        public ulong* Keys;
        public int* PosBag, SegEnd, UniqueBase, CollectIds;
        public float* PosScale, Scratch, CollectGrads;
        public SparseUpdateKind Kind;
        public float Lr, Eps, Beta1, Beta2, StepSize;

        public readonly void Run(int chunk, int chunks)
        {
            // Fields in locals: the row updates store through pointers, which would force a reload of every field.
            TablePtr* tables = Tables;
            int batch = Batch, dim = Dim, base0 = Base, stride = Stride, offset = Offset;
            int* offsets = Offsets, posBag = PosBag, segEnd = SegEnd, uniqueBase = UniqueBase, collectIds = CollectIds;
            float* dOut = DOut, posScale = PosScale, collectGrads = CollectGrads;
            ulong* allKeys = Keys;
            var kind = Kind;
            float lr = Lr;
            var (start, end) = KernelParallelism.Range(Total, chunks, chunk);
            int f = 0;
            while (start >= uniqueBase[f + 1]) f++;
            int fa = f; // table of the row being prefetched
            for (int u = start; u < end; u++)
            {
                // Each unique row is a random read-modify-write of its table row plus random reads of dOutput rows:
                // latency-bound unless the next rows are requested early. Prefetch the table row (and optimizer
                // state) and the first dOutput row of the unique row a few ahead.
                int ua = u + UpdatePrefetchDistance;
                if (ua < end)
                {
                    while (ua >= uniqueBase[fa + 1]) fa++;
                    int lbA = offsets[fa * batch] - base0, localA = ua - uniqueBase[fa];
                    ulong keyA = allKeys[lbA + (localA == 0 ? 0 : segEnd[lbA + localA - 1])];
                    TablePtr* tA = tables + fa;
                    long rowA = (long)(keyA >> 32) * dim;
                    PrefetchRow(tA->Weight + rowA, dim);
                    if (kind == SparseUpdateKind.Adam) { PrefetchRow(tA->State1 + rowA, dim); PrefetchRow(tA->State2 + rowA, dim); }
                    PrefetchRow(dOut + offset + (long)fa * dim + (long)posBag[lbA + (int)(uint)keyA] * stride, dim);
                }

                while (u >= uniqueBase[f + 1]) f++;
                int lb = offsets[f * batch] - base0;
                int local = u - uniqueBase[f];
                int segStart = local == 0 ? 0 : segEnd[lb + local - 1];
                int segStop = segEnd[lb + local];
                ulong* keys = allKeys + lb;
                int id = (int)(keys[segStart] >> 32);
                float* g = collectGrads != null ? collectGrads + (long)u * dim : Scratch + (long)chunk * ScratchStride;
                float* dBase = dOut + offset + (long)f * dim;
                for (int i = segStart; i < segStop; i++)
                {
                    int lp = (int)(uint)keys[i];
                    float* src = dBase + (long)posBag[lb + lp] * stride;
                    if (i == segStart) Scale(posScale[lb + lp], src, g, dim);
                    else Axpy(posScale[lb + lp], src, g, dim);
                }
                TablePtr* t = tables + f;
                long row = (long)id * dim;
                switch (kind)
                {
                    case SparseUpdateKind.Collect:
                        collectIds[u] = id;
                        break;
                    case SparseUpdateKind.Sgd:
                        Axpy(-lr, g, t->Weight + row, dim);
                        break;
                    case SparseUpdateKind.RowwiseAdagrad:
                    {
                        float st = t->State1[id] + SumSquares(g, dim) / dim;
                        t->State1[id] = st;
                        Axpy(-lr / (MathF.Sqrt(st) + Eps), g, t->Weight + row, dim);
                        break;
                    }
                    case SparseUpdateKind.Adam:
                        AdamRow(g, t->Weight + row, t->State1 + row, t->State2 + row, dim, Beta1, Beta2, StepSize, Eps);
                        break;
                }
            }
        }
    }

    /// <summary>Unique rows between a prefetch and the update that uses it.</summary>
    private const int UpdatePrefetchDistance = 8;

    // ------------------------------------------------------------------ row primitives (widest vector first, scalar tail)

    /// <summary>y = a·x over n floats.</summary>
    internal static void Scale(float a, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated) { var av = Vector512.Create(a); for (; i + 16 <= n; i += 16) (av * Vector512.Load(x + i)).Store(y + i); }
        if (Vector256.IsHardwareAccelerated) { var av = Vector256.Create(a); for (; i + 8 <= n; i += 8) (av * Vector256.Load(x + i)).Store(y + i); }
        if (Vector128.IsHardwareAccelerated) { var av = Vector128.Create(a); for (; i + 4 <= n; i += 4) (av * Vector128.Load(x + i)).Store(y + i); }
        for (; i < n; i++) y[i] = a * x[i];
    }

    /// <summary>y += a·x over n floats (fused multiply-add).</summary>
    internal static void Axpy(float a, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var av = Vector512.Create(a);
            for (; i + 16 <= n; i += 16) Vector512.FusedMultiplyAdd(av, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var av = Vector256.Create(a);
            for (; i + 8 <= n; i += 8) Vector256.FusedMultiplyAdd(av, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var av = Vector128.Create(a);
            for (; i + 4 <= n; i += 4) Vector128.FusedMultiplyAdd(av, Vector128.Load(x + i), Vector128.Load(y + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }

    /// <summary>g = a · d over 64 floats, inline: the operations of <see cref="Scale"/> (the same bits) without a call per id.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scaled64(float a, float* d, float* g)
    {
        var av = Vector512.Create(a);
        (av * Vector512.Load(d)).Store(g); (av * Vector512.Load(d + 16)).Store(g + 16);
        (av * Vector512.Load(d + 32)).Store(g + 32); (av * Vector512.Load(d + 48)).Store(g + 48);
    }

    /// <summary>g += a · d over 64 floats, inline: the operations of <see cref="Axpy"/> (the same bits) without a call per id.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaled64(float a, float* d, float* g)
    {
        var av = Vector512.Create(a);
        Vector512.FusedMultiplyAdd(av, Vector512.Load(d), Vector512.Load(g)).Store(g);
        Vector512.FusedMultiplyAdd(av, Vector512.Load(d + 16), Vector512.Load(g + 16)).Store(g + 16);
        Vector512.FusedMultiplyAdd(av, Vector512.Load(d + 32), Vector512.Load(g + 32)).Store(g + 32);
        Vector512.FusedMultiplyAdd(av, Vector512.Load(d + 48), Vector512.Load(g + 48)).Store(g + 48);
    }

    /// <summary>
    /// One 64-float dOutput row held in four Vector512 registers across a bag's ids: w += a · g as four FMAs, the
    /// operations of <see cref="Axpy"/> (the same bits) without a call and reloads per id (D = 64, every W1 and W6 table).
    /// </summary>
    private readonly struct Row64
    {
        private readonly Vector512<float> _g0, _g1, _g2, _g3;

        public Row64(float* g)
        {
            _g0 = Vector512.Load(g); _g1 = Vector512.Load(g + 16); _g2 = Vector512.Load(g + 32); _g3 = Vector512.Load(g + 48);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AxpyInto(float a, float* r)
        {
            var av = Vector512.Create(a);
            Vector512.FusedMultiplyAdd(av, _g0, Vector512.Load(r)).Store(r);
            Vector512.FusedMultiplyAdd(av, _g1, Vector512.Load(r + 16)).Store(r + 16);
            Vector512.FusedMultiplyAdd(av, _g2, Vector512.Load(r + 32)).Store(r + 32);
            Vector512.FusedMultiplyAdd(av, _g3, Vector512.Load(r + 48)).Store(r + 48);
        }
    }

    /// <summary>Σ x_i² over n floats.</summary>
    internal static float SumSquares(float* x, int n)
    {
        int i = 0;
        float s = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16) { var v = Vector512.Load(x + i); acc = Vector512.FusedMultiplyAdd(v, v, acc); }
            s += Vector512.Sum(acc);
        }
        if (Vector256.IsHardwareAccelerated && n - i >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8) { var v = Vector256.Load(x + i); acc = Vector256.FusedMultiplyAdd(v, v, acc); }
            s += Vector256.Sum(acc);
        }
        if (Vector128.IsHardwareAccelerated && n - i >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4) { var v = Vector128.Load(x + i); acc = Vector128.FusedMultiplyAdd(v, v, acc); }
            s += Vector128.Sum(acc);
        }
        for (; i < n; i++) s = MathF.FusedMultiplyAdd(x[i], x[i], s);
        return s;
    }

    /// <summary>
    /// One SparseAdam row update, in PyTorch's operation order:
    /// m += (g - m)(1-β1); v += (g² - v)(1-β2); w += (-stepSize) · (m / (√v + eps)).
    /// </summary>
    internal static void AdamRow(float* g, float* w, float* m, float* v, int n, float beta1, float beta2, float stepSize, float eps)
    {
        float c1 = 1 - beta1, c2 = 1 - beta2, ns = -stepSize;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vc1 = Vector512.Create(c1); var vc2 = Vector512.Create(c2); var vns = Vector512.Create(ns); var ve = Vector512.Create(eps);
            for (; i + 16 <= n; i += 16)
            {
                var gi = Vector512.Load(g + i);
                var mi = Vector512.Load(m + i);
                var vi = Vector512.Load(v + i);
                mi += (gi - mi) * vc1;
                vi += (gi * gi - vi) * vc2;
                mi.Store(m + i);
                vi.Store(v + i);
                (Vector512.Load(w + i) + vns * (mi / (Vector512.Sqrt(vi) + ve))).Store(w + i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var vc1 = Vector256.Create(c1); var vc2 = Vector256.Create(c2); var vns = Vector256.Create(ns); var ve = Vector256.Create(eps);
            for (; i + 8 <= n; i += 8)
            {
                var gi = Vector256.Load(g + i);
                var mi = Vector256.Load(m + i);
                var vi = Vector256.Load(v + i);
                mi += (gi - mi) * vc1;
                vi += (gi * gi - vi) * vc2;
                mi.Store(m + i);
                vi.Store(v + i);
                (Vector256.Load(w + i) + vns * (mi / (Vector256.Sqrt(vi) + ve))).Store(w + i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var vc1 = Vector128.Create(c1); var vc2 = Vector128.Create(c2); var vns = Vector128.Create(ns); var ve = Vector128.Create(eps);
            for (; i + 4 <= n; i += 4)
            {
                var gi = Vector128.Load(g + i);
                var mi = Vector128.Load(m + i);
                var vi = Vector128.Load(v + i);
                mi += (gi - mi) * vc1;
                vi += (gi * gi - vi) * vc2;
                mi.Store(m + i);
                vi.Store(v + i);
                (Vector128.Load(w + i) + vns * (mi / (Vector128.Sqrt(vi) + ve))).Store(w + i);
            }
        }
        for (; i < n; i++)
        {
            float mi = m[i] + (g[i] - m[i]) * c1;
            float vi = v[i] + (g[i] * g[i] - v[i]) * c2;
            m[i] = mi;
            v[i] = vi;
            w[i] += ns * (mi / (MathF.Sqrt(vi) + eps));
        }
    }
}

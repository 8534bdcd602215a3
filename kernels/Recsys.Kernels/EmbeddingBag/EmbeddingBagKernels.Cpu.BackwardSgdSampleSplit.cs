using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.EmbeddingBag;

public static unsafe partial class EmbeddingBagKernels
{
    // ------------------------------------------------------------------ fused SGD, one table with one id per bag

    /// <summary>Whether every bag of <paramref name="offsets"/> [bags + 1] holds zero or one id.</summary>
    private static bool AtMostOneIdPerBag(int* offsets, int bags)
    {
        for (int b = 0; b < bags; b++)
            if (offsets[b + 1] - offsets[b] > 1) return false;
        return true;
    }

    /// <summary>
    /// The SGD scatter of a lone table whose bags hold at most one id (a per-table DLRM at pooling 1), on several
    /// threads, split by samples as its forward was: chunk c updates the rows of its own samples, which its thread read
    /// in the forward. Cut into row slices instead (<see cref="BackwardSgdScatter"/>'s general split), half of the rows
    /// a thread updates were last read by the other core, which costs most when the host's core-to-core transfers are
    /// slow. A row that samples of two chunks share is left to the chunk owning its row slice, after a first pass marks
    /// each chunk's rows in a bitmap. Sum and mean pooling update alike: the mean of one id is the id itself.
    /// <para>
    /// Same bits as the one-thread walk: an unshared row's updates all come from one chunk's samples, applied last
    /// sample first; a shared row's are applied by its slice owner over all samples, last first. The two sets of rows
    /// are disjoint, so the chunks never write the same row.
    /// </para>
    /// </summary>
    private static void BackwardSgdSampleSplit(TablePtr* table, int batch, int dim, int* idx, int* off, float* psw,
        float* dOut, int stride, int offset, float lr, int chunks, EmbeddingBagWorkspace ws)
    {
        int words = (table->Rows + 63) >> 6;
        ws.Prepare(1, dim, 0);
        ws.PrepareSampleMarks(chunks, words);
        long* bad = stackalloc long[chunks];
        var mark = new SampleMarkBody
        {
            Indices = idx, Offsets = off, Batch = batch, Words = words, Marks = Ptr(ws.SampleMarks), Rows = (uint)table->Rows, Bad = bad,
        };
        KernelParallelism.For(chunks, ref mark);
        // No row has changed yet: a bad id stops the backward here, reported at its first position.
        long first = long.MaxValue;
        for (int c = 0; c < chunks; c++) first = Math.Min(first, bad[c]);
        if (first != long.MaxValue) throw new EmbeddingIndexOutOfRangeException(0, (int)first, idx[first], table->Rows);
        var body = new SampleSplitBody
        {
            Table = table, Batch = batch, Dim = dim, Indices = idx, Offsets = off, Psw = psw, DOut = dOut + offset,
            Stride = stride, NegLr = -lr, Words = words, Marks = Ptr(ws.SampleMarks),
        };
        KernelParallelism.For(chunks, ref body);
    }

    /// <summary>
    /// Chunk c checks the ids of its samples and sets, in its own bitmap, the bit of every row they look up: the ids this
    /// thread pooled in the forward, instead of one thread reading all of them first (half from the other core's cache).
    /// A bad id ends the chunk's pass with its position in <see cref="Bad"/>[c] (long.MaxValue when all are valid).
    /// </summary>
    private struct SampleMarkBody : IChunkBody
    {
        public int* Indices, Offsets;
        public int Batch, Words;
        public uint Rows;
        public ulong* Marks;
        public long* Bad;

        public readonly void Run(int chunk, int chunks)
        {
            ulong* mine = Marks + (long)chunk * Words;
            new Span<ulong>(mine, Words).Clear();
            Bad[chunk] = long.MaxValue;
            var (s0, s1) = KernelParallelism.Range(Batch, chunks, chunk);
            for (int b = s0; b < s1; b++)
            {
                int p0 = Offsets[b];
                if (p0 == Offsets[b + 1]) continue;
                uint id = (uint)Indices[p0];
                if (id >= Rows) { Bad[chunk] = p0; return; }
                mine[id >> 6] |= 1UL << (int)(id & 63);
            }
        }
    }

    private struct SampleSplitBody : IChunkBody
    {
        public TablePtr* Table;
        public int Batch, Dim, Stride, Words;
        public int* Indices, Offsets;
        public float* Psw, DOut;
        public float NegLr;
        public ulong* Marks;

        /// <summary>How many chunks' samples look up row <paramref name="id"/> (stops counting at 2).</summary>
        private readonly int Owners(uint id, int chunks)
        {
            int n = 0;
            ulong bit = 1UL << (int)(id & 63);
            for (int c = 0; c < chunks && n < 2; c++)
                if ((Marks[(long)c * Words + (id >> 6)] & bit) != 0) n++;
            return n;
        }

        public readonly void Run(int chunk, int chunks)
        {
            int batch = Batch, dim = Dim, stride = Stride;
            int* idx = Indices, off = Offsets;
            float* psw = Psw, dOut = DOut, w = Table->Weight;
            bool row64 = dim == 64 && Vector512.IsHardwareAccelerated;
            float negLr = NegLr;
            long ld = dim;
            // 1. This chunk's samples, last first: every row no other chunk's samples look up.
            var (s0, s1) = KernelParallelism.Range(batch, chunks, chunk);
            for (int b = s1 - 1; b >= s0; b--)
            {
                int ba = b - SampleMajorPrefetchDistance;
                if (ba >= s0 && off[ba] < off[ba + 1]) PrefetchRow(w + (uint)idx[off[ba]] * ld, dim);
                if (b - DOutputPrefetchSamples >= s0) CachePrefetch.IntoL2(dOut + (long)(b - DOutputPrefetchSamples) * stride, dim);
                int p0 = off[b];
                if (p0 == off[b + 1]) continue;
                uint id = (uint)idx[p0];
                if (Owners(id, chunks) > 1) continue;
                Apply(b, p0, id, row64, ld, negLr, psw, dOut, stride, w, dim);
            }
            // 2. Rows of this chunk's row slice that samples of two or more chunks look up: all samples, last first.
            uint rows = (uint)Table->Rows;
            uint r0 = (uint)((long)rows * chunk / chunks), span = (uint)((long)rows * (chunk + 1) / chunks) - r0;
            for (int b = batch - 1; b >= 0; b--)
            {
                int p0 = off[b];
                if (p0 == off[b + 1]) continue;
                uint id = (uint)idx[p0];
                if (id - r0 >= span || Owners(id, chunks) < 2) continue;
                Apply(b, p0, id, row64, ld, negLr, psw, dOut, stride, w, dim);
            }
        }

        /// <summary>Row id += (-lr · s · w_p) · dOutput[b] for the bag's one id (mean of one id is the id itself).</summary>
        private readonly void Apply(int b, int p0, uint id, bool row64, long ld, float negLr, float* psw, float* dOut, int stride, float* w, int dim)
        {
            float scale = psw == null ? negLr : negLr * psw[p0];
            float* g = dOut + (long)b * stride;
            if (row64) new Row64(g).AxpyInto(scale, w + id * 64L);
            else Axpy(scale, g, w + id * ld, dim);
        }
    }
}

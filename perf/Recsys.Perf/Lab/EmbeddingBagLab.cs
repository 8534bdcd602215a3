using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Perf.Lab;

/// <summary>
/// Kernel lab for the pooled embedding-bag forward of W1 (F tables x rows x 64, batch 4096, output [B, F, D]):
/// a float64 reference, versions 1..N, a validation of every version against the reference, then a timed sweep
/// over pooling factor and table size with M lookups/s and GB/s (256 B read per lookup). The winner goes to
/// <c>kernels/Recsys.Kernels/EmbeddingBag</c>; versions stay here so each speed-up can be re-measured.
/// <code>dotnet run -c Release --project perf/Recsys.Perf -- lab embedding-bag [--rows 10000,100000,1000000] [--pf 1,32] [--reps 40]</code>
/// </summary>
internal static unsafe class EmbeddingBagLab
{
    private const int Dim = 64, Batch = 4096, Tables = 26;

    /// <summary>Writes [B, F, D] (v5: [F, B, D]) into <paramref name="output"/> from index <paramref name="start"/>, a 64-byte boundary.</summary>
    private delegate void Version(float[][] tables, int[] idx, int[] off, float[] output, int start);

    private static readonly (string Name, Version Run)[] Versions =
    {
        ("v0 ceiling: copy each bag's first row, sample order", CopyCeiling),
        ("v1 table order, no prefetch", (t, i, o, y, s) => TableOrder(t, i, o, y, s, prefetch: false)),
        ("v2 table order, prefetch 8 bags ahead", (t, i, o, y, s) => TableOrder(t, i, o, y, s, prefetch: true)),
        ("v4 production ForwardTables", Production),
        ("v3 sample order, prefetch 16 bags ahead", SampleOrder),
        ("v5 table order, output [F, B, D] (peer's fused layout)", (t, i, o, y, s) => RunMode(t, i, o, y, s, 4)),
        ("v6 one-id bags: offsets read, id checked per bag", (t, i, o, y, s) => RunMode(t, i, o, y, s, 6)),
        ("v7 one-id bags: ids checked first, bare loop", (t, i, o, y, s) => RunMode(t, i, o, y, s, 7)),
    };

    /// <summary>Versions that only copy one-id bags (pooling 1): validated and timed at pooling 1 only.</summary>
    private static bool OneIdOnly(string name) => name.StartsWith("v6", StringComparison.Ordinal) || name.StartsWith("v7", StringComparison.Ordinal);

    public static int Run(string[] args)
    {
        int[] rowsList = IntList(args, "--rows", new[] { 10_000, 100_000, 1_000_000 });
        int[] pfs = IntList(args, "--pf", new[] { 1, 32 });
        int reps = IntList(args, "--reps", new[] { 40 })[0];
        Console.WriteLine($"embedding-bag lab: {Tables} tables x dim {Dim}, batch {Batch}, threads {KernelParallelism.MaxThreads}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        if (!Validate()) return 1;
        foreach (int rows in rowsList)
            foreach (int pf in pfs)
                Sweep(rows, pf, reps);
        return 0;
    }

    // ------------------------------------------------------------------ validation

    private static bool Validate() => Validate(pf: 3) & Validate(pf: 1);

    private static bool Validate(int pf)
    {
        const int rows = 1000;
        var (tables, idx, off) = Problem(rows, pf, seed: 5, batch: Batch);
        var expected = Reference(tables, rows, idx, off);
        bool ok = true;
        foreach (var (name, run) in Versions)
        {
            if (name.StartsWith("v0", StringComparison.Ordinal)) continue; // the ceiling does not pool
            if (OneIdOnly(name) != (pf == 1)) continue;
            var got = Execute(run, tables, idx, off);
            if (name.StartsWith("v5", StringComparison.Ordinal)) got = FbdToBfd(got);
            double worst = 0;
            for (int i = 0; i < got.Length; i++) worst = Math.Max(worst, Math.Abs(got[i] - expected[i]) / (1 + Math.Abs(expected[i])));
            bool pass = worst < 1e-5;
            ok &= pass;
            Console.WriteLine($"  validate {name} (pooling {pf}): max rel err {worst:E1} {(pass ? "ok" : "FAILED")}");
        }
        return ok;
    }

    private static float[] FbdToBfd(float[] fbd)
    {
        var bfd = new float[fbd.Length];
        for (int f = 0; f < Tables; f++)
            for (int b = 0; b < Batch; b++)
                Array.Copy(fbd, ((long)f * Batch + b) * Dim, bfd, ((long)b * Tables + f) * Dim, Dim);
        return bfd;
    }

    /// <summary>The formula in float64: out[b, f, :] = Σ_j W_f[id_j, :] over bag (f, b).</summary>
    private static double[] Reference(float[][] tables, int rows, int[] idx, int[] off)
    {
        var y = new double[Batch * Tables * Dim];
        for (int f = 0; f < Tables; f++)
            for (int b = 0; b < Batch; b++)
                for (int p = off[f * Batch + b]; p < off[f * Batch + b + 1]; p++)
                    for (int c = 0; c < Dim; c++)
                        y[(b * Tables + f) * Dim + c] += tables[f][s_starts[f] + idx[p] * Dim + c];
        return y;
    }

    // ------------------------------------------------------------------ sweep

    private static void Sweep(int rows, int pf, int reps)
    {
        var (tables, idx, off) = Problem(rows, pf, seed: 11, batch: Batch);
        long lookups = (long)Tables * Batch * pf;
        Console.WriteLine($"rows {rows:N0} ({Tables * (long)rows * Dim * 4 / 1e6:F0} MB of tables), pooling {pf}:");
        foreach (var (name, run) in Versions)
        {
            if (OneIdOnly(name) && pf != 1) continue;
            var times = new double[reps];
            for (int r = 0; r < reps; r++)
            {
                long t0 = Stopwatch.GetTimestamp();
                Execute(run, tables, idx, off, keep: true);
                times[r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            Array.Sort(times);
            double ms = times[reps / 2];
            double perSecond = (name.StartsWith("v0", StringComparison.Ordinal) ? Tables * (long)Batch : lookups) / (ms * 1e-3);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-52} median {ms,8:F3} ms  {perSecond / 1e6,7:F1} M lookups/s  {perSecond * Dim * 4 / 1e9,6:F1} GB/s  (p10 {times[reps / 10]:F3}, p90 {times[reps * 9 / 10]:F3})"));
        }
    }

    // ------------------------------------------------------------------ plumbing

    private static float[]? s_output;
    private static int s_outputStart;

    /// <summary>Runs a version into a pinned output starting on a 64-byte boundary (the production kernel then writes
    /// past the caches, as it does into the engine's arena); returns a copy of the [B, F, D] result.</summary>
    private static float[] Execute(Version run, float[][] tables, int[] idx, int[] off, bool keep = false)
    {
        if (s_output is null) s_output = LargeBuffers.AlignedFloats(Batch * Tables * Dim, out s_outputStart, pinSmall: true);
        if (!keep) s_output.AsSpan(s_outputStart, Batch * Tables * Dim).Fill(float.NaN); // validation: every element must be written
        run(tables, idx, off, s_output, s_outputStart);
        return keep ? s_output : s_output.AsSpan(s_outputStart, Batch * Tables * Dim).ToArray();
    }

    /// <summary>Where row 0 of each table of the current problem starts, and its row count.</summary>
    private static readonly int[] s_starts = new int[Tables];
    private static int s_rows;

    private static (float[][] Tables, int[] Idx, int[] Off) Problem(int rows, int pf, int seed, int batch)
    {
        s_rows = rows;
        var rnd = new Random(seed);
        var tables = new float[Tables][];
        for (int f = 0; f < Tables; f++)
        {
            // As the engine's tables: pinned, huge-page advised, row 0 on a 256-byte boundary (s_starts[f]).
            tables[f] = LargeBuffers.AlignedFloats(rows * Dim, out s_starts[f], pinSmall: true, LargeBuffers.EmbeddingTableAlignmentBytes);
            for (int i = 0; i < rows * Dim; i++) tables[f][s_starts[f] + i] = (float)(rnd.NextDouble() - 0.5);
        }
        var idx = new int[Tables * batch * pf];
        for (int i = 0; i < idx.Length; i++) idx[i] = rnd.Next(rows);
        var off = new int[Tables * batch + 1];
        for (int i = 0; i < off.Length; i++) off[i] = i * pf;
        return (tables, idx, off);
    }

    private static int[] IntList(string[] args, string name, int[] fallback)
    {
        int at = Array.IndexOf(args, name);
        return at < 0 || at + 1 >= args.Length ? fallback : args[at + 1].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* row)
    {
        if (!Sse.IsSupported) return;
        Sse.Prefetch0(row); Sse.Prefetch0(row + 16); Sse.Prefetch0(row + 32); Sse.Prefetch0(row + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PoolRow64(float* w, int* idx, int start, int end, float* dst)
    {
        var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
        for (int p = start; p < end; p++)
        {
            if (p + 8 < end) Prefetch(w + idx[p + 8] * (long)Dim);
            float* r = w + idx[p] * (long)Dim;
            a0 += Vector512.Load(r); a1 += Vector512.Load(r + 16); a2 += Vector512.Load(r + 32); a3 += Vector512.Load(r + 48);
        }
        a0.Store(dst); a1.Store(dst + 16); a2.Store(dst + 32); a3.Store(dst + 48);
    }

    // ------------------------------------------------------------------ versions

    private struct Job : IChunkBody
    {
        public float** Tables;
        public int* Idx, Off;
        public float* Output;
        public int Mode; // 0 copy ceiling, 1 table order, 2 table order + prefetch, 3 sample order + prefetch, 4 = 2 into [F, B, D],
                         // 6 and 7 one-id copies (see OneIdCopies)
        public int Rows;

        public void Run(int chunk, int chunks)
        {
            int items = Tables_ * Batch;
            var (start, end) = KernelParallelism.Range(items, chunks, chunk);
            if (Mode >= 6) { OneIdCopies(start, end); return; }
            for (int i = start; i < end; i++)
            {
                int f, b;
                if (Mode <= 0 || Mode == 3) { b = i / Tables_; f = i - b * Tables_; }
                else { f = i / Batch; b = i - f * Batch; }
                bool tableOrder = Mode is 1 or 2 or 4;
                if (Mode != 1)
                {
                    int dist = tableOrder ? 8 : 16, a = i + dist;
                    if (a < end)
                    {
                        int fa = tableOrder ? a / Batch : a % Tables_, ba = tableOrder ? a % Batch : a / Tables_;
                        Prefetch(Tables[fa] + Idx[Off[fa * Batch + ba]] * (long)Dim);
                    }
                }
                int bag = f * Batch + b;
                float* dst = Output + (Mode == 4 ? (long)f * Batch + b : (long)b * Tables_ + f) * Dim;
                if (Mode == 0)
                {
                    float* r = Tables[f] + Idx[Off[bag]] * (long)Dim;
                    Vector512.Load(r).Store(dst); Vector512.Load(r + 16).Store(dst + 16);
                    Vector512.Load(r + 32).Store(dst + 32); Vector512.Load(r + 48).Store(dst + 48);
                }
                else PoolRow64(Tables[f], Idx, Off[bag], Off[bag + 1], dst);
            }
        }

        /// <summary>
        /// Pooling 1, table order, rows copied with non-temporal stores (the output is 64-byte aligned and 27 MB), prefetch
        /// 32 bags ahead into L2. v6 is the engine's loop before the change: each bag's offsets read, its length and id
        /// checked next to its copy, the prefetch stopped at the table's end. v7 is the loop the engine runs now
        /// (CopyOneIdBags): the chunk's ids checked first (here one by one; the engine compares 16 at a time), then a loop
        /// with no branch but its own. Both copy the row spelled out, as the engine does.
        /// </summary>
        private readonly void OneIdCopies(int start, int end)
        {
            float** tables = Tables;
            int* idx = Idx, off = Off;
            float* output = Output;
            uint rows = (uint)Rows;
            const int Ahead = 32, Stride = Tables_ * Dim;
            int f = start / Batch, b = start - f * Batch;
            if (Mode == 6)
            {
                int tableEnd = off[Math.Min((f + 1) * Batch, end)];
                for (int i = start; i < end; i++)
                {
                    int p0 = off[i], p1 = off[i + 1];
                    if (p1 - p0 == 1)
                    {
                        if (p0 + Ahead < tableEnd) PrefetchL2(tables[f] + (uint)idx[p0 + Ahead] * (long)Dim);
                        uint id = (uint)idx[p0];
                        if (id >= rows) throw new InvalidOperationException($"lab: id {id} at {p0} out of range");
                        float* r = tables[f] + id * (long)Dim;
                        float* dst = output + (long)b * Stride + (long)f * Dim;
                        Avx512F.StoreAlignedNonTemporal(dst, Vector512.Load(r)); Avx512F.StoreAlignedNonTemporal(dst + 16, Vector512.Load(r + 16));
                        Avx512F.StoreAlignedNonTemporal(dst + 32, Vector512.Load(r + 32)); Avx512F.StoreAlignedNonTemporal(dst + 48, Vector512.Load(r + 48));
                    }
                    if (++b == Batch) { b = 0; f++; tableEnd = off[Math.Min((f + 1) * Batch, end)]; }
                }
                Sse.StoreFence();
                return;
            }
            int* ids = idx + off[start] - start; // one id per bag: bag i's id at ids[i]
            for (int i = start; i < end; i++)
                if ((uint)ids[i] >= rows) throw new InvalidOperationException($"lab: id {ids[i]} of bag {i} out of range");
            for (int i = start; i < end; i++)
            {
                int ahead = i + Ahead;
                if (ahead < end) PrefetchL2(tables[ahead / Batch] + (uint)ids[ahead] * (long)Dim);
                float* r = tables[f] + (uint)ids[i] * (long)Dim;
                float* dst = output + (long)b * Stride + (long)f * Dim;
                Avx512F.StoreAlignedNonTemporal(dst, Vector512.Load(r)); Avx512F.StoreAlignedNonTemporal(dst + 16, Vector512.Load(r + 16));
                Avx512F.StoreAlignedNonTemporal(dst + 32, Vector512.Load(r + 32)); Avx512F.StoreAlignedNonTemporal(dst + 48, Vector512.Load(r + 48));
                if (++b == Batch) { b = 0; f++; }
            }
            Sse.StoreFence();
        }

        private const int Tables_ = EmbeddingBagLab.Tables;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchL2(float* row)
    {
        Sse.Prefetch1(row); Sse.Prefetch1(row + 16); Sse.Prefetch1(row + 32); Sse.Prefetch1(row + 48);
    }


    private static void RunMode(float[][] tables, int[] idx, int[] off, float[] output, int start, int mode)
    {
        // The tables come from LargeBuffers (pinned for the process), so their addresses are stable.
        var ptrs = stackalloc nint[Tables];
        for (int f = 0; f < Tables; f++) ptrs[f] = (nint)Unsafe.AsPointer(ref tables[f][s_starts[f]]);
        fixed (int* i = idx) fixed (int* o = off) fixed (float* y = output)
        {
            var job = new Job { Tables = (float**)ptrs, Idx = i, Off = o, Output = y + start, Mode = mode, Rows = s_rows };
            KernelParallelism.For(KernelParallelism.MaxThreads, ref job);
        }
    }

    private static void CopyCeiling(float[][] t, int[] i, int[] o, float[] y, int s) => RunMode(t, i, o, y, s, 0);
    private static void TableOrder(float[][] t, int[] i, int[] o, float[] y, int s, bool prefetch) => RunMode(t, i, o, y, s, prefetch ? 2 : 1);
    private static void SampleOrder(float[][] t, int[] i, int[] o, float[] y, int s) => RunMode(t, i, o, y, s, 3);

    private static readonly int[] RowCounts = new int[Tables];

    private static void Production(float[][] tables, int[] idx, int[] off, float[] output, int start)
    {
        for (int f = 0; f < Tables; f++) RowCounts[f] = s_rows;
        EmbeddingBagKernels.ForwardTables(tables, RowCounts, Dim, Batch, idx, off, default, PoolingMode.Sum, output.AsSpan(start, Batch * Tables * Dim),
            Tables * Dim, 0, s_starts);
    }
}

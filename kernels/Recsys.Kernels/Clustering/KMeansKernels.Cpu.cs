using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;

namespace Recsys.Kernels.Clustering;

/// <summary>
/// Lloyd's k-means on the CPU, as the building blocks of offline clustering and of clustering done
/// every training step (HSNN). Assignment is argmin_j ‖x − c_j‖² = argmin_j (‖c_j‖² − 2 x·c_j): the
/// per-row ‖x‖² does not change the argmin, so the distances are one GEMM (X·Cᵀ) plus a fused scan.
/// Ties go to the lowest centroid index.
/// </summary>
public static class KMeansKernels
{
    /// <summary>Rows of X per GEMM block: the [block, k] score tile stays in L2 for k up to ~1k.</summary>
    private const int BlockRows = 1024;

    /// <summary>
    /// assignment[i] = argmin_j ‖points[i] − centroids[j]‖² for points [n, d] and centroids [k, d].
    /// <paramref name="distances"/> (optional, length n) receives ‖c_j‖² − 2 x·c_j of the winner (add ‖x‖²
    /// for the true squared distance).
    /// </summary>
    public static void Assign(ReadOnlySpan<float> points, ReadOnlySpan<float> centroids, int n, int k, int d,
        Span<int> assignment, Span<float> distances = default)
    {
        KernelGuard.NonNegative(n, nameof(n), nameof(Assign));
        KernelGuard.Positive(k, nameof(k), nameof(Assign));
        KernelGuard.Positive(d, nameof(d), nameof(Assign));
        KernelGuard.AtLeast(points, (long)n * d, nameof(points), nameof(Assign));
        KernelGuard.AtLeast(centroids, (long)k * d, nameof(centroids), nameof(Assign));
        if (assignment.Length < n) throw new ArgumentException($"Assign: 'assignment' needs {n} entries, got {assignment.Length}.", nameof(assignment));
        if (!distances.IsEmpty && distances.Length < n) throw new ArgumentException($"Assign: 'distances' needs {n} entries, got {distances.Length}.", nameof(distances));

        if (n == 0) return;
        int blocks = (n + BlockRows - 1) / BlockRows;
        // Threads split the row blocks; each block's GEMM then runs on the thread that owns it (a kernel called from
        // inside a chunk runs inline), followed at once by its argmin while the scores are in cache.
        int chunks = KernelParallelism.Chunks(blocks, 2L * Math.Min(n, BlockRows) * k * d);
        var norms = ArrayPool<float>.Shared.Rent(k);
        int tile = Math.Min(n, BlockRows) * k;
        var scores = ArrayPool<float>.Shared.Rent(chunks * tile + 1);
        try
        {
            for (int j = 0; j < k; j++)
            {
                var c = centroids.Slice(j * d, d);
                float s = 0;
                for (int p = 0; p < d; p++) s += c[p] * c[p];
                norms[j] = s;
            }
            unsafe
            {
                fixed (float* px = points, pc = centroids, pn = norms, ps = scores, pdist = distances)
                fixed (int* pa = assignment)
                {
                    var body = new AssignBody
                    {
                        Points = px, Centroids = pc, Norms = pn, Scores = ps, Assignment = pa, Distances = distances.IsEmpty ? null : pdist,
                        N = n, K = k, D = d, Blocks = blocks, Tile = tile,
                    };
                    KernelParallelism.For(chunks, ref body);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(norms);
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    private unsafe struct AssignBody : IChunkBody
    {
        public float* Points, Centroids, Norms, Scores, Distances;
        public int* Assignment;
        public int N, K, D, Blocks, Tile;

        public readonly void Run(int chunk, int chunks)
        {
            var (b0, b1) = KernelParallelism.Range(Blocks, chunks, chunk);
            int k = K, d = D;
            float* scores = Scores + (long)chunk * Tile;
            for (int blk = b0; blk < b1; blk++)
            {
                int start = blk * BlockRows, rows = Math.Min(BlockRows, N - start);
                GemmKernels.MatMulNT(new ReadOnlySpan<float>(Points + (long)start * d, rows * d), new ReadOnlySpan<float>(Centroids, k * d),
                    new Span<float>(scores, rows * k), rows, k, d, accumulate: false);
                for (int i = 0; i < rows; i++)
                {
                    int best = ArgminRow(scores + (long)i * k, Norms, k, out float bestValue);
                    Assignment[start + i] = best;
                    if (Distances != null) Distances[start + i] = bestValue;
                }
            }
        }
    }

    /// <summary>
    /// argmin_j (norms[j] − 2·s[j]), the lowest j on ties. The AVX-512 path keeps the running minimum and its index per
    /// lane (a lane only moves on a strict improvement, so it keeps its earliest j) and then takes, among the lanes
    /// holding the minimum, the lowest index: one pass, no rescan. norms − 2s is computed as one fused multiply-add,
    /// which rounds exactly like the scalar form (2s is exact).
    /// </summary>
    private static unsafe int ArgminRow(float* s, float* norms, int k, out float bestValue)
    {
        float m = norms[0] - 2f * s[0];
        int best = 0, j = 1;
        if (Vector512.IsHardwareAccelerated && k >= 16)
        {
            var minus2 = Vector512.Create(-2f);
            var vmin = Vector512.Create(float.PositiveInfinity);
            var vidx = Vector512<int>.Zero;
            var idx = Vector512<int>.Indices;
            var step = Vector512.Create(16);
            for (j = 0; j + 16 <= k; j += 16, idx += step)
            {
                var v = Vector512.FusedMultiplyAdd(minus2, Vector512.Load(s + j), Vector512.Load(norms + j));
                var lt = Vector512.LessThan(v, vmin);
                vmin = Vector512.ConditionalSelect(lt, v, vmin);
                vidx = Vector512.ConditionalSelect(lt.AsInt32(), idx, vidx);
            }
            m = vmin[0];
            best = vidx[0];
            for (int l = 1; l < 16; l++)
            {
                float v = vmin[l];
                int i = vidx[l];
                if (v < m || (v == m && i < best)) { m = v; best = i; }
            }
        }
        for (; j < k; j++)
        {
            float v = norms[j] - 2f * s[j];
            if (v < m) { m = v; best = j; }
        }
        bestValue = m;
        return best;
    }

    /// <summary>
    /// Centroid update: c_j = mean of the points assigned to j; an empty cluster keeps its centroid.
    /// <paramref name="counts"/> (length k) receives the cluster sizes. Sums are accumulated in float64
    /// per cluster so the result does not depend on point order within float32 rounding.
    /// </summary>
    public static void Update(ReadOnlySpan<float> points, ReadOnlySpan<int> assignment, int n, int k, int d,
        Span<float> centroids, Span<int> counts)
    {
        KernelGuard.NonNegative(n, nameof(n), nameof(Update));
        KernelGuard.Positive(k, nameof(k), nameof(Update));
        KernelGuard.Positive(d, nameof(d), nameof(Update));
        KernelGuard.AtLeast(points, (long)n * d, nameof(points), nameof(Update));
        KernelGuard.AtLeast(assignment, n, nameof(assignment), nameof(Update));
        KernelGuard.AtLeast(centroids, (long)k * d, nameof(centroids), nameof(Update));
        if (counts.Length < k) throw new ArgumentException($"Update: 'counts' needs {k} entries, got {counts.Length}.", nameof(counts));

        if (n == 0) { counts.Slice(0, k).Clear(); return; }
        // Each chunk of points sums into its own float64 [k, d] block; the blocks are then added in chunk order, so the
        // result depends only on n and the thread count, never on timing.
        int chunks = KernelParallelism.Chunks(n, d);
        var sums = ArrayPool<double>.Shared.Rent(chunks * k * d);
        var partCounts = ArrayPool<int>.Shared.Rent(chunks * k);
        var firstBad = ArrayPool<long>.Shared.Rent(chunks);
        try
        {
            unsafe
            {
                fixed (float* px = points)
                fixed (int* pa = assignment, pcnt = partCounts)
                fixed (double* psum = sums)
                fixed (long* pbad = firstBad)
                {
                    var body = new UpdateBody { Points = px, Assignment = pa, Sums = psum, Counts = pcnt, FirstBad = pbad, N = n, K = k, D = d };
                    KernelParallelism.For(chunks, ref body);
                }
            }
            long bad = long.MaxValue;
            for (int c = 0; c < chunks; c++) bad = Math.Min(bad, firstBad[c]);
            if (bad != long.MaxValue)
                throw new ArgumentOutOfRangeException(nameof(assignment), assignment[(int)bad], $"Update: assignment[{bad}] = {assignment[(int)bad]} is outside [0, {k}).");
            for (int j = 0; j < k; j++)
            {
                int count = 0;
                for (int c = 0; c < chunks; c++) count += partCounts[c * k + j];
                counts[j] = count;
                if (count == 0) continue;
                double inv = 1.0 / count;
                var cj = centroids.Slice(j * d, d);
                for (int p = 0; p < d; p++)
                {
                    double acc = 0;
                    for (int c = 0; c < chunks; c++) acc += sums[((long)c * k + j) * d + p];
                    cj[p] = (float)(acc * inv);
                }
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(sums);
            ArrayPool<int>.Shared.Return(partCounts);
            ArrayPool<long>.Shared.Return(firstBad);
        }
    }

    private unsafe struct UpdateBody : IChunkBody
    {
        public float* Points;
        public int* Assignment, Counts;
        public double* Sums;
        public long* FirstBad;
        public int N, K, D;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(N, chunks, chunk);
            int k = K, d = D;
            double* sums = Sums + (long)chunk * k * d;
            int* counts = Counts + (long)chunk * k;
            float* points = Points;
            int* assignment = Assignment;
            new Span<double>(sums, k * d).Clear();
            new Span<int>(counts, k).Clear();
            long bad = long.MaxValue;
            for (int i = start; i < end; i++)
            {
                int j = assignment[i];
                if ((uint)j >= (uint)k) { bad = Math.Min(bad, i); continue; }
                counts[j]++;
                float* x = points + (long)i * d;
                double* acc = sums + (long)j * d;
                int p = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    for (; p + 16 <= d; p += 16)
                    {
                        var (lo, hi) = Vector512.Widen(Vector512.Load(x + p));
                        (Vector512.Load(acc + p) + lo).Store(acc + p);
                        (Vector512.Load(acc + p + 8) + hi).Store(acc + p + 8);
                    }
                }
                for (; p < d; p++) acc[p] += x[p];
            }
            FirstBad[chunk] = bad;
        }
    }
}

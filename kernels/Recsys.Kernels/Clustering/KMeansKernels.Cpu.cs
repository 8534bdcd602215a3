using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
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

        var norms = ArrayPool<float>.Shared.Rent(k);
        var scores = ArrayPool<float>.Shared.Rent(Math.Min(n, BlockRows) * k + 1);
        try
        {
            for (int j = 0; j < k; j++)
            {
                var c = centroids.Slice(j * d, d);
                float s = 0;
                for (int p = 0; p < d; p++) s += c[p] * c[p];
                norms[j] = s;
            }
            for (int start = 0; start < n; start += BlockRows)
            {
                int rows = Math.Min(BlockRows, n - start);
                GemmKernels.MatMulNT(points.Slice(start * d, rows * d), centroids, scores, rows, k, d, accumulate: false);
                ArgminRows(scores, norms, rows, k, assignment.Slice(start, rows), distances.IsEmpty ? default : distances.Slice(start, rows));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(norms);
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    private static void ArgminRows(ReadOnlySpan<float> scores, ReadOnlySpan<float> norms, int rows, int k, Span<int> assignment, Span<float> distances)
    {
        for (int i = 0; i < rows; i++)
        {
            var s = scores.Slice(i * k, k);
            int best = 0;
            float bestValue = norms[0] - 2f * s[0];
            int j = 1;
            if (Vector.IsHardwareAccelerated && k >= 2 * Vector<float>.Count)
            {
                // Vector pass finds the minimum value; a scalar pass finds its first index (ties → lowest j).
                var vmin = new Vector<float>(float.PositiveInfinity);
                var two = new Vector<float>(2f);
                ref float sr = ref MemoryMarshal.GetReference(s);
                ref float nr = ref MemoryMarshal.GetReference(norms);
                int jj = 0;
                for (; jj <= k - Vector<float>.Count; jj += Vector<float>.Count)
                    vmin = Vector.Min(vmin, Vector.LoadUnsafe(ref nr, (nuint)jj) - two * Vector.LoadUnsafe(ref sr, (nuint)jj));
                float m = float.PositiveInfinity;
                for (int q = 0; q < Vector<float>.Count; q++) m = MathF.Min(m, vmin[q]);
                for (; jj < k; jj++) m = MathF.Min(m, norms[jj] - 2f * s[jj]);
                for (int q = 0; q < k; q++)
                    if (norms[q] - 2f * s[q] == m) { best = q; bestValue = m; break; }
                j = k;
            }
            for (; j < k; j++)
            {
                float v = norms[j] - 2f * s[j];
                if (v < bestValue) { bestValue = v; best = j; }
            }
            assignment[i] = best;
            if (!distances.IsEmpty) distances[i] = bestValue;
        }
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

        var sums = ArrayPool<double>.Shared.Rent(k * d);
        try
        {
            Array.Clear(sums, 0, k * d);
            counts.Slice(0, k).Clear();
            for (int i = 0; i < n; i++)
            {
                int j = assignment[i];
                if ((uint)j >= (uint)k)
                    throw new ArgumentOutOfRangeException(nameof(assignment), j, $"Update: assignment[{i}] = {j} is outside [0, {k}).");
                counts[j]++;
                var x = points.Slice(i * d, d);
                var acc = sums.AsSpan(j * d, d);
                for (int p = 0; p < d; p++) acc[p] += x[p];
            }
            for (int j = 0; j < k; j++)
            {
                if (counts[j] == 0) continue;
                double inv = 1.0 / counts[j];
                var c = centroids.Slice(j * d, d);
                var acc = sums.AsSpan(j * d, d);
                for (int p = 0; p < d; p++) c[p] = (float)(acc[p] * inv);
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(sums);
        }
    }
}

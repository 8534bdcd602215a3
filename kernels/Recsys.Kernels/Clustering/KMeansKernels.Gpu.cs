using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Clustering;

/// <summary>
/// Lloyd's k-means on the GPU, the twin of <see cref="KMeansKernels"/>. Assignment: scores = X·Cᵀ (tiled GEMM), then
/// argmin_j ‖c_j‖² − 2 x·c_j per row (ties → lowest index). Update: points are scattered into per-cluster sums and
/// counts with atomics (float summation order varies run to run), then divided; empty clusters keep their centroid.
/// <see cref="Fit"/> and <see cref="FitHierarchical"/> orchestrate iterations from the host.
/// </summary>
public static class KMeansGpuKernels
{
    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>> Norms = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> Argmin = null!;
        internal Action<Index1D, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>> Scatter = null!;
        internal Action<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>> Divide = null!;

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            return new KernelSet
            {
                Norms = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>>(NormsKernel),
                Argmin = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(ArgminKernel),
                Scatter = acc.LoadAutoGroupedStreamKernel<Index1D, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>>(ScatterKernel),
                Divide = acc.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>>(DivideKernel),
            };
        }
    }

    /// <summary>
    /// assignment[i] = argmin_j ‖points[i] − centroids[j]‖² for points [n, d], centroids [k, d]. <paramref name="distances"/>
    /// (optional, empty = none) receives ‖c_j‖² − 2 x·c_j of the winner (add ‖x‖² for the squared distance).
    /// </summary>
    public static void Assign(GpuDevice device, ArrayView<float> points, ArrayView<float> centroids, int n, int k, int d,
        ArrayView<int> assignment, ArrayView<float> distances)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Assign));
        GpuKernelUtil.Positive(k, nameof(k), nameof(Assign));
        GpuKernelUtil.Positive(d, nameof(d), nameof(Assign));
        GpuKernelUtil.AtLeast(points, (long)n * d, nameof(points), nameof(Assign));
        GpuKernelUtil.AtLeast(centroids, (long)k * d, nameof(centroids), nameof(Assign));
        GpuKernelUtil.AtLeast(assignment, n, nameof(assignment), nameof(Assign));
        if (distances.Length > 0) GpuKernelUtil.AtLeast(distances, n, nameof(distances), nameof(Assign));
        if (n == 0) return;
        var set = device.Kernels<KernelSet>();
        using var norms = device.Pool.Rent<float>(k);
        using var scores = device.Pool.Rent<float>((long)n * k);
        set.Norms(k, d, centroids, norms.View);
        GemmGpuKernels.MatMulNT(device, points, centroids, scores.View, n, k, d, accumulate: false);
        set.Argmin(n, k, scores.View, norms.View, assignment, distances.Length > 0 ? distances : norms.View, distances.Length > 0 ? 1 : 0);
    }

    /// <summary>
    /// centroids[j] = mean of the points assigned to j; counts[j] = their number; a cluster with no points keeps its centroid.
    /// Assignments outside [0, k) are ignored.
    /// </summary>
    public static void Update(GpuDevice device, ArrayView<float> points, ArrayView<int> assignment, int n, int k, int d,
        ArrayView<float> centroids, ArrayView<int> counts)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(n, nameof(n), nameof(Update));
        GpuKernelUtil.Positive(k, nameof(k), nameof(Update));
        GpuKernelUtil.Positive(d, nameof(d), nameof(Update));
        GpuKernelUtil.AtLeast(points, (long)n * d, nameof(points), nameof(Update));
        GpuKernelUtil.AtLeast(assignment, n, nameof(assignment), nameof(Update));
        GpuKernelUtil.AtLeast(centroids, (long)k * d, nameof(centroids), nameof(Update));
        GpuKernelUtil.AtLeast(counts, k, nameof(counts), nameof(Update));
        var set = device.Kernels<KernelSet>();
        using var sums = device.Pool.Rent<float>((long)k * d);
        sums.View.MemSetToZero(device.Stream);
        counts.SubView(0, k).MemSetToZero(device.Stream);
        if (n > 0) set.Scatter(n * d, d, k, points, assignment, sums.View, counts);
        set.Divide(k * d, d, sums.View, counts, centroids);
    }

    /// <summary>
    /// Lloyd's k-means from k points drawn without replacement (seeded; drawn with wrap-around when n &lt; k), then
    /// <paramref name="iterations"/> rounds of assign + update and a final assign, so <paramref name="assignment"/> matches
    /// <paramref name="centroids"/>. Waits for the device.
    /// </summary>
    public static void Fit(GpuDevice device, ArrayView<float> points, int n, int k, int d, int iterations, int seed,
        ArrayView<float> centroids, ArrayView<int> assignment)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.Positive(n, nameof(n), nameof(Fit));
        GpuKernelUtil.NonNegative(iterations, nameof(iterations), nameof(Fit));
        GpuKernelUtil.AtLeast(points, (long)n * d, nameof(points), nameof(Fit));
        GpuKernelUtil.AtLeast(centroids, (long)k * d, nameof(centroids), nameof(Fit));
        var order = Enumerable.Range(0, n).ToArray();
        new Random(seed).Shuffle(order);
        for (int j = 0; j < k; j++)
            centroids.SubView((long)j * d, d).CopyFrom(device.Stream, points.SubView((long)order[j % n] * d, d));
        using var counts = device.Pool.Rent<int>(k);
        for (int it = 0; it < iterations; it++)
        {
            Assign(device, points, centroids, n, k, d, assignment, ArrayView<float>.Empty);
            Update(device, points, assignment, n, k, d, centroids, counts.View);
        }
        Assign(device, points, centroids, n, k, d, assignment, ArrayView<float>.Empty);
        device.Synchronize();
    }

    /// <summary>Two-level clustering: k1 coarse clusters, then k2 clusters inside each coarse cluster on its members.</summary>
    public sealed record HierarchicalResult(
        float[] CoarseCentroids, // [k1, d]
        float[] FineCentroids,   // [k1 * k2, d]: fine cluster c2 of coarse cluster c1 is row c1 * k2 + c2
        int[] CoarseAssignment,  // [n] in [0, k1)
        int[] FineAssignment);   // [n] in [0, k1 * k2), always inside the point's coarse cluster

    /// <summary>
    /// Hierarchical k-means orchestrated from the host: a coarse <see cref="Fit"/>, then one <see cref="Fit"/> per coarse
    /// cluster on its gathered members. A coarse cluster with no members gets k2 copies of its centroid.
    /// </summary>
    public static HierarchicalResult FitHierarchical(GpuDevice device, ArrayView<float> points, int n, int d, int k1, int k2, int iterations, int seed)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.Positive(k1, nameof(k1), nameof(FitHierarchical));
        GpuKernelUtil.Positive(k2, nameof(k2), nameof(FitHierarchical));
        GpuKernelUtil.Positive(d, nameof(d), nameof(FitHierarchical));
        using var coarseC = device.Pool.Rent<float>((long)k1 * d);
        using var coarseA = device.Pool.Rent<int>(n);
        Fit(device, points, n, k1, d, iterations, seed, coarseC.View, coarseA.View);
        var coarseCentroids = new float[k1 * d];
        var coarseAssignment = new int[n];
        var host = new float[(long)n * d];
        coarseC.View.CopyToCPU(device.Stream, coarseCentroids);
        coarseA.View.CopyToCPU(device.Stream, coarseAssignment);
        points.SubView(0, (long)n * d).CopyToCPU(device.Stream, host);
        device.Synchronize();

        var fineCentroids = new float[k1 * k2 * d];
        var fineAssignment = new int[n];
        for (int c = 0; c < k1; c++)
        {
            var members = Enumerable.Range(0, n).Where(i => coarseAssignment[i] == c).ToArray();
            if (members.Length == 0)
            {
                for (int j = 0; j < k2; j++) Array.Copy(coarseCentroids, c * d, fineCentroids, (c * k2 + j) * d, d);
                continue;
            }
            var gathered = new float[members.Length * d];
            for (int m = 0; m < members.Length; m++) Array.Copy(host, (long)members[m] * d, gathered, (long)m * d, d);
            using var subPoints = device.Pool.Rent<float>(gathered.Length);
            using var subC = device.Pool.Rent<float>((long)k2 * d);
            using var subA = device.Pool.Rent<int>(members.Length);
            subPoints.View.CopyFromCPU(device.Stream, gathered);
            Fit(device, subPoints.View, members.Length, k2, d, iterations, seed + 1 + c, subC.View, subA.View);
            var c2 = new float[k2 * d];
            var a2 = new int[members.Length];
            subC.View.CopyToCPU(device.Stream, c2);
            subA.View.CopyToCPU(device.Stream, a2);
            device.Synchronize();
            Array.Copy(c2, 0, fineCentroids, c * k2 * d, k2 * d);
            for (int m = 0; m < members.Length; m++) fineAssignment[members[m]] = c * k2 + a2[m];
        }
        return new HierarchicalResult(coarseCentroids, fineCentroids, coarseAssignment, fineAssignment);
    }

    private static void NormsKernel(Index1D j, int d, ArrayView<float> centroids, ArrayView<float> norms)
    {
        float s = 0;
        for (int p = 0; p < d; p++) { float v = centroids[(long)j.X * d + p]; s += v * v; }
        norms[j] = s;
    }

    private static void ArgminKernel(Index1D i, int k, ArrayView<float> scores, ArrayView<float> norms, ArrayView<int> assignment,
        ArrayView<float> distances, int writeDistances)
    {
        long r0 = (long)i.X * k;
        int best = 0;
        float bestScore = norms[0] - 2f * scores[r0];
        for (int j = 1; j < k; j++)
        {
            float s = norms[j] - 2f * scores[r0 + j];
            if (s < bestScore) { bestScore = s; best = j; }
        }
        assignment[i] = best;
        if (writeDistances != 0) distances[i] = bestScore;
    }

    private static void ScatterKernel(Index1D idx, int d, int k, ArrayView<float> points, ArrayView<int> assignment, ArrayView<float> sums, ArrayView<int> counts)
    {
        int i = idx / d, p = idx % d;
        int a = assignment[i];
        if (a < 0 || a >= k) return;
        Atomic.Add(ref sums[(long)a * d + p], points[idx]);
        if (p == 0) Atomic.Add(ref counts[a], 1);
    }

    private static void DivideKernel(Index1D idx, int d, ArrayView<float> sums, ArrayView<int> counts, ArrayView<float> centroids)
    {
        int c = counts[idx / d];
        if (c > 0) centroids[idx] = sums[idx] / c;
    }
}

using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Recsys.Kernels.Clustering;

namespace Recsys.Perf;

/// <summary>
/// Workload W7: one Lloyd step of k-means (assignment, then centroid update) on 200,000 points x 64 drawn from a
/// 256-component Gaussian mixture, 256 centroids. The GFLOP/s column counts the distance GEMM only
/// (2·n·k·d = 6.55 GFLOP), as the peer does. Baseline: the scalar formula (argmin over ‖c‖² − 2x·c, then means).
/// </summary>
[Config(typeof(ClusteringConfig))]
public class ClusteringBenchmarks
{
    public const int N = 200_000, K = 256, D = 64;

    private float[] _points = null!, _centroids = null!, _start = null!;
    private int[] _assignment = null!, _counts = null!;
    private double[] _sums = null!;

    [GlobalSetup]
    public void Setup()
    {
        var r = new Random(7);
        var means = new float[K * D];
        for (int i = 0; i < means.Length; i++) means[i] = (float)(NextNormal(r) * 3);
        _points = new float[N * D];
        for (int i = 0; i < N; i++)
        {
            int c = r.Next(K);
            for (int p = 0; p < D; p++) _points[i * D + p] = means[c * D + p] + (float)NextNormal(r);
        }
        _start = _points.AsSpan(0, K * D).ToArray();
        _centroids = (float[])_start.Clone();
        _assignment = new int[N];
        _counts = new int[K];
        _sums = new double[K * D];
    }

    private static double NextNormal(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    // Every step starts from the same centroids, so each method times the same work.
    [IterationSetup]
    public void ResetCentroids() => _start.CopyTo(_centroids, 0);

    /// <summary>Scalar, one thread: for each point the nearest centroid by ‖c‖² − 2x·c, then per-cluster means in float64.</summary>
    [Benchmark(Baseline = true)]
    public void LloydStepScalar()
    {
        var norms = new float[K];
        for (int j = 0; j < K; j++)
        {
            float s = 0;
            for (int p = 0; p < D; p++) s += _centroids[j * D + p] * _centroids[j * D + p];
            norms[j] = s;
        }
        for (int i = 0; i < N; i++)
        {
            int best = 0;
            float bestScore = float.PositiveInfinity;
            for (int j = 0; j < K; j++)
            {
                float dot = 0;
                for (int p = 0; p < D; p++) dot += _points[i * D + p] * _centroids[j * D + p];
                float score = norms[j] - 2 * dot;
                if (score < bestScore) { bestScore = score; best = j; }
            }
            _assignment[i] = best;
        }
        Array.Clear(_sums);
        Array.Clear(_counts);
        for (int i = 0; i < N; i++)
        {
            int c = _assignment[i];
            _counts[c]++;
            for (int p = 0; p < D; p++) _sums[c * D + p] += _points[i * D + p];
        }
        for (int j = 0; j < K; j++)
            if (_counts[j] > 0)
                for (int p = 0; p < D; p++) _centroids[j * D + p] = (float)(_sums[j * D + p] / _counts[j]);
    }

    /// <summary>The engine's kernels: blocked GEMM + argmin assignment, then the parallel update.</summary>
    [Benchmark]
    public void LloydStep()
    {
        KMeansKernels.Assign(_points, _centroids, N, K, D, _assignment);
        KMeansKernels.Update(_points, _assignment, N, K, D, _centroids, _counts);
    }
}

internal sealed class ClusteringConfig : ManualConfig
{
    public ClusteringConfig() => this.AddSimdJobs().AddColumn(
        new GflopsColumn("2·n·k·d", _ => 2.0 * ClusteringBenchmarks.N * ClusteringBenchmarks.K * ClusteringBenchmarks.D));
}

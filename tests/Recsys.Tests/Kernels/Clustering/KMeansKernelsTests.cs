using NUnit.Framework;
using Recsys.Kernels.Clustering;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Clustering;

[Category("Kernel")]
public class KMeansKernelsTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        foreach (var (n, k, d) in new[] { (1, 1, 1), (5, 3, 7), (33, 17, 16), (67, 31, 33), (129, 65, 63), (200, 8, 67), (1100, 40, 5) })
            yield return new TestCaseData(n, k, d).SetName($"Assign_n{n}_k{k}_d{d}_MatchesFloat64Reference");
    }

    [TestCaseSource(nameof(Shapes))]
    public void Assign_RandomData_MatchesFloat64Reference(int n, int k, int d)
    {
        var x = TestData.Floats(n * d, 1);
        var c = TestData.Floats(k * d, 2);
        var got = new int[n];
        var dist = new float[n];
        KMeansKernels.Assign(x, c, n, k, d, got, dist);
        for (int i = 0; i < n; i++)
        {
            // float64 true squared distances; the kernel's pick must be optimal within float32 rounding.
            var dd = new double[k];
            for (int j = 0; j < k; j++)
            {
                double s = 0;
                for (int p = 0; p < d; p++) { double diff = x[i * d + p] - c[j * d + p]; s += diff * diff; }
                dd[j] = s;
            }
            double best = dd.Min();
            Assert.That(dd[got[i]], Is.LessThanOrEqualTo(best + 1e-4 * (1 + best)), $"row {i}: picked {got[i]} at {dd[got[i]]}, best {best}");
            double xnorm = 0;
            for (int p = 0; p < d; p++) xnorm += (double)x[i * d + p] * x[i * d + p];
            Assert.That(dist[i] + xnorm, Is.EqualTo(dd[got[i]]).Within(1e-3 * (1 + best)));
        }
    }

    [Test]
    public void Update_RandomAssignment_MeansPerClusterAndEmptyKept()
    {
        int n = 101, k = 7, d = 13;
        var x = TestData.Floats(n * d, 3);
        var a = TestData.Ints(n, k - 1, 4); // cluster k-1 stays empty
        var c = TestData.Floats(k * d, 5);
        var emptyBefore = c.AsSpan((k - 1) * d, d).ToArray();
        var counts = new int[k];
        KMeansKernels.Update(x, a, n, k, d, c, counts);
        for (int j = 0; j < k - 1; j++)
        {
            var members = Enumerable.Range(0, n).Where(i => a[i] == j).ToArray();
            Assert.That(counts[j], Is.EqualTo(members.Length));
            var expected = new double[d];
            foreach (var i in members) for (int p = 0; p < d; p++) expected[p] += x[i * d + p] / (double)members.Length;
            TestData.AssertClose(c.AsSpan(j * d, d), expected, 1e-5, 1e-6, $"centroid {j}");
        }
        Assert.That(counts[k - 1], Is.EqualTo(0));
        Assert.That(c.AsSpan((k - 1) * d, d).ToArray(), Is.EqualTo(emptyBefore));
    }

    [Test]
    public void Update_ManyPointsAcrossThreads_MatchesFloat64Means([Values(1, 2)] int threads)
    {
        using (KernelThreads.Use(threads))
        {
            int n = 30_011, k = 9, d = 37; // d hits the 16-wide loop and the scalar tail
            var x = TestData.Floats(n * d, 8);
            var a = TestData.Ints(n, k, 9);
            var c = new float[k * d];
            var counts = new int[k];
            KMeansKernels.Update(x, a, n, k, d, c, counts);
            var expected = new double[k * d];
            var expCounts = new int[k];
            for (int i = 0; i < n; i++) { expCounts[a[i]]++; for (int p = 0; p < d; p++) expected[a[i] * d + p] += x[i * d + p]; }
            for (int j = 0; j < k; j++) for (int p = 0; p < d; p++) expected[j * d + p] /= expCounts[j];
            Assert.That(counts, Is.EqualTo(expCounts));
            TestData.AssertClose(c, expected, 1e-6, 1e-6, $"centroids, {threads} thread(s)");
        }
    }

    [Test]
    public void Update_SeveralOutOfRangeAcrossChunks_ThrowsNamingTheFirst()
    {
        int n = 40_000, k = 4, d = 16;
        var a = new int[n];
        a[39_000] = 9;
        a[20_001] = -1;
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => KMeansKernels.Update(new float[n * d], a, n, k, d, new float[k * d], new int[k]));
        Assert.That(ex!.Message, Does.Contain("assignment[20001] = -1"));
    }

    [Test]
    public void Assign_TiedCentroids_PicksTheLowestIndex([Values(5, 16, 40)] int k)
    {
        // Centroids j and j + 1 identical for every even j: each point's best pair is a tie the lower index must win.
        int n = 50, d = 8;
        var x = TestData.Floats(n * d, 11);
        var c = TestData.Floats(k * d, 12);
        for (int j = 0; j + 1 < k; j += 2) Array.Copy(c, j * d, c, (j + 1) * d, d);
        var got = new int[n];
        KMeansKernels.Assign(x, c, n, k, d, got);
        for (int i = 0; i < n; i++)
            if (got[i] % 2 == 1)
                Assert.Fail($"row {i}: picked {got[i]}, but its twin {got[i] - 1} scores the same and has the lower index");
    }

    [Test]
    public void Update_AssignmentOutOfRange_ThrowsNamingIndex()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            KMeansKernels.Update(new float[4], new[] { 0, 5 }, 2, 2, 2, new float[4], new int[2]));
        Assert.That(ex!.Message, Does.Contain("assignment[1] = 5"));
    }

    [Test]
    public void LloydSteps_GaussianMixture_InertiaNeverIncreases()
    {
        int n = 2000, k = 16, d = 8;
        var rng = new Recsys.Engine.Core.Rng(7);
        var x = new float[n * d];
        for (int i = 0; i < n; i++) for (int p = 0; p < d; p++) x[i * d + p] = (float)(rng.Normal() * 0.1 + (i % k));
        var c = new float[k * d];
        Array.Copy(x, c, k * d);
        var a = new int[n];
        var counts = new int[k];
        double last = double.MaxValue;
        for (int step = 0; step < 5; step++)
        {
            KMeansKernels.Assign(x, c, n, k, d, a);
            double inertia = 0;
            for (int i = 0; i < n; i++) for (int p = 0; p < d; p++) { double diff = x[i * d + p] - c[a[i] * d + p]; inertia += diff * diff; }
            Assert.That(inertia, Is.LessThanOrEqualTo(last * (1 + 1e-6)));
            last = inertia;
            KMeansKernels.Update(x, a, n, k, d, c, counts);
        }
    }
}

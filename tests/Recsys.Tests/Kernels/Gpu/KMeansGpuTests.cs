using NUnit.Framework;
using Recsys.Kernels.Clustering;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gpu;

public abstract partial class GpuKernelTests
{
    private static double SqDist(float[] x, int i, float[] c, int j, int d)
    {
        double s = 0;
        for (int p = 0; p < d; p++) { double v = x[i * d + p] - c[j * d + p]; s += v * v; }
        return s;
    }

    [TestCase(1, 1, 1)]
    [TestCase(5, 3, 7)]
    [TestCase(33, 17, 16)]
    [TestCase(40, 8, 67)]
    public void KMeansAssign_RandomData_PicksNearestCentroid(int n, int k, int d)
    {
        var x = TestData.Floats(n * d, 1);
        var c = TestData.Floats(k * d, 2);
        var a = Upload(new int[n]);
        var dist = Zeros(n);
        KMeansGpuKernels.Assign(Device, Upload(x), Upload(c), n, k, d, a, dist);
        var got = Download(a);
        var gd = Download(dist);
        for (int i = 0; i < n; i++)
        {
            var dd = Enumerable.Range(0, k).Select(j => SqDist(x, i, c, j, d)).ToArray();
            double best = dd.Min();
            Assert.That(dd[got[i]], Is.LessThanOrEqualTo(best + 1e-4 * (1 + best)), $"row {i}");
            double xn = 0;
            for (int p = 0; p < d; p++) xn += (double)x[i * d + p] * x[i * d + p];
            Assert.That(gd[i] + xn, Is.EqualTo(dd[got[i]]).Within(1e-3 * (1 + best)));
        }
    }

    [Test]
    public void KMeansAssign_TiedCentroids_PicksLowestIndex()
    {
        var c = new float[] { 1, 2, 5, 5, 1, 2 }; // centroids 0 and 2 identical
        var a = Upload(new int[2]);
        KMeansGpuKernels.Assign(Device, Upload(new float[] { 1, 2, 1.1f, 2 }), Upload(c), 2, 3, 2, a, default);
        Assert.That(Download(a), Is.EqualTo(new[] { 0, 0 }));
    }

    [Test]
    public void KMeansUpdate_RandomAssignment_MeansPerClusterAndEmptyKept()
    {
        int n = 41, k = 7, d = 13;
        var x = TestData.Floats(n * d, 3);
        var asg = TestData.Ints(n, k - 1, 4); // cluster k-1 stays empty
        var c0 = TestData.Floats(k * d, 5);
        var e = c0.Select(v => (double)v).ToArray();
        var cnt = new int[k];
        for (int j = 0; j < k - 1; j++)
        {
            var members = Enumerable.Range(0, n).Where(i => asg[i] == j).ToArray();
            cnt[j] = members.Length;
            if (members.Length == 0) continue;
            for (int p = 0; p < d; p++) e[j * d + p] = members.Average(i => (double)x[i * d + p]);
        }
        var c = Upload(c0);
        var counts = Upload(new int[k]);
        KMeansGpuKernels.Update(Device, Upload(x), Upload(asg), n, k, d, c, counts);
        TestData.AssertClose(Download(c), e, Rtol, Atol, "centroids");
        Assert.That(Download(counts), Is.EqualTo(cnt));
    }

    [Test]
    public void KMeansHierarchical_TwoLevels_FineClustersNestedAndNearest()
    {
        int n = 60, d = 5, k1 = 3, k2 = 4;
        var x = TestData.Floats(n * d, 6);
        var r = KMeansGpuKernels.FitHierarchical(Device, Upload(x), n, d, k1, k2, iterations: 4, seed: 7);
        for (int i = 0; i < n; i++)
        {
            int c1 = r.CoarseAssignment[i];
            var dd = Enumerable.Range(0, k1).Select(j => SqDist(x, i, r.CoarseCentroids, j, d)).ToArray();
            Assert.That(dd[c1], Is.LessThanOrEqualTo(dd.Min() + 1e-4), $"coarse row {i}");
            int f = r.FineAssignment[i];
            Assert.That(f / k2, Is.EqualTo(c1), $"fine cluster of row {i} outside its coarse cluster");
            var fd = Enumerable.Range(c1 * k2, k2).Select(j => SqDist(x, i, r.FineCentroids, j, d)).ToArray();
            Assert.That(fd[f - c1 * k2], Is.LessThanOrEqualTo(fd.Min() + 1e-4), $"fine row {i}");
        }
        Assert.That(r.CoarseAssignment.Distinct().Count(), Is.GreaterThan(1));
    }
}

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

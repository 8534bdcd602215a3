using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Normalization;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Normalization;

[Category("Kernel")]
public class LayerNormKernelTests
{
    [TestCase(1), TestCase(3), TestCase(7), TestCase(15), TestCase(16), TestCase(17)]
    [TestCase(31), TestCase(33), TestCase(63), TestCase(64), TestCase(65), TestCase(67), TestCase(429)]
    public void ForwardAndBackward_OddSizes_MatchFloat64Reference(int d)
    {
        const float eps = 1e-5f;
        foreach (int rows in new[] { 1, 3, 5 })
        {
            // An offset of 3 checks that the variance does not cancel.
            var x = TestData.Floats(rows * d, 1 + d).Select(v => v + 3f).ToArray();
            var gamma = TestData.Floats(d, 2); var beta = TestData.Floats(d, 3);
            var y = new float[rows * d]; var mean = new float[rows]; var rstd = new float[rows];
            LayerNormKernels.Forward(x, gamma, beta, y, mean, rstd, rows, d, eps);

            var dy = TestData.Floats(rows * d, 4);
            var dx = TestData.Floats(rows * d, 5); var dg = TestData.Floats(d, 6); var db = TestData.Floats(d, 7);
            var ey = new double[rows * d]; var em = new double[rows]; var er = new double[rows];
            var edx = dx.Select(v => (double)v).ToArray(); var edg = dg.Select(v => (double)v).ToArray(); var edb = db.Select(v => (double)v).ToArray();
            for (int r = 0; r < rows; r++)
            {
                double mu = 0, var = 0;
                for (int i = 0; i < d; i++) mu += x[r * d + i];
                mu /= d;
                for (int i = 0; i < d; i++) var += (x[r * d + i] - mu) * (x[r * d + i] - mu);
                var /= d;
                double rs = 1 / Math.Sqrt(var + eps);
                em[r] = mu; er[r] = rs;
                double mg = 0, mgx = 0;
                for (int i = 0; i < d; i++)
                {
                    double xh = (x[r * d + i] - mu) * rs;
                    ey[r * d + i] = xh * gamma[i] + beta[i];
                    double g = dy[r * d + i] * gamma[i];
                    mg += g; mgx += g * xh;
                    edg[i] += dy[r * d + i] * xh;
                    edb[i] += dy[r * d + i];
                }
                mg /= d; mgx /= d;
                for (int i = 0; i < d; i++)
                {
                    double xh = (x[r * d + i] - mu) * rs;
                    edx[r * d + i] += rs * (dy[r * d + i] * gamma[i] - mg - xh * mgx);
                }
            }
            TestData.AssertClose(y, ey, 1e-4, 1e-4, $"y rows={rows} d={d}");
            TestData.AssertClose(mean, em, 1e-5, 1e-5, $"mean rows={rows} d={d}");
            TestData.AssertClose(rstd, er, 1e-4, 1e-5, $"rstd rows={rows} d={d}");
            LayerNormKernels.Backward(dy, x, gamma, mean, rstd, dx, dg, db, rows, d);
            TestData.AssertClose(dx, edx, 1e-3, 1e-3, $"dx rows={rows} d={d}");
            TestData.AssertClose(dg, edg, 1e-4, 1e-4, $"dgamma rows={rows} d={d}");
            TestData.AssertClose(db, edb, 1e-5, 1e-5, $"dbeta rows={rows} d={d}");
        }
    }

    [Test]
    public void Backward_ManyRows_ParamGradientsMatchReferenceAndAreThreadCountIndependent([Values(64, 67)] int d)
    {
        // 2,500 rows: three blocks of the dγ / dβ sums, the last one partial; only dγ and dβ requested, then all three.
        const int rows = 2500;
        var x = TestData.Floats(rows * d, 11).Select(v => v + 1f).ToArray();
        var gamma = TestData.Floats(d, 12); var beta = TestData.Floats(d, 13);
        var y = new float[rows * d]; var mean = new float[rows]; var rstd = new float[rows];
        LayerNormKernels.Forward(x, gamma, beta, y, mean, rstd, rows, d, 1e-5f);
        var dy = TestData.Floats(rows * d, 14);
        var edg = new double[d]; var edb = new double[d];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < d; i++)
            {
                edg[i] += dy[r * d + i] * (x[r * d + i] - mean[r]) * (double)rstd[r];
                edb[i] += dy[r * d + i];
            }
        (float[] G, float[] B) Run(int threads, bool withDx)
        {
            using (KernelThreads.Use(threads))
            {
                var dg = new float[d]; var db = new float[d];
                LayerNormKernels.Backward(dy, x, gamma, mean, rstd, withDx ? new float[rows * d] : default, dg, db, rows, d);
                return (dg, db);
            }
        }
        var one = Run(1, withDx: false);
        TestData.AssertClose(one.G, edg, 1e-4, 1e-3, $"dgamma d={d}");
        TestData.AssertClose(one.B, edb, 1e-4, 1e-3, $"dbeta d={d}");
        var two = Run(2, withDx: true);
        Assert.That(two.G, Is.EqualTo(one.G), "dgamma: 2 threads vs 1");
        Assert.That(two.B, Is.EqualTo(one.B), "dbeta: 2 threads vs 1");

        // dX computed in the same walk as dγ / dβ equals dX computed alone (row-parallel), on either thread count.
        float[] Dx(int threads, bool withParams)
        {
            using (KernelThreads.Use(threads))
            {
                var dx = TestData.Floats(rows * d, 15); // dX accumulates
                LayerNormKernels.Backward(dy, x, gamma, mean, rstd, dx, withParams ? new float[d] : default, withParams ? new float[d] : default, rows, d);
                return dx;
            }
        }
        var alone = Dx(2, withParams: false);
        Assert.That(Dx(1, withParams: true), Is.EqualTo(alone), "dX with dγ/dβ (1 thread) vs dX alone");
        Assert.That(Dx(2, withParams: true), Is.EqualTo(alone), "dX with dγ/dβ (2 threads) vs dX alone");
    }

    [Test]
    public void Backward_OverwriteDx_EqualsAddingToZerosBitForBit([Values(13, 64, 67)] int d, [Values(false, true)] bool withParams)
    {
        // Both walks (dX alone, row-parallel; dX with the dγ / dβ blocks) and every vector tier plus the scalar tail.
        const int rows = 1500;
        var x = TestData.Floats(rows * d, 21);
        var dy = TestData.Floats(rows * d, 22);
        var gamma = TestData.Floats(d, 23);
        var y = new float[rows * d];
        var mean = new float[rows];
        var rstd = new float[rows];
        LayerNormKernels.Forward(x, gamma, TestData.Floats(d, 24), y, mean, rstd, rows, d, 1e-5f);
        var zeros = new float[rows * d];
        LayerNormKernels.Backward(dy, x, gamma, mean, rstd, zeros, withParams ? new float[d] : default, withParams ? new float[d] : default, rows, d);
        var garbage = TestData.Floats(rows * d, 25);
        LayerNormKernels.Backward(dy, x, gamma, mean, rstd, garbage, withParams ? new float[d] : default, withParams ? new float[d] : default, rows, d,
            overwriteDX: true);
        Assert.That(garbage, Is.EqualTo(zeros));
    }

    [Test]
    public void Forward_StatsTooShort_ThrowsNamingSizes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            LayerNormKernels.Forward(new float[12], new float[4], new float[4], new float[12], new float[2], new float[3], 3, 4, 1e-5f));
        Assert.That(ex!.Message, Does.Contain("mean").And.Contain("3").And.Contain("2"));
    }
}

using NUnit.Framework;
using Recsys.Kernels.Interaction;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Interaction;

[Category("Kernel")]
public class CrossKernelTests
{
    private static readonly int[] Batches = { 1, 3, 5 };

    /// <summary>h = x_l·Wᵀ + b in float64, W given as a function of (out, in).</summary>
    private static double[] Hidden(float[] xl, Func<int, int, double> w, float[] bias, int batch, int d)
    {
        var h = new double[batch * d];
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < d; o++)
            {
                double s = bias[o];
                for (int i = 0; i < d; i++) s += w(o, i) * xl[b * d + i];
                h[b * d + o] = s;
            }
        return h;
    }

    private static Func<int, int, double> LowRankW(float[] u, float[] v, int d, int r) => (o, i) =>
    {
        double s = 0;
        for (int k = 0; k < r; k++) s += (double)u[o * r + k] * v[i * r + k];
        return s;
    };

    [TestCase(1), TestCase(3), TestCase(7), TestCase(15), TestCase(16), TestCase(17)]
    [TestCase(31), TestCase(33), TestCase(63), TestCase(64), TestCase(65), TestCase(67)]
    public void ForwardAndBackward_FullRank_MatchFloat64Reference(int d)
    {
        foreach (int batch in Batches)
        {
            var x0 = TestData.Floats(batch * d, 1); var xl = TestData.Floats(batch * d, 2);
            var w = TestData.Floats(d * d, 3, 0.01f, 0.2f); var bias = TestData.Floats(d, 4);
            var hidden = new float[batch * d]; var y = new float[batch * d];
            CrossKernels.Forward(x0, xl, w, bias, hidden, y, batch, d);
            var h = Hidden(xl, (o, i) => w[o * d + i], bias, batch, d);
            var expY = new double[batch * d];
            for (int i = 0; i < expY.Length; i++) expY[i] = x0[i] * h[i] + xl[i];
            TestData.AssertClose(hidden, h, 1e-4, 1e-4, $"hidden B={batch} d={d}");
            TestData.AssertClose(y, expY, 1e-4, 1e-4, $"y B={batch} d={d}");

            var dy = TestData.Floats(batch * d, 5);
            var dx0 = TestData.Floats(batch * d, 6); var dxl = TestData.Floats(batch * d, 7);
            var dw = TestData.Floats(d * d, 8); var db = TestData.Floats(d, 9);
            var e0 = dx0.Select(v => (double)v).ToArray(); var el = dxl.Select(v => (double)v).ToArray();
            var ew = dw.Select(v => (double)v).ToArray(); var eb = db.Select(v => (double)v).ToArray();
            for (int b = 0; b < batch; b++)
                for (int o = 0; o < d; o++)
                {
                    int idx = b * d + o;
                    double g = dy[idx], pre = g * x0[idx];
                    e0[idx] += g * h[idx];
                    el[idx] += g;
                    eb[o] += pre;
                    for (int i = 0; i < d; i++)
                    {
                        ew[o * d + i] += pre * xl[b * d + i];
                        el[b * d + i] += pre * w[o * d + i];
                    }
                }
            CrossKernels.Backward(dy, x0, xl, w, hidden, new float[batch * d], dx0, dxl, dw, db, batch, d);
            TestData.AssertClose(dx0, e0, 1e-4, 1e-4, $"dx0 B={batch} d={d}");
            TestData.AssertClose(dxl, el, 1e-4, 1e-4, $"dxl B={batch} d={d}");
            TestData.AssertClose(dw, ew, 1e-4, 1e-4, $"dW B={batch} d={d}");
            TestData.AssertClose(db, eb, 1e-4, 1e-4, $"db B={batch} d={d}");
        }
    }

    [TestCase(1, 1), TestCase(7, 3), TestCase(16, 4), TestCase(17, 5), TestCase(33, 2), TestCase(64, 8), TestCase(67, 3)]
    public void ForwardAndBackward_LowRank_MatchFloat64Reference(int d, int r)
    {
        foreach (int batch in Batches)
        {
            var x0 = TestData.Floats(batch * d, 11); var xl = TestData.Floats(batch * d, 12);
            var u = TestData.Floats(d * r, 13, 0.01f, 0.3f); var v = TestData.Floats(d * r, 14, 0.01f, 0.3f);
            var bias = TestData.Floats(d, 15);
            var proj = new float[batch * r]; var hidden = new float[batch * d]; var y = new float[batch * d];
            CrossKernels.ForwardLowRank(x0, xl, u, v, bias, proj, hidden, y, batch, d, r);
            var h = Hidden(xl, LowRankW(u, v, d, r), bias, batch, d);
            var expY = new double[batch * d];
            for (int i = 0; i < expY.Length; i++) expY[i] = x0[i] * h[i] + xl[i];
            TestData.AssertClose(y, expY, 1e-4, 1e-4, $"y B={batch} d={d} r={r}");

            var dy = TestData.Floats(batch * d, 16);
            var dx0 = new float[batch * d]; var dxl = new float[batch * d];
            var du = new float[d * r]; var dv = new float[d * r]; var db = new float[d];
            var e0 = new double[batch * d]; var el = new double[batch * d];
            var eu = new double[d * r]; var ev = new double[d * r]; var eb = new double[d];
            for (int b = 0; b < batch; b++)
            {
                var pre = new double[d];
                for (int o = 0; o < d; o++)
                {
                    int idx = b * d + o;
                    pre[o] = dy[idx] * x0[idx];
                    e0[idx] += dy[idx] * h[idx];
                    el[idx] += dy[idx];
                    eb[o] += pre[o];
                }
                for (int k = 0; k < r; k++)
                {
                    double t = 0, dt = 0;
                    for (int i = 0; i < d; i++) t += (double)xl[b * d + i] * v[i * r + k];
                    for (int o = 0; o < d; o++) { eu[o * r + k] += pre[o] * t; dt += pre[o] * u[o * r + k]; }
                    for (int i = 0; i < d; i++) { ev[i * r + k] += xl[b * d + i] * dt; el[b * d + i] += dt * v[i * r + k]; }
                }
            }
            CrossKernels.BackwardLowRank(dy, x0, xl, u, v, proj, hidden, new float[batch * d], new float[batch * r],
                dx0, dxl, du, dv, db, batch, d, r);
            TestData.AssertClose(dx0, e0, 1e-4, 1e-4, $"dx0 B={batch} d={d} r={r}");
            TestData.AssertClose(dxl, el, 1e-4, 1e-4, $"dxl B={batch} d={d} r={r}");
            TestData.AssertClose(du, eu, 1e-4, 1e-4, $"dU B={batch} d={d} r={r}");
            TestData.AssertClose(dv, ev, 1e-4, 1e-4, $"dV B={batch} d={d} r={r}");
            TestData.AssertClose(db, eb, 1e-4, 1e-4, $"db B={batch} d={d} r={r}");
        }
    }

    [Test]
    public void BackwardEpilogue_AliasedInputGradients_GetBothTerms()
    {
        const int batch = 3, d = 19;
        var x0 = TestData.Floats(batch * d, 21); var h = TestData.Floats(batch * d, 22); var dy = TestData.Floats(batch * d, 23);
        var dx = new float[batch * d];
        CrossKernels.BackwardEpilogue(dy, x0, h, new float[batch * d], dx, dx, batch, d);
        var e = new double[batch * d];
        for (int i = 0; i < e.Length; i++) e[i] = (double)dy[i] * h[i] + dy[i];
        TestData.AssertClose(dx, e, 1e-5, 1e-6, "aliased dx");
    }

    [Test]
    public void BackwardEpilogue_Overwrite_EqualsAccumulatingIntoZerosBitForBit([Values(false, true)] bool aliased)
    {
        // Odd width: every vector tier and the scalar tail. Overwritten buffers start as garbage (not zeros).
        const int batch = 5, d = 61;
        var x0 = TestData.Floats(batch * d, 31); var h = TestData.Floats(batch * d, 32); var dy = TestData.Floats(batch * d, 33);
        var zero0 = new float[batch * d];
        var zeroL = aliased ? zero0 : new float[batch * d];
        CrossKernels.BackwardEpilogue(dy, x0, h, new float[batch * d], zero0, zeroL, batch, d);
        var ow0 = TestData.Floats(batch * d, 34);
        var owL = aliased ? ow0 : TestData.Floats(batch * d, 35);
        CrossKernels.BackwardEpilogue(dy, x0, h, new float[batch * d], ow0, owL, batch, d, overwriteDX0: true, overwriteDXl: !aliased);
        Assert.That(ow0, Is.EqualTo(zero0), "dX0");
        Assert.That(owL, Is.EqualTo(zeroL), "dXl");
    }

    [Test]
    public void BackwardEpilogue_OverwriteAliasedDxl_ThrowsNamingTheFlag()
    {
        const int batch = 2, d = 5;
        var x = TestData.Floats(batch * d, 1);
        var dx = new float[batch * d];
        var ex = Assert.Throws<ArgumentException>(() =>
            CrossKernels.BackwardEpilogue(x, x, x, new float[batch * d], dx, dx, batch, d, overwriteDX0: true, overwriteDXl: true));
        Assert.That(ex!.Message, Does.Contain("dXl").And.Contain("dX0").And.Contain("overwriteDXl"));
        Assert.That(dx, Is.All.EqualTo(0f), "nothing written");
    }
}

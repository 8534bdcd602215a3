using NUnit.Framework;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.Loss;
using Recsys.Kernels.Normalization;
using Recsys.Kernels.Reduce;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gpu;

public abstract partial class GpuKernelTests
{
    [TestCase(1, 1)]
    [TestCase(5, 7)]
    [TestCase(3, 17)]
    [TestCase(2, 67)]
    public void LayerNorm_ForwardBackward_MatchesFloat64Reference(int rows, int d)
    {
        var x = TestData.Floats(rows * d, 41); var gamma = TestData.Floats(d, 42); var beta = TestData.Floats(d, 43);
        var dy = TestData.Floats(rows * d, 44);
        var dx0 = TestData.Floats(rows * d, 45); var dg0 = TestData.Floats(d, 46); var db0 = TestData.Floats(d, 47);
        const double eps = 1e-5;
        var yE = new double[rows * d]; var meanE = new double[rows]; var rstdE = new double[rows];
        var dxE = dx0.Select(v => (double)v).ToArray(); var dgE = dg0.Select(v => (double)v).ToArray(); var dbE = db0.Select(v => (double)v).ToArray();
        for (int r = 0; r < rows; r++)
        {
            double mu = 0, var = 0;
            for (int j = 0; j < d; j++) mu += x[r * d + j];
            mu /= d;
            for (int j = 0; j < d; j++) var += (x[r * d + j] - mu) * (x[r * d + j] - mu);
            var /= d;
            double rs = 1 / Math.Sqrt(var + eps);
            meanE[r] = mu; rstdE[r] = rs;
            double a = 0, bsum = 0;
            for (int j = 0; j < d; j++)
            {
                double xh = (x[r * d + j] - mu) * rs;
                yE[r * d + j] = xh * gamma[j] + beta[j];
                double g = dy[r * d + j] * gamma[j];
                a += g; bsum += g * xh;
                dgE[j] += dy[r * d + j] * xh; dbE[j] += dy[r * d + j];
            }
            a /= d; bsum /= d;
            for (int j = 0; j < d; j++)
            {
                double xh = (x[r * d + j] - mu) * rs;
                dxE[r * d + j] += rs * (dy[r * d + j] * gamma[j] - a - xh * bsum);
            }
        }
        var vx = Upload(x); var vg = Upload(gamma);
        var y = Zeros(rows * d); var mean = Zeros(rows); var rstd = Zeros(rows);
        LayerNormGpuKernels.Forward(Device, vx, vg, Upload(beta), y, mean, rstd, rows, d);
        TestData.AssertClose(Download(y), yE, 1e-3, 1e-4, "layernorm y");
        TestData.AssertClose(Download(mean), meanE, Rtol, Atol, "layernorm mean");
        TestData.AssertClose(Download(rstd), rstdE, 1e-3, Atol, "layernorm rstd");
        var dx = Upload(dx0); var dg = Upload(dg0); var db = Upload(db0);
        LayerNormGpuKernels.Backward(Device, vx, vg, mean, rstd, Upload(dy), dx, dg, db, rows, d);
        TestData.AssertClose(Download(dx), dxE, 1e-3, 1e-4, "layernorm dx");
        TestData.AssertClose(Download(dg), dgE, 1e-3, 1e-4, "layernorm dgamma");
        TestData.AssertClose(Download(db), dbE, Rtol, Atol, "layernorm dbeta");
    }

    [TestCase(1)]
    [TestCase(7)]
    [TestCase(67)]
    public void BceWithLogits_ForwardBackward_MatchesFloat64Reference(int n)
    {
        var z = TestData.Floats(n, 51).Select(v => v * 30f).ToArray(); // includes |z| ≫ 1: the stable form must not overflow
        var y = TestData.Floats(n, 52).Select(v => Math.Abs(v)).ToArray(); // soft targets in (0, 1]
        var dz0 = TestData.Floats(n, 53);
        double loss = 0;
        var dzE = new double[n];
        for (int i = 0; i < n; i++)
        {
            double zi = z[i];
            loss += Math.Max(zi, 0) - zi * y[i] + Math.Log(1 + Math.Exp(-Math.Abs(zi)));
            dzE[i] = dz0[i] + 0.5 * (1 / (1 + Math.Exp(-zi)) - y[i]) / n;
        }
        var vz = Upload(z); var vy = Upload(y);
        var l = Zeros(1);
        LossGpuKernels.BceWithLogitsForward(Device, vz, vy, l, n);
        TestData.AssertClose(Download(l), new[] { loss / n }, Rtol, Atol, "bce loss");
        var dz = Upload(dz0);
        LossGpuKernels.BceWithLogitsBackward(Device, vz, vy, dz, n, dLoss: 0.5f);
        TestData.AssertClose(Download(dz), dzE, Rtol, Atol, "bce dlogits");
    }

    [TestCase(1)]
    [TestCase(67)]
    public void Relu_ForwardBackward_MatchesReference(int n)
    {
        var x = TestData.Floats(n, 61); var dy = TestData.Floats(n, 62); var dx0 = TestData.Floats(n, 63);
        var vx = Upload(x);
        var y = Zeros(n);
        ElementwiseGpuKernels.ReluForward(Device, vx, y, n);
        TestData.AssertClose(Download(y), x.Select(v => (double)Math.Max(v, 0)).ToArray(), 0, 0, "relu");
        var dx = Upload(dx0);
        ElementwiseGpuKernels.ReluBackward(Device, vx, Upload(dy), dx, n);
        TestData.AssertClose(Download(dx), Enumerable.Range(0, n).Select(i => x[i] > 0 ? (double)dx0[i] + dy[i] : dx0[i]).ToArray(), Rtol, Atol, "relu dx");
    }

    [TestCase(1, 1)]
    [TestCase(5, 17)]
    [TestCase(33, 3)]
    public void ColumnSum_AccumulateAndOverwrite_MatchesFloat64Reference(int rows, int cols)
    {
        var x = TestData.Floats(rows * cols, 71); var o0 = TestData.Floats(cols, 72);
        var e = new double[cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) e[j] += x[i * cols + j];
        var vx = Upload(x);
        var o = Upload(o0);
        ReduceGpuKernels.ColumnSum(Device, vx, o, rows, cols, accumulate: false);
        TestData.AssertClose(Download(o), e, Rtol, Atol, "colsum");
        ReduceGpuKernels.ColumnSum(Device, vx, o, rows, cols, accumulate: true);
        TestData.AssertClose(Download(o), e.Select(v => 2 * v).ToArray(), Rtol, Atol, "colsum accumulate");
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(67)]
    [TestCase(1031)]
    public void Sum_Total_MatchesFloat64Reference(int n)
    {
        var x = TestData.Floats(n, 81);
        var o = Upload(new[] { 123f });
        ReduceGpuKernels.Sum(Device, Upload(x), o, n);
        TestData.AssertClose(Download(o), new[] { x.Sum(v => (double)v) }, Rtol, 1e-4, "sum");
    }
}

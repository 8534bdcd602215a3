using NUnit.Framework;
using Recsys.Kernels.Interaction;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gpu;

public abstract partial class GpuKernelTests
{
    [TestCase(1, 1, 1)]
    [TestCase(5, 3, 7)]
    [TestCase(5, 1, 17)]
    [TestCase(1, 3, 17)]
    public void DotInteraction_ForwardBackward_MatchesFloat64Reference(int b, int f, int d)
    {
        int w = InteractionGpuKernels.DotOutputWidth(f, d);
        var x = TestData.Floats(b * d, 11);
        var e = TestData.Floats(b * f * d, 12);
        var dOut = TestData.Floats(b * w, 13);
        var dx0 = TestData.Floats(b * d, 14);
        var de0 = TestData.Floats(b * f * d, 15);
        double T(int bb, int t, int dd) => t == 0 ? x[bb * d + dd] : e[(bb * f + t - 1) * d + dd];

        var outExp = new double[b * w];
        var dxExp = dx0.Select(v => (double)v).ToArray();
        var deExp = de0.Select(v => (double)v).ToArray();
        for (int bb = 0; bb < b; bb++)
        {
            for (int dd = 0; dd < d; dd++) { outExp[bb * w + dd] = x[bb * d + dd]; dxExp[bb * d + dd] += dOut[bb * w + dd]; }
            int col = d;
            for (int i = 1; i <= f; i++)
                for (int j = 0; j < i; j++, col++)
                {
                    double s = 0;
                    for (int dd = 0; dd < d; dd++) s += T(bb, i, dd) * T(bb, j, dd);
                    outExp[bb * w + col] = s;
                    double g = dOut[bb * w + col];
                    for (int dd = 0; dd < d; dd++)
                    {
                        // ∂/∂T_i = g·T_j, ∂/∂T_j = g·T_i; i ≥ 1 always lands in E.
                        deExp[(bb * f + i - 1) * d + dd] += g * T(bb, j, dd);
                        if (j == 0) dxExp[bb * d + dd] += g * T(bb, i, dd);
                        else deExp[(bb * f + j - 1) * d + dd] += g * T(bb, i, dd);
                    }
                }
        }
        var dX = Upload(x); var dE = Upload(e);
        var output = Zeros(b * w);
        InteractionGpuKernels.DotForward(Device, dX, dE, output, b, f, d);
        TestData.AssertClose(Download(output), outExp, Rtol, Atol, "dot forward");
        var gx = Upload(dx0); var ge = Upload(de0);
        InteractionGpuKernels.DotBackward(Device, dX, dE, Upload(dOut), gx, ge, b, f, d);
        TestData.AssertClose(Download(gx), dxExp, Rtol, Atol, "dot dDense");
        TestData.AssertClose(Download(ge), deExp, Rtol, Atol, "dot dEmbeddings");
    }

    [TestCase(1, 1)]
    [TestCase(5, 7)]
    [TestCase(3, 17)]
    public void CrossElementwise_ForwardBackward_MatchesFloat64Reference(int b, int d)
    {
        var x0 = TestData.Floats(b * d, 21); var xl = TestData.Floats(b * d, 22); var pre = TestData.Floats(b * d, 23);
        var bias = TestData.Floats(d, 24); var dy = TestData.Floats(b * d, 25);
        var g0 = TestData.Floats(b * d, 26); var gl = TestData.Floats(b * d, 27);
        var outE = new double[b * d]; var g0E = new double[b * d]; var gpE = new double[b * d]; var glE = new double[b * d];
        for (int i = 0; i < b * d; i++)
        {
            double pb = (double)pre[i] + bias[i % d];
            outE[i] = x0[i] * pb + xl[i];
            g0E[i] = g0[i] + dy[i] * pb;
            gpE[i] = (double)dy[i] * x0[i];
            glE[i] = (double)gl[i] + dy[i];
        }
        var vx0 = Upload(x0); var vpre = Upload(pre); var vb = Upload(bias);
        var output = Zeros(b * d);
        InteractionGpuKernels.CrossForward(Device, vx0, Upload(xl), vpre, vb, output, b, d);
        TestData.AssertClose(Download(output), outE, Rtol, Atol, "cross forward");
        var d0 = Upload(g0); var dp = Upload(TestData.Floats(b * d, 28)); var dl = Upload(gl);
        InteractionGpuKernels.CrossBackward(Device, vx0, vpre, vb, Upload(dy), d0, dp, dl, b, d);
        TestData.AssertClose(Download(d0), g0E, Rtol, Atol, "cross dX0");
        TestData.AssertClose(Download(dp), gpE, Rtol, Atol, "cross dPre");
        TestData.AssertClose(Download(dl), glE, Rtol, Atol, "cross dXl");
    }

    [TestCase(1, 1, 1, 1)]
    [TestCase(2, 5, 2, 6)]
    [TestCase(3, 17, 3, 9)]
    [TestCase(1, 3, 1, 17)]
    public void Attention_ForwardBackward_MatchesFloat64Reference(int b, int t, int h, int dm)
    {
        int dh = dm / h;
        double scale = 1 / Math.Sqrt(dh);
        var qkv = TestData.Floats(b * t * 3 * dm, 31);
        var dOut = TestData.Floats(b * t * dm, 32);
        var dq0 = TestData.Floats(b * t * 3 * dm, 33);
        double Q(int bb, int tt, int c) => qkv[(bb * t + tt) * 3 * dm + c];
        var pE = new double[b * h * t * t];
        var oE = new double[b * t * dm];
        var gE = dq0.Select(v => (double)v).ToArray();
        for (int bb = 0; bb < b; bb++)
            for (int hh = 0; hh < h; hh++)
            {
                int qc = hh * dh, kc = dm + hh * dh, vc = 2 * dm + hh * dh;
                var P = new double[t, t];
                for (int i = 0; i < t; i++)
                {
                    var s = new double[t];
                    for (int j = 0; j < t; j++) { for (int c = 0; c < dh; c++) s[j] += Q(bb, i, qc + c) * Q(bb, j, kc + c); s[j] *= scale; }
                    double mx = s.Max(), z = s.Sum(v => Math.Exp(v - mx));
                    for (int j = 0; j < t; j++) { P[i, j] = Math.Exp(s[j] - mx) / z; pE[((bb * h + hh) * t + i) * t + j] = P[i, j]; }
                    for (int c = 0; c < dh; c++) { double o = 0; for (int j = 0; j < t; j++) o += P[i, j] * Q(bb, j, vc + c); oE[(bb * t + i) * dm + qc + c] = o; }
                }
                for (int i = 0; i < t; i++)
                {
                    var dp = new double[t];
                    for (int j = 0; j < t; j++) for (int c = 0; c < dh; c++) dp[j] += dOut[(bb * t + i) * dm + qc + c] * Q(bb, j, vc + c);
                    double dot = 0;
                    for (int j = 0; j < t; j++) dot += P[i, j] * dp[j];
                    for (int j = 0; j < t; j++)
                    {
                        double ds = P[i, j] * (dp[j] - dot);
                        for (int c = 0; c < dh; c++)
                        {
                            gE[(bb * t + i) * 3 * dm + qc + c] += ds * Q(bb, j, kc + c) * scale;
                            gE[(bb * t + j) * 3 * dm + kc + c] += ds * Q(bb, i, qc + c) * scale;
                            gE[(bb * t + j) * 3 * dm + vc + c] += P[i, j] * dOut[(bb * t + i) * dm + qc + c];
                        }
                    }
                }
            }
        var vq = Upload(qkv);
        var probs = Zeros(b * h * t * t);
        var output = Zeros(b * t * dm);
        AttentionGpuKernels.Forward(Device, vq, probs, output, b, t, h, dm);
        TestData.AssertClose(Download(probs), pE, Rtol, Atol, "attention probs");
        TestData.AssertClose(Download(output), oE, Rtol, Atol, "attention output");
        var dq = Upload(dq0);
        AttentionGpuKernels.Backward(Device, vq, probs, Upload(dOut), dq, b, t, h, dm);
        TestData.AssertClose(Download(dq), gE, Rtol, Atol, "attention dqkv");
    }

    [Test]
    public void Attention_ModelDimNotDivisibleByHeads_ThrowsNamingBoth()
    {
        var ex = Assert.Throws<ArgumentException>(() => AttentionGpuKernels.Forward(Device, Zeros(21), Zeros(1), Zeros(7), 1, 1, 2, 7));
        Assert.That(ex!.Message, Does.Contain("7").And.Contain("2"));
    }
}

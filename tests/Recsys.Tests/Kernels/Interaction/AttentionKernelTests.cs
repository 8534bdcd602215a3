using NUnit.Framework;
using Recsys.Kernels.Interaction;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Interaction;

[Category("Kernel")]
public class AttentionKernelTests
{
    /// <summary>Float64 reference of forward (output, P) and backward (dQkv) for qkv [B, T, 3d].</summary>
    private static (double[] Y, double[] P, double[] DQkv) Reference(float[] qkv, float[] dy, int batch, int t, int d, int heads)
    {
        int dh = d / heads, s3 = 3 * d;
        double scale = 1.0 / Math.Sqrt(dh);
        var y = new double[batch * t * d];
        var probs = new double[batch * heads * t * t];
        var dq = new double[batch * t * s3];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                double Q(int i, int k) => qkv[(b * t + i) * s3 + h * dh + k];
                double K(int i, int k) => qkv[(b * t + i) * s3 + d + h * dh + k];
                double V(int i, int k) => qkv[(b * t + i) * s3 + 2 * d + h * dh + k];
                double G(int i, int k) => dy[(b * t + i) * d + h * dh + k];
                var p = new double[t, t];
                for (int i = 0; i < t; i++)
                {
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < t; j++)
                    {
                        double s = 0;
                        for (int k = 0; k < dh; k++) s += Q(i, k) * K(j, k);
                        p[i, j] = s * scale;
                        max = Math.Max(max, p[i, j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < t; j++) { p[i, j] = Math.Exp(p[i, j] - max); sum += p[i, j]; }
                    for (int j = 0; j < t; j++)
                    {
                        p[i, j] /= sum;
                        probs[((b * heads + h) * t + i) * t + j] = p[i, j];
                    }
                    for (int k = 0; k < dh; k++)
                    {
                        double o = 0;
                        for (int j = 0; j < t; j++) o += p[i, j] * V(j, k);
                        y[(b * t + i) * d + h * dh + k] = o;
                    }
                }
                for (int i = 0; i < t; i++)
                {
                    var dp = new double[t];
                    double rd = 0;
                    for (int j = 0; j < t; j++)
                    {
                        for (int k = 0; k < dh; k++) dp[j] += G(i, k) * V(j, k);
                        rd += dp[j] * p[i, j];
                    }
                    for (int j = 0; j < t; j++)
                    {
                        double ds = p[i, j] * (dp[j] - rd) * scale;
                        for (int k = 0; k < dh; k++)
                        {
                            dq[(b * t + i) * s3 + h * dh + k] += ds * K(j, k);
                            dq[(b * t + j) * s3 + d + h * dh + k] += ds * Q(i, k);
                            dq[(b * t + j) * s3 + 2 * d + h * dh + k] += p[i, j] * G(i, k);
                        }
                    }
                }
            }
        return (y, probs, dq);
    }

    [TestCase(1, 1), TestCase(3, 1), TestCase(7, 2), TestCase(15, 1), TestCase(16, 2), TestCase(17, 1)]
    [TestCase(31, 2), TestCase(33, 1), TestCase(63, 1), TestCase(64, 2), TestCase(65, 1), TestCase(67, 1)]
    public void ForwardAndBackward_OddSizes_MatchFloat64Reference(int dh, int heads)
    {
        int d = dh * heads;
        foreach (int t in new[] { 1, 3, 17, 27, 40 })
            foreach (int batch in new[] { 1, 3 })
            {
                var qkv = TestData.Floats(batch * t * 3 * d, 100 + dh, 0.05f, 0.6f);
                var dy = TestData.Floats(batch * t * d, 200 + t);
                var (ey, ep, edq) = Reference(qkv, dy, batch, t, d, heads);
                var y = new float[batch * t * d];
                var p = new float[batch * heads * t * t];
                AttentionKernels.Forward(qkv, y, p, batch, t, d, heads);
                TestData.AssertClose(y, ey, 1e-4, 1e-5, $"output B={batch} T={t} dh={dh} H={heads}");
                TestData.AssertClose(p, ep, 1e-4, 1e-6, $"probs B={batch} T={t} dh={dh} H={heads}");
                var dq = TestData.Floats(qkv.Length, 300);
                var dq0 = (float[])dq.Clone();
                for (int i = 0; i < edq.Length; i++) edq[i] += dq[i];
                AttentionKernels.Backward(dy, qkv, p, dq, batch, t, d, heads);
                TestData.AssertClose(dq, edq, 1e-4, 1e-5, $"dQkv B={batch} T={t} dh={dh} H={heads}");
                // Overwrite mode: a NaN-poisoned buffer comes out as the gradient alone.
                var fresh = new float[qkv.Length];
                Array.Fill(fresh, float.NaN);
                AttentionKernels.Backward(dy, qkv, p, fresh, batch, t, d, heads, accumulate: false);
                for (int i = 0; i < edq.Length; i++) edq[i] -= dq0[i];
                TestData.AssertClose(fresh, edq, 1e-4, 1e-5, $"dQkv overwrite B={batch} T={t} dh={dh} H={heads}");
            }
    }

    [Test]
    public void Forward_DimNotDivisibleByHeads_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => AttentionKernels.Forward(new float[3 * 2 * 9], new float[2 * 9], new float[2 * 2 * 1], 1, 2, 9, 2));
        Assert.That(ex!.Message, Does.Contain("9").And.Contain("2 heads"));
    }
}

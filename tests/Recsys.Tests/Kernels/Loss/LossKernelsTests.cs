using NUnit.Framework;
using Recsys.Kernels.Loss;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Loss;

[Category("Kernel")]
public class LossKernelsTests
{
    private static (float[] Z, float[] Y, float[] Mask, float[] W) BceData(int n, int seed)
    {
        var z = TestData.Floats(n, seed, 0.05f, 30f);
        var y = TestData.Floats(n, seed + 1).Select(Math.Abs).ToArray(); // soft targets in [0, 1]
        var mask = TestData.Ints(n, 4, seed + 2).Select(v => v == 0 ? 0f : 1f).ToArray();
        var w = TestData.Floats(n, seed + 3).Select(v => 0.5f + Math.Abs(v)).ToArray();
        return (z, y, mask, w);
    }

    private static double RefLoss(float[] z, float[] y, float[]? mask, float[]? w, int i)
    {
        // Textbook form −y·log σ(z) − (1−y)·log(1−σ(z)) using log-sigmoid computed safely in float64.
        double zi = z[i];
        double logSig = -Math.Log(1 + Math.Exp(-Math.Abs(zi))) + Math.Min(zi, 0);
        double logOneMinus = logSig - zi;
        return -(y[i] * logSig + (1 - y[i]) * logOneMinus);
    }

    [Test]
    public void BceWithLogits_MaskAndWeights_MatchesReference(
        [Values(1, 7, 16, 67, 4096)] int n, [Values(false, true)] bool useMask, [Values(false, true)] bool useWeights)
    {
        var (z, y, mask, w) = BceData(n, n);
        if (useMask) mask[0] = 1f; // at least one sample counts
        double sum = 0, count = 0;
        for (int i = 0; i < n; i++)
        {
            double m = useMask ? mask[i] : 1, wi = useWeights ? w[i] : 1;
            sum += m * wi * RefLoss(z, y, mask, w, i);
            count += m;
        }
        float loss = LossKernels.BceWithLogitsForward(z, y, useMask ? mask : default, useWeights ? w : default);
        Assert.That(loss, Is.EqualTo(sum / count).Within(1e-5 * Math.Abs(sum / count) + 1e-6));

        var dz = TestData.Floats(n, 9);
        var expected = new double[n];
        for (int i = 0; i < n; i++)
        {
            double m = useMask ? mask[i] : 1, wi = useWeights ? w[i] : 1;
            expected[i] = dz[i] + 0.5 * m * wi * (1 / (1 + Math.Exp(-(double)z[i])) - y[i]) / count;
        }
        LossKernels.BceWithLogitsBackward(z, y, useMask ? mask : default, useWeights ? w : default, 0.5f, dz);
        TestData.AssertClose(dz, expected, 1e-5, 1e-7, "BceWithLogitsBackward");
    }

    [Test]
    public void BceWithLogits_ExtremeLogits_StaysFinite()
    {
        float[] z = { 100f, -100f, 80f, -80f };
        float[] y = { 0f, 1f, 1f, 0f };
        float loss = LossKernels.BceWithLogitsForward(z, y, default, default);
        Assert.That(loss, Is.EqualTo((100 + 100 + 0 + 0) / 4.0).Within(1e-3));
        var dz = new float[4];
        LossKernels.BceWithLogitsBackward(z, y, default, default, 1f, dz);
        Assert.That(dz, Has.All.Matches<float>(float.IsFinite));
        Assert.That(dz[0], Is.EqualTo(0.25f).Within(1e-6));
        Assert.That(dz[1], Is.EqualTo(-0.25f).Within(1e-6));
    }

    [Test]
    public void BceWithLogits_AllMasked_ReturnsZero()
    {
        var z = new float[] { 1f, 2f };
        var dz = new float[2];
        Assert.That(LossKernels.BceWithLogitsForward(z, new float[2], new float[2], default), Is.EqualTo(0f));
        LossKernels.BceWithLogitsBackward(z, new float[2], new float[2], default, 1f, dz);
        Assert.That(dz, Is.All.EqualTo(0f));
    }

    [Test]
    public void BceWithLogits_TargetLengthMismatch_ThrowsNamingLengths()
    {
        var ex = Assert.Throws<ArgumentException>(() => LossKernels.BceWithLogitsForward(new float[3], new float[2], default, default));
        Assert.That(ex!.Message, Does.Contain("3").And.Contain("got 2"));
    }

    private static double[] RefSoftmax(float[] x, int rows, int cols, double t)
    {
        var y = new double[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < cols; j++) max = Math.Max(max, x[r * cols + j]);
            double s = 0;
            for (int j = 0; j < cols; j++) s += y[r * cols + j] = Math.Exp((x[r * cols + j] - max) / t);
            for (int j = 0; j < cols; j++) y[r * cols + j] /= s;
        }
        return y;
    }

    [Test]
    public void Softmax_TailSizes_MatchesReference([Values(1, 3)] int rows, [Values(1, 2, 7, 16, 17, 33, 67)] int cols, [Values(1f, 0.3f, 5f)] float t)
    {
        var x = TestData.Floats(rows * cols, cols, 0.05f, 40f);
        var y = new float[rows * cols];
        LossKernels.SoftmaxForward(x, y, rows, cols, t);
        var yr = RefSoftmax(x, rows, cols, t);
        TestData.AssertClose(y, yr, 1e-5, 1e-7, "SoftmaxForward");

        var dy = TestData.Floats(rows * cols, cols + 1);
        var dx = TestData.Floats(rows * cols, cols + 2);
        var expected = new double[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            double dot = 0;
            for (int j = 0; j < cols; j++) dot += dy[r * cols + j] * yr[r * cols + j];
            for (int j = 0; j < cols; j++) expected[r * cols + j] = dx[r * cols + j] + yr[r * cols + j] * (dy[r * cols + j] - dot) / t;
        }
        LossKernels.SoftmaxBackward(y, dy, dx, rows, cols, t);
        TestData.AssertClose(dx, expected, 1e-4, 1e-6, "SoftmaxBackward");
    }

    [Test]
    public void LogSumExp_LargeValues_MatchesReference()
    {
        float[] x = { 1000f, 1000f, 999f, -5f, 0f, 3f };
        var lse = new float[2];
        LossKernels.LogSumExp(x, lse, 2, 3);
        Assert.That(lse[0], Is.EqualTo(1000 + Math.Log(2 + Math.Exp(-1))).Within(1e-3));
        Assert.That(lse[1], Is.EqualTo(Math.Log(Math.Exp(-5) + 1 + Math.Exp(3))).Within(1e-5));
    }

    [Test]
    public void Softmax_NonPositiveTemperature_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LossKernels.SoftmaxForward(new float[2], new float[2], 1, 2, 0f));
    }
}

using System.Runtime.Intrinsics;
using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.Gemm;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gemm;

/// <summary>
/// GemmKernels.TryReluWeightGradients: a ReLU layer's weight and bias gradients with the mask applied as dY is read,
/// against the unfused sequence (mask dY in place, then LinearWeightGradients) and a float64 reference.
/// </summary>
[Category("Kernel")]
public class ReluWeightGradientsTests
{
    /// <summary>
    /// Out: one slice (16), a 16-column tail (17, 33), two column blocks of 256 with a tail (300), DLRM's 512. In: 1, the
    /// 4-column edge, 5, DLRM's 13 and the widest fused (16). Rows: just past the short-k limit (17), odd, past one k block
    /// (600) and two (1030), none a multiple of the 8-row block.
    /// </summary>
    private static readonly (int Out, int In, int Rows)[] Shapes =
    {
        (16, 13, 17), (17, 1, 101), (33, 4, 600), (300, 5, 1030), (512, 13, 1027), (64, 16, 515),
    };

    /// <summary>y as a ReLU output: about a third exact zeros, the rest positive; dY of both signs.</summary>
    private static (float[] DY, float[] Y, float[] X) Inputs(int outDim, int inDim, int rows, int seed)
    {
        var y = TestData.Floats(rows * outDim, seed);
        var r = new Random(seed);
        for (int i = 0; i < y.Length; i++) y[i] = r.Next(3) == 0 ? 0f : Math.Abs(y[i]);
        return (TestData.Floats(rows * outDim, seed + 1), y, TestData.Floats(rows * inDim, seed + 2));
    }

    private static (float[] W, float[] B) Unfused(float[] dy, float[] y, float[] x, float[] w0, float[] b0, int outDim, int inDim, int rows,
        bool accumulate)
    {
        var dPre = (float[])dy.Clone();
        ElementwiseKernels.ActivationBackwardInPlace(Activation.Relu, y, dPre);
        var w = (float[])w0.Clone();
        var b = (float[])b0.Clone();
        GemmKernels.LinearWeightGradients(dPre, x, w, b, outDim, inDim, rows, accumulate);
        return (w, b);
    }

    [Test]
    public void SameBitsAsMaskThenWeightGradients_AndMatchesFloat64Reference([Values(false, true)] bool accumulate, [Range(0, 5)] int shape,
        [Values(1, 2, 3)] int threads)
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("The fused path needs AVX-512; elsewhere the caller takes the unfused one (tested below).");
        var (outDim, inDim, rows) = Shapes[shape];
        var (dy, y, x) = Inputs(outDim, inDim, rows, 10 * shape + 1);
        var w0 = TestData.Floats(outDim * inDim, 100 + shape);
        var b0 = TestData.Floats(outDim, 200 + shape);
        var expected = Unfused(dy, y, x, w0, b0, outDim, inDim, rows, accumulate);
        var dyBefore = (float[])dy.Clone();
        var w = (float[])w0.Clone();
        var b = (float[])b0.Clone();
        using (KernelThreads.Use(threads))
            Assert.That(GemmKernels.TryReluWeightGradients(dy, y, x, w, b, outDim, inDim, rows, accumulate), Is.True, "fused");
        Assert.That(w, Is.EqualTo(expected.W), "dW bits");
        Assert.That(b, Is.EqualTo(expected.B), "dB bits");
        Assert.That(dy, Is.EqualTo(dyBefore), "dY is only read");

        var refW = new double[outDim * inDim];
        var refB = new double[outDim];
        for (int i = 0; i < outDim; i++)
        {
            refB[i] = b0[i];
            for (int j = 0; j < inDim; j++) refW[i * inDim + j] = accumulate ? w0[i * inDim + j] : 0;
            for (int p = 0; p < rows; p++)
            {
                double g = y[p * outDim + i] > 0 ? dy[p * outDim + i] : 0;
                refB[i] += g;
                for (int j = 0; j < inDim; j++) refW[i * inDim + j] += g * x[p * inDim + j];
            }
        }
        TestData.AssertClose(w, refW, 1e-4, 1e-5 * (rows + 1), $"dW {outDim}x{inDim} rows={rows}");
        TestData.AssertClose(b, refB, 1e-4, 1e-5 * (rows + 1), $"dB {outDim} rows={rows}");
    }

    [Test]
    public void WithoutBias_WritesOnlyTheWeightGradient()
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("The fused path needs AVX-512.");
        const int outDim = 40, inDim = 13, rows = 700;
        var (dy, y, x) = Inputs(outDim, inDim, rows, 7);
        var w0 = TestData.Floats(outDim * inDim, 8);
        var expected = Unfused(dy, y, x, w0, new float[outDim], outDim, inDim, rows, accumulate: true);
        var w = (float[])w0.Clone();
        Assert.That(GemmKernels.TryReluWeightGradients(dy, y, x, w, default, outDim, inDim, rows, accumulate: true), Is.True);
        Assert.That(w, Is.EqualTo(expected.W));
    }

    [Test]
    public void ShapesItDoesNotFuse_ReturnFalseAndTouchNothing(
        [Values(17, 15, 16, 0)] int which)
    {
        // An input wider than 16, fewer than 16 outputs, a batch at the short-k limit, no input columns.
        var (outDim, inDim, rows) = which switch { 17 => (32, 17, 100), 15 => (15, 8, 100), 16 => (32, 8, 16), _ => (32, 0, 100) };
        var (dy, y, x) = Inputs(outDim, inDim, rows, 3);
        var w = TestData.Floats(outDim * inDim, 4);
        var b = TestData.Floats(outDim, 5);
        var w0 = (float[])w.Clone();
        var b0 = (float[])b.Clone();
        Assert.That(GemmKernels.TryReluWeightGradients(dy, y, x, w, b, outDim, inDim, rows, accumulate: true), Is.False);
        Assert.That(w, Is.EqualTo(w0));
        Assert.That(b, Is.EqualTo(b0));
    }

    [Test]
    public void ShortBuffers_ThrowNamingTheBuffer([Values("dY", "y", "x", "dW", "dB")] string which)
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("Shapes are checked only where the fused path runs.");
        const int outDim = 32, inDim = 13, rows = 64;
        var dy = new float[rows * outDim - (which == "dY" ? 1 : 0)];
        var y = new float[rows * outDim - (which == "y" ? 1 : 0)];
        var x = new float[rows * inDim - (which == "x" ? 1 : 0)];
        var w = new float[outDim * inDim - (which == "dW" ? 1 : 0)];
        var b = new float[outDim - (which == "dB" ? 1 : 0)];
        var ex = Assert.Throws<ArgumentException>(() => GemmKernels.TryReluWeightGradients(dy, y, x, w, b, outDim, inDim, rows, true));
        Assert.That(ex!.Message, Does.Contain($"'{which}' needs at least"));
        Assert.That(ex.ParamName, Is.EqualTo(which));
    }

    [Test]
    public void NegativeSizes_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GemmKernels.TryReluWeightGradients(default, default, default, default, default, -1, 13, 100, true));
    }
}

using System.Runtime.Intrinsics;
using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gemm;

/// <summary>GemmKernels.LinearBackward: dX, dW and dB of a linear layer in one call, fused over dY for small weights.</summary>
[Category("Kernel")]
public class LinearBackwardTests
{
    /// <summary>
    /// Fused shapes: a row count that is neither a multiple of the 128-row block nor of 8 (the last range ends in a
    /// partial tile), several row ranges, out = 8 (one tile row); and shapes that take the two-call path (a weight
    /// too wide, too few rows, an in not a multiple of 32).
    /// </summary>
    private static readonly (int Rows, int Out, int In, bool Fused)[] Shapes =
    {
        (4099, 64, 64, true), (2053, 16, 96, true), (2048, 8, 32, true),
        (3000, 24, 40, false), (300, 64, 64, false), (50, 13, 7, false),
    };

    private sealed record Result(float[] DX, float[] DW, float[] DB);

    private static Result Inputs(int rows, int outDim, int inDim, int seed) =>
        new(TestData.Floats(rows * inDim, seed), TestData.Floats(outDim * inDim, seed + 1), TestData.Floats(outDim, seed + 2));

    private static Result Run(float[] dy, float[] x, float[] w, Result start, bool accumulate, int rows, int outDim, int inDim,
        bool wantDx = true, bool wantDw = true, bool wantDb = true)
    {
        var r = new Result((float[])start.DX.Clone(), (float[])start.DW.Clone(), (float[])start.DB.Clone());
        GemmKernels.LinearBackward(dy, x, w, wantDx ? r.DX : default, accumulate, wantDw ? r.DW : default, wantDb ? r.DB : default,
            accumulate, rows, outDim, inDim);
        return r;
    }

    [Test]
    public void MatchesFloat64Reference([Values(false, true)] bool accumulate, [Range(0, 5)] int shape)
    {
        var (rows, outDim, inDim, fused) = Shapes[shape];
        Assert.That(GemmKernels.UseFusedBackward(rows, outDim, inDim), Is.EqualTo(fused && Vector512.IsHardwareAccelerated),
            "the shape takes the path it is listed for");
        int seed = 40 + shape * 5;
        var dy = TestData.Floats(rows * outDim, seed, -1f, 1f);
        var x = TestData.Floats(rows * inDim, seed + 1, -1f, 1f);
        var w = TestData.Floats(outDim * inDim, seed + 2, -1f, 1f);
        var start = Inputs(rows, outDim, inDim, seed + 3);
        var got = Run(dy, x, w, start, accumulate, rows, outDim, inDim);

        var dx = new double[rows * inDim];
        var dw = new double[outDim * inDim];
        var db = new double[outDim];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < inDim; j++)
            {
                double s = accumulate ? start.DX[r * inDim + j] : 0;
                for (int o = 0; o < outDim; o++) s += (double)dy[r * outDim + o] * w[o * inDim + j];
                dx[r * inDim + j] = s;
            }
        for (int o = 0; o < outDim; o++)
        {
            for (int j = 0; j < inDim; j++)
            {
                double s = accumulate ? start.DW[o * inDim + j] : 0;
                for (int r = 0; r < rows; r++) s += (double)dy[r * outDim + o] * x[r * inDim + j];
                dw[o * inDim + j] = s;
            }
            db[o] = start.DB[o]; // the bias gradient always accumulates
            for (int r = 0; r < rows; r++) db[o] += dy[r * outDim + o];
        }
        string what = $"rows={rows} out={outDim} in={inDim} accumulate={accumulate}";
        TestData.AssertClose(got.DX, dx, 1e-4, 1e-5 * (outDim + 1), "dX " + what);
        TestData.AssertClose(got.DW, dw, 1e-4, 1e-5 * (rows + 1), "dW " + what);
        TestData.AssertClose(got.DB, db, 1e-4, 1e-5 * (rows + 1), "dB " + what);
    }

    [Test]
    public void Fused_DxHasMatMulBits_DwAndDbMatchTwoCallPath()
    {
        const int rows = 4096, outDim = 64, inDim = 64; // whole tiles only
        var dy = TestData.Floats(rows * outDim, 3, -1f, 1f);
        var x = TestData.Floats(rows * inDim, 4, -1f, 1f);
        var w = TestData.Floats(outDim * inDim, 5, -1f, 1f);
        var fused = Run(dy, x, w, Inputs(rows, outDim, inDim, 6), accumulate: false, rows, outDim, inDim);
        var dx = new float[rows * inDim];
        GemmKernels.MatMul(dy, w, dx, rows, inDim, outDim, accumulate: false);
        var dw = new float[outDim * inDim];
        var db = (float[])Inputs(rows, outDim, inDim, 6).DB.Clone();
        GemmKernels.LinearWeightGradients(dy, x, dw, db, outDim, inDim, rows, accumulate: false);
        Assert.That(fused.DX, Is.EqualTo(dx), "dX: the same tiles, so the same bits");
        TestData.AssertClose(fused.DW, dw.Select(v => (double)v).ToArray(), 1e-5, 1e-4, "dW (summed in another grouping)");
        TestData.AssertClose(fused.DB, db.Select(v => (double)v).ToArray(), 1e-5, 1e-4, "dB (summed in another grouping)");
    }

    [Test]
    public void OneVersusSeveralThreads_BitIdentical([Values(2, 3)] int threads)
    {
        // 5003 rows: 4 row ranges (uneven over 3 threads), a partial last tile.
        const int rows = 5003, outDim = 64, inDim = 64;
        var dy = TestData.Floats(rows * outDim, 11, -1f, 1f);
        var x = TestData.Floats(rows * inDim, 12, -1f, 1f);
        var w = TestData.Floats(outDim * inDim, 13, -1f, 1f);
        var start = Inputs(rows, outDim, inDim, 14);
        Result RunWith(int t)
        {
            using (KernelThreads.Use(t))
            {
                return Run(dy, x, w, start, accumulate: true, rows, outDim, inDim);
            }
        }
        var one = RunWith(1);
        var several = RunWith(threads);
        Assert.That(several.DX, Is.EqualTo(one.DX), "dX");
        Assert.That(several.DW, Is.EqualTo(one.DW), "dW");
        Assert.That(several.DB, Is.EqualTo(one.DB), "dB");
    }

    [Test]
    public void OutputsLeftEmpty_AreSkipped_OthersUnchanged([Values(0, 1, 2)] int missing)
    {
        const int rows = 4096, outDim = 64, inDim = 64; // whole tiles: dX has the same bits on either path
        var dy = TestData.Floats(rows * outDim, 21, -1f, 1f);
        var x = TestData.Floats(rows * inDim, 22, -1f, 1f);
        var w = TestData.Floats(outDim * inDim, 23, -1f, 1f);
        var start = Inputs(rows, outDim, inDim, 24);
        var all = Run(dy, x, w, start, accumulate: true, rows, outDim, inDim);
        var some = Run(dy, x, w, start, accumulate: true, rows, outDim, inDim, wantDx: missing != 0, wantDw: missing != 1, wantDb: missing != 2);
        // Without dX or dW the two-call path runs: dX keeps its bits, dW and dB are summed in another grouping.
        if (missing != 0) Assert.That(some.DX, Is.EqualTo(all.DX), "dX");
        else Assert.That(some.DX, Is.EqualTo(start.DX), "dX untouched");
        if (missing != 1) TestData.AssertClose(some.DW, all.DW.Select(v => (double)v).ToArray(), 1e-5, 1e-4, "dW");
        else Assert.That(some.DW, Is.EqualTo(start.DW), "dW untouched");
        if (missing != 2) TestData.AssertClose(some.DB, all.DB.Select(v => (double)v).ToArray(), 1e-5, 1e-4, "dB");
        else Assert.That(some.DB, Is.EqualTo(start.DB), "dB untouched");
    }

    [TestCase("dY", 4096 * 64 - 1, 4096 * 64, 64 * 64, 4096 * 64)]
    [TestCase("x", 4096 * 64, 4096 * 64 - 1, 64 * 64, 4096 * 64)]
    [TestCase("w", 4096 * 64, 4096 * 64, 64 * 64 - 1, 4096 * 64)]
    [TestCase("dX", 4096 * 64, 4096 * 64, 64 * 64, 4096 * 64 - 1)]
    public void ShortBuffer_ThrowsNamingItAndSizes(string name, int dyLen, int xLen, int wLen, int dxLen)
    {
        const int rows = 4096, outDim = 64, inDim = 64;
        var ex = Assert.Throws<ArgumentException>(() => GemmKernels.LinearBackward(new float[dyLen], new float[xLen], new float[wLen],
            new float[dxLen], false, new float[outDim * inDim], new float[outDim], true, rows, outDim, inDim));
        Assert.That(ex!.Message, Does.Contain($"'{name}'").And.Contain("LinearBackward"));
    }

    [Test]
    public void ShortWeightGradient_ThrowsNamingIt()
    {
        var ex = Assert.Throws<ArgumentException>(() => GemmKernels.LinearBackward(new float[4096 * 64], new float[4096 * 64], new float[64 * 64],
            new float[4096 * 64], false, new float[64 * 64 - 1], new float[64], true, 4096, 64, 64));
        Assert.That(ex!.Message, Does.Contain("'dW'").And.Contain((64 * 64).ToString()).And.Contain((64 * 64 - 1).ToString()));
    }
}

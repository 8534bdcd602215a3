using System.Runtime.Intrinsics;
using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gemm;

[Category("Kernel")]
public class GemmKernelsTests
{
    public enum Layout { NN, TN, NT }

    /// <summary>Every micro-tile remainder (MR 4/6/8, NR 4/8/16/32) and both sides of each vector width.</summary>
    private static readonly int[] Sizes = { 0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 65, 67 };

    /// <summary>Shapes past one cache block in each dimension (MC = 144, KC = 512, NC = 1024), k past two.</summary>
    private static readonly (int M, int N, int K)[] Blocked = { (129, 67, 257), (150, 40, 600), (37, 1100, 70), (300, 129, 513), (67, 45, 1100) };

    /// <summary>Float64 reference: C (+)= op(A)·op(B) in the given layout.</summary>
    internal static double[] Reference(Layout layout, float[] a, float[] b, float[] c0, int m, int n, int k, bool accumulate)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? c0[i * n + j] : 0;
                for (int p = 0; p < k; p++)
                {
                    double av = layout == Layout.TN ? a[p * m + i] : a[i * k + p];
                    double bv = layout == Layout.NT ? b[j * k + p] : b[p * n + j];
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        return c;
    }

    internal static void Run(Layout layout, float[] a, float[] b, float[] c, int m, int n, int k, bool accumulate)
    {
        switch (layout)
        {
            case Layout.NN: GemmKernels.MatMul(a, b, c, m, n, k, accumulate); break;
            case Layout.TN: GemmKernels.MatMulTN(a, b, c, m, n, k, accumulate); break;
            default: GemmKernels.MatMulNT(a, b, c, m, n, k, accumulate); break;
        }
    }

    private static void CheckOne(Layout layout, int m, int n, int k, bool accumulate, int seed)
    {
        var a = TestData.Floats(m * k, seed);
        var b = TestData.Floats(k * n, seed + 1);
        var c = TestData.Floats(m * n, seed + 2);
        var expected = Reference(layout, a, b, c, m, n, k, accumulate);
        Run(layout, a, b, c, m, n, k, accumulate);
        // float32 sums of k terms of size <= 1: error grows ~ sqrt(k)·eps·k at worst.
        TestData.AssertClose(c, expected, 1e-4, 1e-5 * (k + 1), $"{layout} m={m} n={n} k={k} accumulate={accumulate}");
    }

    [Test]
    public void MatMul_AllTailSizes_MatchesFloat64Reference(
        [Values(Layout.NN, Layout.TN, Layout.NT)] Layout layout, [Values(false, true)] bool accumulate)
    {
        int seed = 1;
        foreach (int m in Sizes)
            foreach (int n in Sizes)
                foreach (int k in Sizes)
                    CheckOne(layout, m, n, k, accumulate, seed++);
    }

    [Test]
    public void MatMul_LargerThanCacheBlocks_MatchesFloat64Reference(
        [Values(Layout.NN, Layout.TN, Layout.NT)] Layout layout, [Values(false, true)] bool accumulate)
    {
        int seed = 100;
        foreach (var (m, n, k) in Blocked) CheckOne(layout, m, n, k, accumulate, seed += 3);
    }

    [Test]
    public void MatMul_SkinnyShapes_MatchesFloat64Reference(
        [Values(Layout.NN, Layout.TN, Layout.NT)] Layout layout, [Values(false, true)] bool accumulate)
    {
        // Batch-1 inference, one-logit heads and their gradients take the unpacked paths.
        int seed = 200;
        foreach (var (m, n, k) in new[] { (1, 512, 415), (4096, 1, 256), (1, 1, 4096), (4, 300, 33), (300, 4, 33), (5, 300, 33), (2, 1000, 3), (300, 2, 1) })
            CheckOne(layout, m, n, k, accumulate, seed += 3);
    }

    [Test]
    public void LinearForward_EveryEpilogue_MatchesFloat64Reference(
        [Values(Activation.None, Activation.Relu, Activation.Sigmoid)] Activation activation, [Values(false, true)] bool withBias)
    {
        int seed = 300;
        var shapes = new List<(int, int, int)> { (129, 67, 257), (1, 512, 415), (4096, 1, 13), (3, 5, 0), (70, 33, 1100) };
        foreach (int m in new[] { 0, 1, 3, 17, 33, 67 })
            foreach (int n in new[] { 1, 2, 15, 17, 33, 65 })
                foreach (int k in new[] { 1, 7, 31, 67 })
                    shapes.Add((m, n, k));
        foreach (var (m, n, k) in shapes)
        {
            seed += 3;
            var x = TestData.Floats(m * k, seed);
            var w = TestData.Floats(n * k, seed + 1);
            var bias = withBias ? TestData.Floats(n, seed + 2) : Array.Empty<float>();
            var y = TestData.Floats(m * n, seed + 3); // garbage that must be overwritten
            var pre = Reference(Layout.NT, x, w, y, m, n, k, accumulate: false);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double v = pre[i * n + j] + (withBias ? bias[j] : 0);
                    pre[i * n + j] = activation switch
                    {
                        Activation.Relu => Math.Max(v, 0),
                        Activation.Sigmoid => 1 / (1 + Math.Exp(-v)),
                        _ => v,
                    };
                }
            GemmKernels.LinearForward(x, w, bias, y, m, n, k, activation);
            TestData.AssertClose(y, pre, 1e-4, 1e-5 * (k + 1), $"LinearForward {activation} bias={withBias} m={m} n={n} k={k}");
        }
    }

    [Test]
    public void MatMulTN_LongK_MatchesFloat64ReferenceAndPackedPathBits([Values(false, true)] bool accumulate)
    {
        // Weight gradients of token projections: a small output over a long k take the unpacked path (whole 8x32
        // tiles, k >= 8 x the larger side); one row or column short of that shape takes the packed path. Both sum in
        // the same k blocks and order, so the same inputs give the same bits.
        int seed = 500;
        // (24, 288, 2400): a k block of B over 512 KiB, walked column panel by column panel.
        foreach (var (m, n, k) in new[] { (8, 32, 300), (16, 64, 1000), (64, 64, 2000), (24, 32, 777), (24, 288, 2400) })
        {
            seed += 5;
            CheckOne(Layout.TN, m, n, k, accumulate, seed);
            var a = TestData.Floats(k * (m + 1), seed);
            var b = TestData.Floats(k * n, seed + 1);
            var unpacked = TestData.Floats(m * n, seed + 2);
            var c0 = (float[])unpacked.Clone();
            GemmKernels.MatMulTN(a.AsSpan(0, k * m), b, unpacked, m, n, k, accumulate);
            // The same product as the first m rows of an (m + 1)-row one, which cannot take the unpacked path.
            var aWide = new float[k * (m + 1)];
            for (int p = 0; p < k; p++) Array.Copy(a, p * m, aWide, p * (m + 1), m);
            var packed = new float[(m + 1) * n];
            for (int i = 0; i < m; i++) Array.Copy(c0, i * n, packed, i * n, n);
            GemmKernels.MatMulTN(aWide, b, packed, m + 1, n, k, accumulate);
            Assert.That(unpacked, Is.EqualTo(packed.AsSpan(0, m * n).ToArray()), $"m={m} n={n} k={k}: unpacked vs packed bits");
        }
    }

    [Test]
    public void MatMulTN_NarrowOutput_MatchesFloat64ReferenceAndPackedPathBits([Values(false, true)] bool accumulate, [Values(1, 2)] int threads)
    {
        // A weight gradient with few columns (a layer with 13 inputs) is summed as outer products of A's rows, unpacked;
        // with more columns the same product takes the packed path. Both chain the multiply-adds over k in order, so
        // the narrow product equals the first columns of the wide one, bit for bit, on any thread count. 600 rows: several
        // 256-row blocks per thread, the last with rows past a multiple of 16.
        using (KernelThreads.Use(threads))
        {
            int seed = 700;
            foreach (var (m, n, k) in new[] { (512, 13, 300), (16, 1, 9), (67, 16, 33), (130, 5, 1000), (64, 3, 4096), (600, 7, 700) })
            {
                seed += 5;
                CheckOne(Layout.TN, m, n, k, accumulate, seed);
                const int wide = 40;
                var a = TestData.Floats(k * m, seed);
                var bWide = TestData.Floats(k * wide, seed + 1);
                var b = new float[k * n];
                for (int p = 0; p < k; p++) Array.Copy(bWide, p * wide, b, p * n, n);
                var narrow = TestData.Floats(m * n, seed + 2);
                var packed = new float[m * wide];
                for (int i = 0; i < m; i++) Array.Copy(narrow, i * n, packed, i * wide, n);
                GemmKernels.MatMulTN(a, b, narrow, m, n, k, accumulate);
                GemmKernels.MatMulTN(a, bWide, packed, m, wide, k, accumulate);
                for (int i = 0; i < m; i++)
                    Assert.That(narrow.AsSpan(i * n, n).ToArray(), Is.EqualTo(packed.AsSpan(i * wide, n).ToArray()), $"m={m} n={n} k={k}: row {i}, narrow vs packed bits");
            }
        }
    }

    [Test]
    public void LinearWeightGradients_LongKAndPacked_MatchFloat64Reference([Values(false, true)] bool accumulate)
    {
        // (64, 64, 4000) fuses the bias sums into the unpacked product; (20, 33, 300) and (300, 40, 600) (several row
        // and k blocks) take them while packing dY; (8, 200, 3000) splits columns between threads, so only the chunk
        // with column 0 sums; (4, 40, 50) and (40, 13, 70) take the small-shape paths and a separate column-sum pass;
        // (131, 503, 4133) (a large output, k past twice the range length, tails everywhere) sums fixed ranges of k into
        // partials, each range's bias sums taken while packing its dY. dB always accumulates.
        int seed = 700;
        foreach (var (m, n, k) in new[] { (64, 64, 4000), (8, 32, 1000), (20, 33, 300), (300, 40, 600), (8, 200, 3000), (4, 40, 50), (40, 13, 70), (3, 5, 0),
                     (131, 503, 4133) })
        {
            seed += 7;
            var dy = TestData.Floats(k * m, seed);
            var x = TestData.Floats(k * n, seed + 1);
            var dw = TestData.Floats(m * n, seed + 2);
            var db = TestData.Floats(m, seed + 3);
            var expectedW = Reference(Layout.TN, dy, x, dw, m, n, k, accumulate);
            var expectedB = new double[m];
            for (int i = 0; i < m; i++)
            {
                expectedB[i] = db[i];
                for (int p = 0; p < k; p++) expectedB[i] += dy[p * m + i];
            }
            GemmKernels.LinearWeightGradients(dy, x, dw, db, m, n, k, accumulate);
            TestData.AssertClose(dw, expectedW, 1e-4, 1e-5 * (k + 1), $"dW m={m} n={n} k={k}");
            TestData.AssertClose(db, expectedB, 1e-4, 1e-5 * (k + 1), $"dB m={m} n={n} k={k}");
        }
    }

    [Test]
    public void WeightGradientOfOneOutput_IsTheFloat32FmaChainInOrder([Values(false, true)] bool accumulate, [Values(1, 2, 3)] int threads)
    {
        // dW[1, n] = dYᵀ·X of a one-logit layer: each element must be fma(dY[p], X[p, j], ·) over p in order from 0 (or from
        // dW), whatever the split: 128-column register blocks, 16-column vectors and scalar tails, cut between threads.
        int seed = 900;
        foreach (int n in new[] { 1, 15, 16, 17, 129, 144, 300, 415 })
            foreach (int k in new[] { 1, 7, 1000 })
            {
                seed += 3;
                var dy = TestData.Floats(k, seed);
                var x = TestData.Floats(k * n, seed + 1);
                var dw = TestData.Floats(n, seed + 2);
                var expected = new float[n];
                for (int j = 0; j < n; j++)
                {
                    float acc = accumulate ? dw[j] : 0f;
                    for (int p = 0; p < k; p++) acc = MathF.FusedMultiplyAdd(dy[p], x[p * n + j], acc);
                    expected[j] = acc;
                }
                using (KernelThreads.Use(threads))
                    GemmKernels.LinearWeightGradients(dy, x, dw, default, 1, n, k, accumulate);
                Assert.That(dw, Is.EqualTo(expected), $"n={n} k={k}");
            }
    }

    [Test]
    public void LinearWeightGradients_OneOutputEmpty_ComputesTheOther()
    {
        const int m = 64, n = 64, k = 1000; // long-k shape: the fused path must not be needed for either alone
        var dy = TestData.Floats(k * m, 1);
        var x = TestData.Floats(k * n, 2);
        var dwBoth = new float[m * n]; var dbBoth = new float[m];
        GemmKernels.LinearWeightGradients(dy, x, dwBoth, dbBoth, m, n, k, accumulate: false);
        var dwOnly = new float[m * n];
        GemmKernels.LinearWeightGradients(dy, x, dwOnly, default, m, n, k, accumulate: false);
        var dbOnly = new float[m];
        GemmKernels.LinearWeightGradients(dy, x, default, dbOnly, m, n, k, accumulate: false);
        Assert.That(dwOnly, Is.EqualTo(dwBoth), "dW alone");
        TestData.AssertClose(dbOnly, dbBoth.Select(v => (double)v).ToArray(), 1e-5, 1e-4, "dB alone");
    }

    [Test]
    public void LinearWeightGradients_ShortBias_ThrowsNamingSizes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            GemmKernels.LinearWeightGradients(new float[4 * 8], new float[4 * 2], new float[8 * 2], new float[7], 8, 2, 4, false));
        Assert.That(ex!.Message, Does.Contain("dB").And.Contain("8").And.Contain("7"));
    }

    [Test]
    public void LinearWeightGradients_OneVersusSeveralThreads_BitIdentical([Values(2, 3)] int threads,
        [Values(0, 1, 2, 3, 4)] int shape)
    {
        // Row-order tiles (64 x 64), and panel-order tiles whose chunks end inside a tile row (24 x 288: 27 tiles);
        // the packed path with the bias sums taken while packing, rows split (300 x 40) and columns split (8 x 200);
        // a large output summed over fixed ranges of k (131 x 503, k = 6200: three ranges, one more than 2 threads).
        var (m, n, k) = shape switch
        {
            0 => (64, 64, 5000), 1 => (24, 288, 2400), 2 => (300, 40, 600), 3 => (8, 200, 3000), _ => (131, 503, 6200),
        };
        var dy = TestData.Floats(k * m, 1);
        var x = TestData.Floats(k * n, 2);
        (float[] W, float[] B) RunWith(int threads)
        {
            using (KernelThreads.Use(threads))
            {
                var dw = new float[m * n];
                var db = new float[m];
                GemmKernels.LinearWeightGradients(dy, x, dw, db, m, n, k, accumulate: false);
                return (dw, db);
            }
        }
        var one = RunWith(1);
        var several = RunWith(threads);
        Assert.That(several.W, Is.EqualTo(one.W));
        Assert.That(several.B, Is.EqualTo(one.B));
    }

    [Test]
    public void LinearForward_BatchOne_SplitAcrossThreads_SameBitsAsOneThread([Values(2, 3)] int threads)
    {
        // A batch-1 layer (415 -> 512 with bias and ReLU, W8's first top layer) is split by output features across the
        // threads: each output is the same dot product whoever computes it.
        const int n = 512, k = 415;
        var x = TestData.Floats(k, 31);
        var w = TestData.Floats(n * k, 32);
        var bias = TestData.Floats(n, 33);
        float[] RunWith(int t)
        {
            using (KernelThreads.Use(t))
            {
                var y = new float[n];
                GemmKernels.LinearForward(x, w, bias, y, 1, n, k, Activation.Relu);
                return y;
            }
        }
        var one = RunWith(1);
        Assert.That(RunWith(threads), Is.EqualTo(one));
        var expected = new double[n];
        for (int j = 0; j < n; j++)
        {
            double s = bias[j];
            for (int p = 0; p < k; p++) s += (double)x[p] * w[j * k + p];
            expected[j] = Math.Max(0, s);
        }
        TestData.AssertClose(one, expected, 1e-4, 1e-5 * (k + 1), "batch-1 forward vs float64");
    }

    [Test]
    public void MatMul_OneVersusAllThreads_BitIdentical([Values(Layout.NN, Layout.TN, Layout.NT)] Layout layout,
        [Values(263, 600)] int m)
    {
        // m = 263: threads split columns (row-major A) or pack B each for themselves (TN); m = 600 with k·n past
        // PrivatePackMaxFloats: threads split rows and share one packed B.
        int n = 301, k = m == 263 ? 300 : 1800;
        Assert.That((long)k * n > GemmKernels.PrivatePackMaxFloats, Is.EqualTo(m == 600));
        var a = TestData.Floats(m * k, 7);
        var b = TestData.Floats(k * n, 8);
        var c1 = new float[m * n];
        var c2 = new float[m * n];
        int many = Math.Max(2, KernelParallelism.MaxThreads);
        using (KernelThreads.Use(1)) Run(layout, a, b, c1, m, n, k, false);
        using (KernelThreads.Use(many)) Run(layout, a, b, c2, m, n, k, false);
        Assert.That(c2, Is.EqualTo(c1));
    }

    [Test]
    public void MatMul_NarrowEdgePanel_SameBitsAsAFullPanel([Values(Layout.NT, Layout.TN)] Layout layout, [Values(1, 13, 16)] int edge)
    {
        // n = 32 + edge ends in a panel of at most 16 columns (the half-width kernel); the same columns of a product with
        // n = 64 come from full 32-wide tiles. Row-major A (NT, read in place) and transposed A (TN, packed); m = 37 also
        // has edge rows.
        const int m = 37, k = 100, wide = 64;
        int n = 32 + edge;
        var a = TestData.Floats(m * k, 41);
        var bWide = TestData.Floats(wide * k, 42); // NT: [n, k] rows; TN: [k, n] columns taken below
        float[] B(int cols) => layout == Layout.NT
            ? bWide.AsSpan(0, cols * k).ToArray()
            : Enumerable.Range(0, k * cols).Select(i => bWide[i / cols * wide + i % cols]).ToArray();
        var cNarrow = new float[m * n];
        var cWide = new float[m * wide];
        Run(layout, a, B(n), cNarrow, m, n, k, accumulate: false);
        Run(layout, a, B(wide), cWide, m, wide, k, accumulate: false);
        for (int i = 0; i < m; i++)
            Assert.That(cNarrow.AsSpan(i * n, n).ToArray(), Is.EqualTo(cWide.AsSpan(i * wide, n).ToArray()), $"row {i}");
    }

    /// <summary>
    /// Y = S ⊙ (X·Wᵀ + b) + R: against float64, and bit for bit against LinearForward then one fused multiply-add per element,
    /// on one thread and on two. Shapes: a few rows (the dot-product path), edge panels of 1–16 and 17–31 columns, several
    /// row blocks (MC = 144), a column split (≤ 512 rows), a row split, two k blocks (KC = 512), an empty k; S and R as
    /// separate buffers and as one (DCNv2's first layer, x_l = x0).
    /// </summary>
    [Test]
    public void LinearForwardResidualProduct_MatchesFloat64AndTheUnfusedBits([Values(false, true)] bool withBias, [Values(false, true)] bool sameScaleAndShift)
    {
        int seed = 900;
        var shapes = new[] { (1, 45, 29), (3, 13, 7), (5, 45, 29), (37, 13, 61), (150, 429, 33), (300, 67, 129), (700, 33, 45), (40, 70, 600), (9, 17, 0) };
        foreach (var (m, n, k) in shapes)
        {
            seed += 7;
            var x = TestData.Floats(m * k, seed);
            var w = TestData.Floats(n * k, seed + 1);
            var bias = withBias ? TestData.Floats(n, seed + 2) : Array.Empty<float>();
            var scale = TestData.Floats(m * n, seed + 3);
            var shift = sameScaleAndShift ? scale : TestData.Floats(m * n, seed + 4);
            var pre = Reference(Layout.NT, x, w, new float[m * n], m, n, k, accumulate: false);
            var expectedH = new double[m * n];
            var expectedY = new double[m * n];
            for (int i = 0; i < m * n; i++)
            {
                expectedH[i] = pre[i] + (withBias ? bias[i % n] : 0);
                expectedY[i] = scale[i] * expectedH[i] + shift[i];
            }
            var unfusedH = new float[m * n];
            GemmKernels.LinearForward(x, w, bias, unfusedH, m, n, k, Activation.None);
            var unfusedY = new float[m * n];
            for (int i = 0; i < m * n; i++) unfusedY[i] = MathF.FusedMultiplyAdd(scale[i], unfusedH[i], shift[i]);
            foreach (int threads in new[] { 1, 2 })
            {
                string what = $"m={m} n={n} k={k} bias={withBias} S=R:{sameScaleAndShift} threads={threads}";
                var h = TestData.Floats(m * n, seed + 5); // garbage that must be overwritten
                var y = TestData.Floats(m * n, seed + 6);
                using (KernelThreads.Use(threads))
                    GemmKernels.LinearForwardResidualProduct(x, w, bias, h, scale, shift, y, m, n, k);
                TestData.AssertClose(h, expectedH, 1e-4, 1e-5 * (k + 1), "hidden " + what);
                TestData.AssertClose(y, expectedY, 1e-4, 1e-5 * (k + 1), "output " + what);
                Assert.That(h, Is.EqualTo(unfusedH), "hidden bits " + what);
                Assert.That(y, Is.EqualTo(unfusedY), "output bits " + what);
            }
        }
    }

    [Test]
    public void LinearForwardResidualProduct_OutputSharingAnInput_ThrowsNamingIt()
    {
        int m = 3, n = 4, k = 2;
        var x = new float[m * k]; var w = new float[n * k]; var h = new float[m * n]; var s = new float[m * n];
        var ex = Assert.Throws<ArgumentException>(() => GemmKernels.LinearForwardResidualProduct(x, w, default, h, s, s, s, m, n, k));
        Assert.That(ex!.Message, Does.Contain("output").And.Contain("shares memory"));
        ex = Assert.Throws<ArgumentException>(() => GemmKernels.LinearForwardResidualProduct(x, w, default, h, s, s, h, m, n, k));
        Assert.That(ex!.Message, Does.Contain("output").And.Contain("shares memory"));
        ex = Assert.Throws<ArgumentException>(() => GemmKernels.LinearForwardResidualProduct(x, w, default, h, s, new float[m * n - 1], new float[m * n], m, n, k));
        Assert.That(ex!.Message, Does.Contain("shift").And.Contain((m * n).ToString()));
    }

    /// <summary>
    /// k ≤ 16 with a small B takes the row-by-row path. Each column of C depends on its own column of B alone, so the
    /// columns of a short product must equal, bit for bit, the first columns of the same product widened past the path's
    /// B limit (which takes the blocked path): Linear forwards with every epilogue (a sigmoid's columns past the last 16
    /// within 1e-6), and MatMul NN / TN with and without accumulate. Then rows split over two threads: the same bits as one.
    /// </summary>
    [Test]
    public void ShortK_ColumnsEqualTheBlockedPathBits([Values(1, 3, 13, 16)] int k)
    {
        int seed = 1500 + k;
        int wide = GemmKernels.ShortKMaxB / k + 33;
        var widths = new[] { 1, 13, 17, 64, 100 };
        foreach (int m in new[] { 5, 37 })
        {
            seed += 7;
            var x = TestData.Floats(m * k, seed);
            var wWide = TestData.Floats(wide * k, seed + 1);   // [wide, k]: a Linear weight
            var biasWide = TestData.Floats(wide, seed + 2);
            foreach (var activation in new[] { Activation.None, Activation.Relu, Activation.Sigmoid })
                foreach (bool withBias in new[] { false, true })
                {
                    var yWide = new float[m * wide];
                    GemmKernels.LinearForward(x, wWide, withBias ? biasWide : default, yWide, m, wide, k, activation);
                    foreach (int n in widths)
                    {
                        var yShort = TestData.Floats(m * n, seed + 3);
                        GemmKernels.LinearForward(x, wWide.AsSpan(0, n * k), withBias ? biasWide.AsSpan(0, n) : default, yShort, m, n, k, activation);
                        // A sigmoid past the last 16 columns of a row takes the epilogue's narrower steps in the short
                        // product but the 16-wide one in the wide product (its columns there are mid-row): close, not equal.
                        int exact = activation == Activation.Sigmoid ? n / 16 * 16 : n;
                        for (int i = 0; i < m; i++)
                        {
                            string what = $"LinearForward {activation} bias={withBias} m={m} n={n} k={k}: row {i}";
                            Assert.That(yShort.AsSpan(i * n, exact).ToArray(), Is.EqualTo(yWide.AsSpan(i * wide, exact).ToArray()), what);
                            for (int j = exact; j < n; j++) Assert.That(yShort[i * n + j], Is.EqualTo(yWide[i * wide + j]).Within(1e-6f), what);
                        }
                    }
                }
            var bWide = TestData.Floats(k * wide, seed + 4);   // [k, wide]: row-major B
            foreach (var layout in new[] { Layout.NN, Layout.TN })
                foreach (bool accumulate in new[] { false, true })
                {
                    var c0 = TestData.Floats(m * wide, seed + 5);
                    var cWide = (float[])c0.Clone();
                    Run(layout, x, bWide, cWide, m, wide, k, accumulate);
                    foreach (int n in widths)
                    {
                        var b = new float[k * n];
                        for (int p = 0; p < k; p++) Array.Copy(bWide, p * wide, b, p * n, n);
                        var cShort = new float[m * n];
                        for (int i = 0; i < m; i++) Array.Copy(c0, i * wide, cShort, i * n, n);
                        Run(layout, x, b, cShort, m, n, k, accumulate);
                        for (int i = 0; i < m; i++)
                            Assert.That(cShort.AsSpan(i * n, n).ToArray(), Is.EqualTo(cWide.AsSpan(i * wide, n).ToArray()),
                                $"{layout} accumulate={accumulate} m={m} n={n} k={k}: row {i}");
                    }
                }
        }
        // Enough rows to split: one thread and two give the same bits.
        const int rows = 3000, cols = 100;
        var xs = TestData.Floats(rows * k, seed + 6);
        var ws = TestData.Floats(cols * k, seed + 7);
        var bs = TestData.Floats(cols, seed + 8);
        var y1 = new float[rows * cols];
        var y2 = new float[rows * cols];
        using (KernelThreads.Use(1)) GemmKernels.LinearForward(xs, ws, bs, y1, rows, cols, k, Activation.Sigmoid);
        using (KernelThreads.Use(2)) GemmKernels.LinearForward(xs, ws, bs, y2, rows, cols, k, Activation.Sigmoid);
        Assert.That(y2, Is.EqualTo(y1), "two threads against one");
    }

    [Test]
    public void MatMul_ShortBuffer_ThrowsNamingSizes()
    {
        var ex = Assert.Throws<ArgumentException>(() => GemmKernels.MatMul(new float[5], new float[6], new float[6], 2, 3, 3, false));
        Assert.That(ex!.Message, Does.Contain("m=2").And.Contain("k=3").And.Contain("got 5"));
    }

    [Test]
    public void LinearForward_ShortBias_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => GemmKernels.LinearForward(new float[6], new float[6], new float[1], new float[4], 2, 2, 3, Activation.None));
        Assert.That(ex!.Message, Does.Contain("bias").And.Contain("2"));
    }

    /// <summary>
    /// The fallback runs (SimdFallbackTests) set these variables; this proves the child really took the
    /// narrower path rather than silently testing the wide one again.
    /// </summary>
    [Test]
    public void HardwareSwitches_WhenDisabledByEnvironment_AreHonoured()
    {
        // .NET 10 groups the AVX-512 subsets under DOTNET_EnableAVX512; older runtimes read DOTNET_EnableAVX512F.
        if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX512") == "0")
        {
            Assert.That(Vector512.IsHardwareAccelerated, Is.False);
            Assert.That(GemmKernels.Selected, Is.Not.EqualTo(GemmKernels.MicroKernel.V512x8x32));
        }
        if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX2") == "0")
            Assert.That(Vector256.IsHardwareAccelerated, Is.False);
        if (Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") == "0")
        {
            Assert.That(Vector128.IsHardwareAccelerated, Is.False);
            Assert.That(GemmKernels.Selected, Is.EqualTo(GemmKernels.MicroKernel.Scalar4x4));
        }
        TestContext.Out.WriteLine($"Gemm micro-kernel: {GemmKernels.Selected}");
    }
}

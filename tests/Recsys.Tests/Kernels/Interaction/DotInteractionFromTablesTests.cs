using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Kernels.Interaction;
using Recsys.Tests.Kernels.EmbeddingBag;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Interaction;

/// <summary>The fused inference path: embedding bags pooled per sample into L1 and interacted there.</summary>
[Category("Kernel")]
public class DotInteractionFromTablesTests
{
    /// <summary>F tables of different sizes (rows start at weightStarts[f] inside their arrays) and feature-major bags over them.</summary>
    private sealed record Case(float[][] Weights, int[] Rows, int[] Starts, int[] Indices, int[] Offsets, float[] Psw, float[] Dense, int Batch, int F, int D);

    private static Case MakeCase(int batch, int f, int d, int maxLen, int seed)
    {
        var rows = new int[f];
        var starts = new int[f];
        var weights = new float[f][];
        for (int t = 0; t < f; t++)
        {
            rows[t] = 3 + (t * 7 + seed) % 29;
            starts[t] = t % 3 * 5; // some tables start mid-array
            weights[t] = TestData.Floats(starts[t] + rows[t] * d + 2, seed + 10 * t, -1f, 1f);
        }
        var (idx, off, psw) = EmbeddingBagReference.Bags(f * batch, maxLen, rows: 1_000, seed: seed, baseOffset: 1);
        for (int t = 0; t < f; t++)
            for (int p = off[t * batch]; p < off[(t + 1) * batch]; p++) idx[p] %= rows[t];
        return new Case(weights, rows, starts, idx, off, psw, TestData.Floats(batch * d, seed + 1, -1f, 1f), batch, f, d);
    }

    private static float[] Fused(Case c, PoolingMode mode, bool weighted)
    {
        var y = new float[c.Batch * DotInteractionKernels.OutputDim(c.F, c.D)];
        Array.Fill(y, float.NaN);
        DotInteractionKernels.ForwardFromTables(c.Dense, c.Weights, c.Rows, c.D, c.Batch, c.Indices, c.Offsets, weighted ? c.Psw : default, mode, y, c.Starts);
        return y;
    }

    private static float[] TwoCalls(Case c, PoolingMode mode, bool weighted)
    {
        var e = new float[c.Batch * c.F * c.D];
        EmbeddingBagKernels.ForwardTables(c.Weights, c.Rows, c.D, c.Batch, c.Indices, c.Offsets, weighted ? c.Psw : default, mode, e, c.F * c.D, 0, c.Starts);
        var y = new float[c.Batch * DotInteractionKernels.OutputDim(c.F, c.D)];
        DotInteractionKernels.Forward(c.Dense, e, y, c.Batch, c.F, c.D);
        return y;
    }

    /// <summary>Float64: pool every bag, then every pair's dot product.</summary>
    private static double[] Reference(Case c, PoolingMode mode, bool weighted)
    {
        int n = c.F + 1, width = DotInteractionKernels.OutputDim(c.F, c.D);
        var y = new double[c.Batch * width];
        var t = new double[n, c.D];
        for (int b = 0; b < c.Batch; b++)
        {
            for (int k = 0; k < c.D; k++) t[0, k] = c.Dense[b * c.D + k];
            for (int f = 0; f < c.F; f++)
            {
                int p0 = c.Offsets[f * c.Batch + b], p1 = c.Offsets[f * c.Batch + b + 1];
                for (int k = 0; k < c.D; k++)
                {
                    double s = 0;
                    for (int p = p0; p < p1; p++) s += (weighted ? c.Psw[p] : 1.0) * c.Weights[f][c.Starts[f] + c.Indices[p] * c.D + k];
                    t[f + 1, k] = mode == PoolingMode.Mean && p1 > p0 ? s / (p1 - p0) : s;
                }
            }
            for (int k = 0; k < c.D; k++) y[b * width + k] = t[0, k];
            int q = c.D;
            for (int i = 1; i < n; i++)
                for (int j = 0; j < i; j++)
                {
                    double s = 0;
                    for (int k = 0; k < c.D; k++) s += t[i, k] * t[j, k];
                    y[b * width + q++] = s;
                }
        }
        return y;
    }

    [Test]
    public void OddSizes_MatchFloat64Reference_AndTheTwoCallsBitwise(
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted)
    {
        // Dims hit every tail of the 16-wide vectors and the 64-wide pooling block; F = 26 spans two 16-column blocks of Tᵀ;
        // bags of 0..3 ids include empty ones and single ids.
        foreach (int d in new[] { 1, 7, 16, 17, 33, 64, 67 })
            foreach (int f in new[] { 1, 3, 26 })
                foreach (int batch in new[] { 1, 5, 37 })
                {
                    var c = MakeCase(batch, f, d, maxLen: 3, seed: d * 31 + f * 7 + batch);
                    var fused = Fused(c, mode, weighted);
                    string what = $"B={batch} F={f} D={d} {mode} weighted={weighted}";
                    Assert.That(fused, Is.EqualTo(TwoCalls(c, mode, weighted)), what);
                    TestData.AssertClose(fused, Reference(c, mode, weighted), 1e-4, 1e-4, what);
                }
    }

    [Test]
    public void DlrmShape_ManySamples_TheSameBitsForOneTwoAndThreeThreads()
    {
        // Enough samples (and work) for several chunks, so samples are split across threads.
        var c = MakeCase(batch: 301, f: 26, d: 64, maxLen: 2, seed: 5);
        var expected = TwoCalls(c, PoolingMode.Sum, weighted: false);
        foreach (int threads in new[] { 1, 2, 3 })
            using (KernelThreads.Use(threads))
                Assert.That(Fused(c, PoolingMode.Sum, weighted: false), Is.EqualTo(expected), $"{threads} threads");
    }

    /// <summary>A DLRM-like case at pooling 1: every bag holds exactly one id; the ids start at position 3.</summary>
    private static Case OneIdCase(int batch, int seed)
    {
        var c = MakeCase(batch, f: 26, d: 64, maxLen: 1, seed: seed);
        var r = new Random(seed);
        var idx = new int[3 + 26 * batch];
        for (int f = 0; f < 26; f++)
            for (int b = 0; b < batch; b++) idx[3 + f * batch + b] = r.Next(c.Rows[f]);
        var off = Enumerable.Range(0, 26 * batch + 1).Select(i => i + 3).ToArray();
        return c with { Indices = idx, Offsets = off };
    }

    [Test]
    public void OneIdBags_MatchFloat64Reference_AndTheTwoCallsBitwise_OnOneTwoAndThreeThreads([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode)
    {
        // Pooling 1 at D = 64 takes the one-id loop (ids checked first, rows copied without offsets): same bits as the two
        // calls on every thread count, which split the samples differently.
        var c = OneIdCase(batch: 301, seed: 12);
        var expected = TwoCalls(c, mode, weighted: false);
        foreach (int threads in new[] { 1, 2, 3 })
            using (KernelThreads.Use(threads))
                Assert.That(Fused(c, mode, weighted: false), Is.EqualTo(expected), $"{threads} threads");
        TestData.AssertClose(expected, Reference(c, mode, weighted: false), 1e-4, 1e-4, $"{mode}");
    }

    [Test]
    public void OneIdBags_IdsOutsideTheirTables_ReportTheFirstBadPosition([Values(1, 2, 3)] int threads)
    {
        // Bad ids in a late sample of table 3 and an early sample of table 20 (different chunks on two or three threads):
        // the lower position (table 3's) is reported.
        var c = OneIdCase(batch: 301, seed: 13);
        int first = c.Offsets[3 * c.Batch + 290], second = c.Offsets[20 * c.Batch + 2];
        c.Indices[second] = -1;
        c.Indices[first] = c.Rows[3];
        using (KernelThreads.Use(threads))
        {
            var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() => Fused(c, PoolingMode.Sum, weighted: false));
            Assert.That((ex!.Table, ex.Position, ex.Id, ex.Rows), Is.EqualTo((3, first, c.Rows[3], c.Rows[3])));
        }
    }

    [Test]
    public void EmptyBatch_WritesNothing()
    {
        var c = MakeCase(batch: 1, f: 2, d: 4, maxLen: 2, seed: 1);
        var y = new[] { 42f };
        DotInteractionKernels.ForwardFromTables(default, c.Weights, c.Rows, 4, 0, Array.Empty<int>(), new[] { 0 }, default, PoolingMode.Sum, y, c.Starts);
        Assert.That(y[0], Is.EqualTo(42f));
    }

    [Test]
    public void IdsOutsideTheirTables_ReportTheFirstBadPosition_FromAnyThread()
    {
        var c = MakeCase(batch: 301, f: 26, d: 64, maxLen: 1, seed: 9);
        // Two bad ids. Positions are feature-major, so a late sample of table 3 comes before an early sample of table 20 in
        // the ids, but with two threads the early sample's chunk runs first. The first position must be reported.
        int first = -1, second = -1;
        for (int p = c.Offsets[3 * c.Batch + 290]; p < c.Offsets[4 * c.Batch] && first < 0; p++) first = p;
        for (int p = c.Offsets[20 * c.Batch + 2]; p < c.Offsets[21 * c.Batch] && second < 0; p++) second = p;
        Assert.That(first, Is.GreaterThanOrEqualTo(0).And.LessThan(second), "test setup: both bags hold ids");
        c.Indices[second] = -1;
        c.Indices[first] = c.Rows[3];
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() => Fused(c, PoolingMode.Sum, weighted: false));
        Assert.That((ex!.Table, ex.Position, ex.Id, ex.Rows), Is.EqualTo((3, first, c.Rows[3], c.Rows[3])));
        Assert.That(ex.Message, Does.Contain($"position {first}"));
    }

    [Test]
    public void WrongSizes_NameTheArgumentAndTheSizes()
    {
        var c = MakeCase(batch: 4, f: 3, d: 8, maxLen: 2, seed: 3);
        int width = DotInteractionKernels.OutputDim(3, 8);
        var ok = new float[4 * width];
        var ex = Assert.Throws<ArgumentException>(() => DotInteractionKernels.ForwardFromTables(c.Dense.AsSpan(0, 31), c.Weights, c.Rows, 8, 4,
            c.Indices, c.Offsets, default, PoolingMode.Sum, ok, c.Starts));
        Assert.That(ex!.ParamName, Is.EqualTo("dense"));
        Assert.That(ex.Message, Does.Contain("32"));
        ex = Assert.Throws<ArgumentException>(() => DotInteractionKernels.ForwardFromTables(c.Dense, c.Weights, c.Rows, 8, 4,
            c.Indices, c.Offsets, default, PoolingMode.Sum, new float[4 * width - 1], c.Starts));
        Assert.That(ex!.ParamName, Is.EqualTo("output"));
        Assert.That(ex.Message, Does.Contain($"{4 * width}"));
        ex = Assert.Throws<ArgumentException>(() => DotInteractionKernels.ForwardFromTables(c.Dense, c.Weights, c.Rows, 8, 4,
            c.Indices, c.Offsets.AsSpan(0, 12), default, PoolingMode.Sum, ok, c.Starts));
        Assert.That(ex!.ParamName, Is.EqualTo("offsets"));
        Assert.That(ex.Message, Does.Contain("13"));
        ex = Assert.Throws<ArgumentException>(() => DotInteractionKernels.ForwardFromTables(c.Dense, Array.Empty<float[]>(), Array.Empty<int>(), 8, 4,
            c.Indices, c.Offsets, default, PoolingMode.Sum, ok));
        Assert.That(ex!.ParamName, Is.EqualTo("weights"));
    }
}

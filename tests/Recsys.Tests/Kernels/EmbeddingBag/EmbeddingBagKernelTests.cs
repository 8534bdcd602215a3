using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.EmbeddingBag;

[Category("Kernel")]
public class EmbeddingBagKernelTests
{
    private static readonly int[] OddDims = { 1, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 67 };

    [Test]
    public void Forward_OddDimsEmptyBagsDuplicates_MatchesFloat64Reference(
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted,
        [Values(5, 20)] int maxLen)
    {
        foreach (int dim in OddDims)
        {
            const int rows = 11, bags = 13;
            var w = TestData.Floats(rows * dim, seed: dim);
            var (idx, off, psw) = EmbeddingBagReference.Bags(bags, maxLen, rows, seed: 100 + dim, baseOffset: 2);
            // Strided output: two junk columns before and one after each bag, all poisoned with NaN.
            int stride = dim + 3;
            var output = new float[bags * stride];
            Array.Fill(output, float.NaN);
            EmbeddingBagKernels.Forward(w, rows, dim, idx, off, weighted ? psw : default, mode, output, stride, 2);

            var expected = EmbeddingBagReference.Forward(w, dim, idx, off, weighted ? psw : null, mode == PoolingMode.Mean);
            var actual = new float[bags * dim];
            for (int b = 0; b < bags; b++)
            {
                Array.Copy(output, b * stride + 2, actual, b * dim, dim);
                Assert.That(float.IsNaN(output[b * stride]) && float.IsNaN(output[b * stride + 1]) && float.IsNaN(output[b * stride + dim + 2]),
                    $"dim {dim}: bag {b} wrote outside its slice");
            }
            TestData.AssertClose(actual, expected, rtol: 1e-5, atol: 1e-5, $"Forward dim {dim} {mode} weighted={weighted}");
        }
    }

    [Test]
    public void Forward_Dim64UnweightedLongBags_MatchesFloat64Reference([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(1, 2)] int threads)
    {
        // The D = 64 row-sum loop: bags of 0..150 ids, so the prefetch 64 ids ahead stops inside bags, across bag
        // boundaries and at the end of each thread's share; one-id bags take the row copy. Output poisoned with NaN.
        using (KernelThreads.Use(threads))
        {
            const int rows = 3000, dim = 64, bags = 61;
            var w = TestData.Floats(rows * dim, seed: 64);
            var (idx, off, _) = EmbeddingBagReference.Bags(bags, 150, rows, seed: 65);
            off[7] = off[6] + 1; // and a one-id bag among them
            for (int b = 8; b <= bags; b++) off[b] = Math.Max(off[b], off[b - 1]);
            var output = new float[bags * dim];
            Array.Fill(output, float.NaN);
            EmbeddingBagKernels.Forward(w, rows, dim, idx, off, default, mode, output, dim, 0);
            var expected = EmbeddingBagReference.Forward(w, dim, idx, off, null, mode == PoolingMode.Mean);
            TestData.AssertClose(output, expected, rtol: 1e-5, atol: 1e-5, $"D=64 {mode}, {threads} threads");
        }
    }

    [Test]
    public void Forward_EmptyBag_GivesZeros([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode)
    {
        var w = TestData.Floats(4 * 64, 1);
        var output = new float[3 * 64];
        Array.Fill(output, float.NaN);
        EmbeddingBagKernels.Forward(w, 4, 64, new[] { 1, 2 }, new[] { 0, 0, 2, 2 }, default, mode, output, 64, 0);
        Assert.That(output.AsSpan(0, 64).ToArray(), Is.All.EqualTo(0f));
        Assert.That(output.AsSpan(128, 64).ToArray(), Is.All.EqualTo(0f));
    }

    [Test]
    public void ForwardTables_ThreeTables_EqualsPerTableForwardBitwise([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode,
        [Values(4, 20)] int maxLen)
    {
        const int dim = 33, batch = 9, tables = 3;
        int[] rows = { 5, 17, 2 };
        var weights = new float[tables][];
        for (int f = 0; f < tables; f++) weights[f] = TestData.Floats(rows[f] * dim, 10 + f);
        // Feature-major offsets over all tables; ids of table f are valid for rows[f].
        var (idx, off, psw) = EmbeddingBagReference.Bags(tables * batch, maxLen, rows: 2, seed: 7);
        for (int f = 0; f < tables; f++)
            for (int p = off[f * batch]; p < off[(f + 1) * batch]; p++) idx[p] = (idx[p] * 7919 + p) % rows[f];

        var fused = new float[batch * tables * dim];
        EmbeddingBagKernels.ForwardTables(weights, rows, dim, batch, idx, off, psw, mode, fused, tables * dim, 0);
        for (int f = 0; f < tables; f++)
        {
            var single = new float[batch * tables * dim];
            EmbeddingBagKernels.Forward(weights[f], rows[f], dim, idx, off.AsSpan(f * batch, batch + 1), psw, mode, single, tables * dim, f * dim);
            for (int b = 0; b < batch; b++)
                Assert.That(fused.AsSpan(b * tables * dim + f * dim, dim).ToArray(), Is.EqualTo(single.AsSpan(b * tables * dim + f * dim, dim).ToArray()),
                    $"table {f} bag {b}");
        }
    }

    [Test]
    public void BackwardCollect_OddDims_MatchesCoalescedFloat64Reference(
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted)
    {
        var ws = new EmbeddingBagWorkspace();
        foreach (int dim in OddDims)
        {
            const int rows = 9, bags = 15;
            var w = TestData.Floats(rows * dim, seed: dim);
            var wBefore = (float[])w.Clone();
            var (idx, off, psw) = EmbeddingBagReference.Bags(bags, maxLen: 6, rows, seed: 300 + dim, baseOffset: 1);
            var dOut = TestData.Floats(bags * dim, seed: 400 + dim);
            EmbeddingBagKernels.Backward(w, rows, dim, idx, off, weighted ? psw : default, mode, dOut, dim, 0,
                SparseUpdate.Collect, default, default, ws);

            var expected = EmbeddingBagReference.RowGradients(dim, idx, off, weighted ? psw : null, mode == PoolingMode.Mean, dOut);
            Assert.That(ws.UniqueIds(0).ToArray(), Is.EqualTo(expected.Keys.ToArray()), $"dim {dim}: unique ids");
            var flat = expected.Values.SelectMany(r => r).ToArray();
            TestData.AssertClose(ws.RowGradients(0), flat, rtol: 1e-5, atol: 1e-5, $"row grads dim {dim} {mode} weighted={weighted}");
            Assert.That(w, Is.EqualTo(wBefore), "Collect must not change the weights");
        }
    }

    [Test]
    public void BackwardTables_Collect_MatchesPerTableBackward()
    {
        const int dim = 17, batch = 7, tables = 2;
        int[] rows = { 6, 4 };
        var weights = new[] { TestData.Floats(6 * dim, 1), TestData.Floats(4 * dim, 2) };
        var (idx, off, psw) = EmbeddingBagReference.Bags(tables * batch, maxLen: 4, rows: 4, seed: 3);
        var dOut = TestData.Floats(batch * tables * dim, 4);
        var ws = new EmbeddingBagWorkspace();
        EmbeddingBagKernels.BackwardTables(weights, rows, dim, batch, idx, off, psw, PoolingMode.Sum, dOut, tables * dim, 0,
            SparseUpdate.Collect, default, default, ws);
        var single = new EmbeddingBagWorkspace();
        for (int f = 0; f < tables; f++)
        {
            EmbeddingBagKernels.Backward(weights[f], rows[f], dim, idx, off.AsSpan(f * batch, batch + 1), psw, PoolingMode.Sum,
                dOut, tables * dim, f * dim, SparseUpdate.Collect, default, default, single);
            Assert.That(ws.UniqueIds(f).ToArray(), Is.EqualTo(single.UniqueIds(0).ToArray()), $"table {f} ids");
            Assert.That(ws.RowGradients(f).ToArray(), Is.EqualTo(single.RowGradients(0).ToArray()), $"table {f} grads");
        }
    }

    [Test]
    public void Backward_Sgd_UpdatesTouchedRowsOnly()
    {
        const int rows = 50, dim = 19, bags = 6;
        var w = TestData.Floats(rows * dim, 5);
        var before = (float[])w.Clone();
        var (idx, off, _) = EmbeddingBagReference.Bags(bags, maxLen: 3, rows: 10, seed: 6); // ids < 10 only
        var dOut = TestData.Floats(bags * dim, 7);
        EmbeddingBagKernels.Backward(w, rows, dim, idx, off, default, PoolingMode.Mean, dOut, dim, 0,
            SparseUpdate.Sgd(0.5f), default, default, new EmbeddingBagWorkspace());
        var g = EmbeddingBagReference.RowGradients(dim, idx, off, null, true, dOut);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < dim; c++)
            {
                double expected = before[r * dim + c] - (g.TryGetValue(r, out var gr) ? 0.5 * gr[c] : 0.0);
                if (!g.ContainsKey(r)) Assert.That(w[r * dim + c], Is.EqualTo(before[r * dim + c]), $"untouched row {r} changed");
                else Assert.That(w[r * dim + c], Is.EqualTo(expected).Within(1e-5), $"row {r} col {c}");
            }
    }

    [Test]
    public void Forward_IdOutOfRange_ThrowsNamingIdPositionRows([Values(-1, 7, int.MaxValue, int.MinValue)] int badId)
    {
        var w = TestData.Floats(7 * 16, 1);
        int[] idx = { 0, 3, 6, badId, 2 };
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.Forward(w, 7, 16, idx, new[] { 0, 2, 5 }, default, PoolingMode.Sum, new float[32], 16, 0));
        Assert.That(ex!.Position, Is.EqualTo(3));
        Assert.That(ex.Id, Is.EqualTo(badId));
        Assert.That(ex.Rows, Is.EqualTo(7));
        Assert.That(ex.Message, Does.Contain(badId.ToString()).And.Contain("position 3").And.Contain("7 rows"));
    }

    [Test]
    public void Backward_IdOutOfRange_ThrowsAndUpdatesNothing()
    {
        var w = TestData.Floats(7 * 16, 1);
        var before = (float[])w.Clone();
        int[] idx = { 0, 3, 6, 9, 2 };
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.Backward(w, 7, 16, idx, new[] { 0, 2, 5 }, default, PoolingMode.Sum, new float[32], 16, 0,
                SparseUpdate.Sgd(1f), default, default, new EmbeddingBagWorkspace()));
        Assert.That(ex!.Position, Is.EqualTo(3));
        Assert.That(w, Is.EqualTo(before));
    }

    [Test]
    public void ForwardTables_SeveralBadIds_ReportsTheFirstPosition([Values(1, 9, 40)] int bagLength, [Values(8, 64)] int dim)
    {
        // Two tables x 3 bags; bad ids in table 1 (position of bag 0) and table 0 (bag 2): the earlier position wins,
        // whichever order the kernel pools the bags in (sample-major for short bags, table-major for long ones;
        // dim 64 with one id per bag takes the row-copy path; 40 ids per bag are checked 16 at a time, then a tail).
        const int batch = 3, tables = 2;
        var weights = new[] { TestData.Floats(4 * dim, 1), TestData.Floats(4 * dim, 2) };
        var idx = new int[tables * batch * bagLength];
        var off = new int[tables * batch + 1];
        for (int i = 0; i <= tables * batch; i++) off[i] = i * bagLength;
        int badTable0 = 2 * bagLength + bagLength - 1, badTable1 = 3 * bagLength;
        idx[badTable0] = 4;
        idx[badTable1] = 7;
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.ForwardTables(weights, new[] { 4, 4 }, dim, batch, idx, off, default, PoolingMode.Sum,
                new float[batch * tables * dim], tables * dim, 0));
        Assert.That((ex!.Table, ex.Position, ex.Id), Is.EqualTo((0, badTable0, 4)));
    }

    [Test]
    public void ForwardTables_IdOutOfRangeInSecondTable_NamesTable()
    {
        var weights = new[] { new float[4 * 8], new float[2 * 8] };
        int[] idx = { 3, 3, 1, 2 }; // table 1 has 2 rows: id 2 at position 3 is out of range
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.ForwardTables(weights, new[] { 4, 2 }, 8, 2, idx, new[] { 0, 1, 2, 3, 4 }, default, PoolingMode.Sum,
                new float[2 * 16], 16, 0));
        Assert.That((ex!.Table, ex.Position, ex.Id, ex.Rows), Is.EqualTo((1, 3, 2, 2)));
    }

    [Test]
    public void Forward_BadOffsets_ThrowsArgumentException()
    {
        var w = new float[4 * 8];
        Assert.Throws<ArgumentException>(() =>
            EmbeddingBagKernels.Forward(w, 4, 8, new[] { 0, 1 }, new[] { 0, 2, 1 }, default, PoolingMode.Sum, new float[16], 8, 0));
        Assert.Throws<ArgumentException>(() =>
            EmbeddingBagKernels.Forward(w, 4, 8, new[] { 0, 1 }, new[] { 0, 3 }, default, PoolingMode.Sum, new float[8], 8, 0));
        Assert.Throws<ArgumentException>(() =>
            EmbeddingBagKernels.Forward(w, 4, 8, new[] { 0, 1 }, new[] { 0, 1, 2 }, default, PoolingMode.Sum, new float[15], 8, 0));
    }

    [Test]
    public void Forward_OffsetsDescendAnywhere_ErrorNamesTheFirstDescent([Values(0, 7, 15, 16, 17, 40, 62, 63)] int at)
    {
        // The monotonicity check compares 16 (or 8) pairs at a time; the first descent must be found in a vector block,
        // across a block boundary and in the scalar tail alike (64 bags: four blocks of 16, none left over; 63 is the last pair).
        const int bags = 64, dim = 4;
        var off = Enumerable.Range(0, bags + 1).Select(i => 2 * i).ToArray();
        off[at + 1] = off[at] - 1;
        if (at + 30 < bags) off[at + 30] = -5; // a later descent must not be the one reported
        var ex = Assert.Throws<ArgumentException>(() =>
            EmbeddingBagKernels.Forward(new float[10 * dim], 10, dim, new int[2 * bags], off, default, PoolingMode.Sum, new float[bags * dim], dim, 0));
        Assert.That(ex!.Message, Does.Contain($"offsets[{at + 1}] = {off[at + 1]} < offsets[{at}] = {off[at]}"));
    }

    [Test]
    public unsafe void RadixSortHigh_WideIds_SortsStablyByIdThenPosition()
    {
        var r = new Random(9);
        int n = 5000;
        var keys = new ulong[n];
        for (int i = 0; i < n; i++) keys[i] = ((ulong)(uint)r.Next(1 << 26) << 32) | (uint)i;
        var expected = keys.OrderBy(k => k >> 32).ThenBy(k => (uint)k).ToArray();
        var tmp = new ulong[n];
        int* count = stackalloc int[2048];
        fixed (ulong* k = keys)
        fixed (ulong* t = tmp)
            EmbeddingBagKernels.RadixSortHigh(k, t, n, 26, count);
        Assert.That(keys, Is.EqualTo(expected));
    }

    [Test]
    public void ForwardAndBackward_TwoThreadsVsOne_BitIdentical()
    {
        const int rows = 300, dim = 64, batch = 512, tables = 2;
        var (idx, off, psw) = EmbeddingBagReference.Bags(tables * batch, maxLen: 8, rows, seed: 11);
        var dOut = TestData.Floats(batch * tables * dim, 12);
        float[][] Run(int threads, out float[] output)
        {
            using var _ = KernelThreads.Use(threads);
            var weights = new[] { TestData.Floats(rows * dim, 1), TestData.Floats(rows * dim, 2) };
            var states = new[] { new float[rows], new float[rows] };
            output = new float[batch * tables * dim];
            EmbeddingBagKernels.ForwardTables(weights, new[] { rows, rows }, dim, batch, idx, off, psw, PoolingMode.Mean, output, tables * dim, 0);
            var ws = new EmbeddingBagWorkspace();
            for (int step = 0; step < 2; step++)
                EmbeddingBagKernels.BackwardTables(weights, new[] { rows, rows }, dim, batch, idx, off, psw, PoolingMode.Mean, dOut, tables * dim, 0,
                    SparseUpdate.RowwiseAdagrad(0.1f, 1e-8f), states, default, ws);
            return weights;
        }
        var w1 = Run(1, out var o1);
        var w2 = Run(2, out var o2);
        var w2b = Run(2, out _);
        Assert.That(o2, Is.EqualTo(o1));
        for (int f = 0; f < tables; f++)
        {
            Assert.That(w2[f], Is.EqualTo(w1[f]), $"table {f}: 2 threads vs 1");
            Assert.That(w2b[f], Is.EqualTo(w2[f]), $"table {f}: run to run");
        }
    }

    [Test]
    public void BackwardTables_Sgd_MatchesFloat64Reference(
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted,
        [Values(1, 2, 12)] int maxLen, // short bags are scattered sample by sample, long ones table by table; one table of
                                       // at most one id a bag on two threads is split by samples
        [Values(1, 3)] int tables, [Values(1, 2)] int threads) // one table on two threads: row slices
    {
        const float lr = 0.3f;
        using (KernelThreads.Use(threads))
        {
            foreach (int dim in new[] { 7, 64, 65 })
            {
                const int batch = 700; // enough work for two chunks
                int[] rows = { 40, 3, 97 };
                var weights = new float[tables][];
                for (int f = 0; f < tables; f++) weights[f] = TestData.Floats(rows[f] * dim, 20 + f + dim);
                var before = weights.Select(w => (float[])w.Clone()).ToArray();
                var (idx, off, psw) = EmbeddingBagReference.Bags(tables * batch, maxLen, rows: 3, seed: dim, baseOffset: 2);
                for (int f = 0; f < tables; f++)
                    for (int p = off[f * batch]; p < off[(f + 1) * batch]; p++) idx[p] = (idx[p] * 7919 + 31 * p) % rows[f];
                int stride = tables * dim + 2; // a strided dOutput with one junk column each side
                var dOut = TestData.Floats(batch * stride, 50 + dim);
                EmbeddingBagKernels.BackwardTables(weights, rows.AsSpan(0, tables), dim, batch, idx, off, weighted ? psw : default, mode,
                    dOut, stride, 1, SparseUpdate.Sgd(lr), default, default, new EmbeddingBagWorkspace());

                for (int f = 0; f < tables; f++)
                {
                    var dense = new float[batch * dim];
                    for (int b = 0; b < batch; b++) Array.Copy(dOut, b * stride + 1 + f * dim, dense, b * dim, dim);
                    var g = EmbeddingBagReference.RowGradients(dim, idx, off.AsSpan(f * batch, batch + 1).ToArray(), weighted ? psw : null,
                        mode == PoolingMode.Mean, dense);
                    var expected = new double[rows[f] * dim];
                    for (int r = 0; r < rows[f]; r++)
                        for (int c = 0; c < dim; c++)
                            expected[r * dim + c] = before[f][r * dim + c] - (g.TryGetValue(r, out var gr) ? lr * gr[c] : 0.0);
                    TestData.AssertClose(weights[f], expected, rtol: 1e-5, atol: 1e-5, $"table {f} dim {dim}");
                    for (int r = 0; r < rows[f]; r++)
                        if (!g.ContainsKey(r))
                            Assert.That(weights[f].AsSpan(r * dim, dim).ToArray(), Is.EqualTo(before[f].AsSpan(r * dim, dim).ToArray()), $"untouched row {r} of table {f}");
                }
            }
        }
    }

    /// <summary>The weights of one table (rows x 64, seeded) after two fused-SGD steps on <paramref name="threads"/> kernel threads.</summary>
    private static float[] TwoSgdSteps(int threads, int rows, int[] idx, int[] off, float[]? psw, PoolingMode mode, float[] dOut, int seed)
    {
        using (KernelThreads.Use(threads))
        {
            var w = TestData.Floats(rows * 64, seed);
            var ws = new EmbeddingBagWorkspace();
            for (int step = 0; step < 2; step++)
                EmbeddingBagKernels.Backward(w, rows, 64, idx, off, psw, mode, dOut, 64, 0, SparseUpdate.Sgd(0.05f), default, default, ws);
            return w;
        }
    }

    [Test]
    public void BackwardSgd_OneTableTwoThreadsVsOne_BitIdentical([Values(1, 32)] int pooling)
    {
        // One table cannot be split by table: on two threads, bags of one id are split by samples (shared rows left to
        // their row-slice owner) and longer bags by row slices; one thread walks the samples in order. Each row must see
        // its contributions in the same order (samples last to first).
        const int rows = 500, batch = 1024;
        var idx = new int[batch * pooling];
        var r = new Random(5);
        for (int i = 0; i < idx.Length; i++) idx[i] = r.Next(rows);
        var off = Enumerable.Range(0, batch + 1).Select(b => b * pooling).ToArray();
        var dOut = TestData.Floats(batch * 64, 6);
        var one = TwoSgdSteps(1, rows, idx, off, null, PoolingMode.Sum, dOut, 7);
        Assert.That(TwoSgdSteps(2, rows, idx, off, null, PoolingMode.Sum, dOut, 7), Is.EqualTo(one), "2 threads vs 1");
        Assert.That(TwoSgdSteps(2, rows, idx, off, null, PoolingMode.Sum, dOut, 7), Is.EqualTo(one), "run to run");
    }

    [Test]
    public void BackwardSgd_OneTableOneIdPerBag_SampleSplit_SameBitsForOneTwoAndThreeThreads(
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted)
    {
        // Split by samples across threads: rows looked up by one thread's samples only, and rows shared between threads'
        // samples (left to the owner of the row's slice), must both see their updates in the one-thread order.
        const int rows = 5000, batch = 3000;
        var (idx, off, psw) = EmbeddingBagReference.Bags(batch, maxLen: 1, rows: rows, seed: 11); // empty bags included
        for (int b = 0; b < batch; b += 7)
            if (off[b + 1] > off[b]) idx[off[b]] = b % 13; // a few hot rows, shared by every thread's samples
        var dOut = TestData.Floats(batch * 64, 12);
        var w = weighted ? psw : null;
        var one = TwoSgdSteps(1, rows, idx, off, w, mode, dOut, 13);
        Assert.That(TwoSgdSteps(2, rows, idx, off, w, mode, dOut, 13), Is.EqualTo(one), "2 threads vs 1");
        Assert.That(TwoSgdSteps(3, rows, idx, off, w, mode, dOut, 13), Is.EqualTo(one), "3 threads vs 1");
    }

    [Test]
    public void BackwardSgd_OneTableOneIdPerBag_BadIdsInSeveralChunks_ReportsTheFirstAndUpdatesNothing(
        [Values(1, 2, 3)] int threads, [Values(-1, 5000, int.MaxValue)] int badId)
    {
        // The sample-split path checks each chunk's ids in its marking pass: a bad id late in the batch (another chunk's
        // samples) must not hide an earlier one, and no row may change before the check is complete.
        const int rows = 5000, batch = 3000;
        var (idx, off, _) = EmbeddingBagReference.Bags(batch, maxLen: 1, rows: rows, seed: 21);
        int Nonempty(int from) { int b = from; while (off[b + 1] == off[b]) b++; return b; }
        int early = Nonempty(1100), late = Nonempty(2900);
        idx[off[late]] = badId;
        idx[off[early]] = badId;
        var w = TestData.Floats(rows * 64, 22);
        var before = (float[])w.Clone();
        using (KernelThreads.Use(threads))
        {
            var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() => EmbeddingBagKernels.Backward(w, rows, 64, idx, off, default,
                PoolingMode.Sum, TestData.Floats(batch * 64, 23), 64, 0, SparseUpdate.Sgd(0.05f), default, default, new EmbeddingBagWorkspace()));
            Assert.That(ex!.Position, Is.EqualTo(off[early]), "the first bad position");
            Assert.That(ex.Id, Is.EqualTo(badId));
            Assert.That(ex.Rows, Is.EqualTo(rows));
        }
        Assert.That(w, Is.EqualTo(before), "no row updated");
    }

    /// <summary>
    /// Tables of one row (alone on two threads: one row slice is empty), a few rows (dense duplicates), one bucket and
    /// several buckets of the coalescing backward.
    /// </summary>
    private static readonly int[] CoalescedRows = { 1, 40, 3, 2500 };

    /// <summary>
    /// Random bags over <paramref name="tables"/> tables of <see cref="CoalescedRows"/>, and a strided dOutput with one
    /// junk column each side; ids are spread over each table's rows.
    /// </summary>
    private static (int[] Idx, int[] Off, float[] Psw, float[] DOut, int Stride) CoalescedCase(int tables, int batch, int dim, int maxLen, int seed)
    {
        var (idx, off, psw) = EmbeddingBagReference.Bags(tables * batch, maxLen, rows: 3, seed: seed, baseOffset: 2);
        for (int f = 0; f < tables; f++)
            for (int p = off[f * batch]; p < off[(f + 1) * batch]; p++) idx[p] = (int)(((long)idx[p] * 7919 + 31L * p * p) % CoalescedRows[f]);
        int stride = tables * dim + 2;
        return (idx, off, psw, TestData.Floats(batch * stride, 50 + dim), stride);
    }

    [Test]
    public void BackwardTables_RowwiseAdagradAndAdam_MatchFloat64Reference(
        [Values(SparseUpdateKind.RowwiseAdagrad, SparseUpdateKind.Adam)] SparseUpdateKind kind,
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted,
        [Values(1, 4)] int tables, [Values(1, 2)] int threads) // one table on two threads: row slices
    {
        const float lr = 0.05f, eps = 1e-3f, beta1 = 0.9f, beta2 = 0.99f;
        const long step = 3;
        using (KernelThreads.Use(threads))
        {
            foreach (int dim in new[] { 7, 64, 300 }) // 300: short buckets (dense gradient rows of a bucket stay ~256 KiB)
            {
                const int batch = 700;
                var rows = CoalescedRows;
                var (idx, off, psw, dOut, stride) = CoalescedCase(tables, batch, dim, maxLen: 12, seed: dim);
                var weights = new float[tables][];
                var s1 = new float[tables][];
                var s2 = new float[tables][];
                for (int f = 0; f < tables; f++)
                {
                    weights[f] = TestData.Floats(rows[f] * dim, 20 + f + dim);
                    // Non-zero starting state, as after earlier steps (Adam's v must stay positive).
                    s1[f] = kind == SparseUpdateKind.Adam ? TestData.Floats(rows[f] * dim, 30 + f) : TestData.Floats(rows[f], 30 + f).Select(MathF.Abs).ToArray();
                    s2[f] = kind == SparseUpdateKind.Adam ? TestData.Floats(rows[f] * dim, 40 + f).Select(MathF.Abs).ToArray() : Array.Empty<float>();
                }
                var before = weights.Select(w => (float[])w.Clone()).ToArray();
                var s1Before = s1.Select(a => (float[])a.Clone()).ToArray();
                var s2Before = s2.Select(a => (float[])a.Clone()).ToArray();
                var update = kind == SparseUpdateKind.Adam ? SparseUpdate.Adam(lr, beta1, beta2, eps, step) : SparseUpdate.RowwiseAdagrad(lr, eps);
                EmbeddingBagKernels.BackwardTables(weights, rows.AsSpan(0, tables), dim, batch, idx, off, weighted ? psw : default, mode,
                    dOut, stride, 1, update, s1, kind == SparseUpdateKind.Adam ? s2 : default, new EmbeddingBagWorkspace());

                double stepSize = lr * Math.Sqrt(1 - Math.Pow(beta2, step)) / (1 - Math.Pow(beta1, step));
                for (int f = 0; f < tables; f++)
                {
                    var dense = new float[batch * dim];
                    for (int b = 0; b < batch; b++) Array.Copy(dOut, b * stride + 1 + f * dim, dense, b * dim, dim);
                    var tableOffsets = off.AsSpan(f * batch, batch + 1).ToArray();
                    var g = EmbeddingBagReference.RowGradients(dim, idx, tableOffsets, weighted ? psw : null, mode == PoolingMode.Mean, dense);
                    // Σ|c_j| per element bounds the float32 summation error, which cancellation (signed dOutput, a 3-row
                    // table with ~1400 contributions per row) makes large relative to the sum itself.
                    var gAbs = EmbeddingBagReference.RowGradients(dim, idx, tableOffsets, weighted ? psw.Select(MathF.Abs).ToArray() : null,
                        mode == PoolingMode.Mean, dense.Select(MathF.Abs).ToArray());
                    foreach (var (r, gr) in g)
                    {
                        double[] tolG = gAbs[r].Select(a => 2e-6 * a + 1e-7).ToArray(); // ~√N·ε of Σ|c_j|: a lost contribution (≥ 0.05/12) exceeds it
                        if (kind == SparseUpdateKind.RowwiseAdagrad)
                        {
                            double st = s1Before[f][r] + gr.Sum(x => x * x) / dim;
                            double tolSt = Enumerable.Range(0, dim).Sum(c => 2 * Math.Abs(gr[c]) * tolG[c]) / dim + 1e-6 * st;
                            Assert.That(s1[f][r], Is.EqualTo(st).Within(tolSt), $"state of row {r}, table {f}, dim {dim}");
                            double a = lr / (Math.Sqrt(st) + eps);
                            for (int c = 0; c < dim; c++)
                            {
                                double w = before[f][r * dim + c] - a * gr[c];
                                double tol = a * (tolG[c] + Math.Abs(gr[c]) * tolSt / (2 * st)) + 1e-6 * Math.Max(1, Math.Abs(w));
                                Assert.That(weights[f][r * dim + c], Is.EqualTo(w).Within(tol), $"row {r}, column {c}, table {f}, dim {dim}");
                            }
                        }
                        else
                        {
                            for (int c = 0; c < dim; c++)
                            {
                                float m0 = s1Before[f][r * dim + c], v0 = s2Before[f][r * dim + c];
                                double m = m0 + (gr[c] - m0) * (1 - beta1);
                                double v = v0 + (gr[c] * gr[c] - v0) * (1 - beta2);
                                double tolM = (1 - beta1) * tolG[c] + 1e-6 * Math.Max(1, Math.Abs(m));
                                double tolV = (1 - beta2) * 2 * Math.Abs(gr[c]) * tolG[c] + 1e-6 * Math.Max(1, v);
                                Assert.That(s1[f][r * dim + c], Is.EqualTo(m).Within(tolM), $"m of row {r}, column {c}, table {f}, dim {dim}");
                                Assert.That(s2[f][r * dim + c], Is.EqualTo(v).Within(tolV), $"v of row {r}, column {c}, table {f}, dim {dim}");
                                double den = Math.Sqrt(v) + eps;
                                double w = before[f][r * dim + c] - stepSize * m / den;
                                double tol = stepSize * (tolM / den + Math.Abs(m) * tolV / (2 * Math.Sqrt(v) * den * den)) + 1e-6 * Math.Max(1, Math.Abs(w));
                                Assert.That(weights[f][r * dim + c], Is.EqualTo(w).Within(tol), $"row {r}, column {c}, table {f}, dim {dim}");
                            }
                        }
                    }
                    for (int r = 0; r < rows[f]; r++)
                        if (!g.ContainsKey(r))
                        {
                            Assert.That(weights[f].AsSpan(r * dim, dim).ToArray(), Is.EqualTo(before[f].AsSpan(r * dim, dim).ToArray()), $"untouched row {r} of table {f}");
                            if (kind == SparseUpdateKind.RowwiseAdagrad) Assert.That(s1[f][r], Is.EqualTo(s1Before[f][r]), $"untouched state {r}");
                        }
                }
            }
        }
    }

    [Test]
    public void BackwardTables_RowwiseAdagradAndAdam_SameBitsAsSortedCollectThenRowUpdate(
        [Values(SparseUpdateKind.RowwiseAdagrad, SparseUpdateKind.Adam)] SparseUpdateKind kind,
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted, [Values(1, 2)] int threads,
        [Values(33, 64)] int dim) // 64: the inline Vector512 row path
    {
        // The bucketed coalescing must sum each row's contributions in position order from the first product, like the
        // sort-based Collect path: then the update of the collected gradient with the same row primitives is bit-equal.
        const int tables = 4, batch = 600;
        const float lr = 0.05f, eps = 1e-3f, beta1 = 0.9f, beta2 = 0.99f;
        using (KernelThreads.Use(threads))
        {
            var rows = CoalescedRows;
            var (idx, off, psw, dOut, stride) = CoalescedCase(tables, batch, dim, maxLen: 9, seed: 77);
            var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows[f] * dim, 60 + f)).ToArray();
            var s1 = Enumerable.Range(0, tables).Select(f => kind == SparseUpdateKind.Adam ? TestData.Floats(rows[f] * dim, 70 + f) : new float[rows[f]]).ToArray();
            var s2 = Enumerable.Range(0, tables).Select(f => kind == SparseUpdateKind.Adam ? TestData.Floats(rows[f] * dim, 80 + f).Select(MathF.Abs).ToArray() : Array.Empty<float>()).ToArray();
            var expectedW = weights.Select(w => (float[])w.Clone()).ToArray();
            var expected1 = s1.Select(a => (float[])a.Clone()).ToArray();
            var expected2 = s2.Select(a => (float[])a.Clone()).ToArray();

            var ws = new EmbeddingBagWorkspace();
            EmbeddingBagKernels.BackwardTables(expectedW, rows, dim, batch, idx, off, weighted ? psw : default, mode, dOut, stride, 1,
                SparseUpdate.Collect, default, default, ws);
            float stepSize = (float)(lr * Math.Sqrt(1 - Math.Pow(beta2, 1)) / (1 - Math.Pow(beta1, 1)));
            unsafe
            {
                for (int f = 0; f < tables; f++)
                {
                    var ids = ws.UniqueIds(f).ToArray();
                    var grads = ws.RowGradients(f).ToArray();
                    fixed (float* g0 = grads, w = expectedW[f], m = expected1[f], v = expected2[f])
                        for (int u = 0; u < ids.Length; u++)
                        {
                            float* g = g0 + u * dim;
                            long row = (long)ids[u] * dim;
                            if (kind == SparseUpdateKind.RowwiseAdagrad)
                            {
                                float st = m[ids[u]] + EmbeddingBagKernels.SumSquares(g, dim) / dim;
                                m[ids[u]] = st;
                                EmbeddingBagKernels.Axpy(-lr / (MathF.Sqrt(st) + eps), g, w + row, dim);
                            }
                            else EmbeddingBagKernels.AdamRow(g, w + row, m + row, v + row, dim, beta1, beta2, stepSize, eps);
                        }
                }
            }

            var update = kind == SparseUpdateKind.Adam ? SparseUpdate.Adam(lr, beta1, beta2, eps, 1) : SparseUpdate.RowwiseAdagrad(lr, eps);
            EmbeddingBagKernels.BackwardTables(weights, rows, dim, batch, idx, off, weighted ? psw : default, mode, dOut, stride, 1,
                update, s1, kind == SparseUpdateKind.Adam ? s2 : default, ws);
            for (int f = 0; f < tables; f++)
            {
                Assert.That(weights[f], Is.EqualTo(expectedW[f]), $"weights of table {f}");
                Assert.That(s1[f], Is.EqualTo(expected1[f]), $"state 1 of table {f}");
                Assert.That(s2[f], Is.EqualTo(expected2[f]), $"state 2 of table {f}");
            }
        }
    }

    [Test]
    public void BackwardTables_Adagrad_BadIdInLastTable_ThrowsAndUpdatesNothing([Values(SparseUpdateKind.RowwiseAdagrad, SparseUpdateKind.Adam)] SparseUpdateKind kind)
    {
        const int dim = 16, batch = 300, rows = 10;
        var weights = new[] { TestData.Floats(rows * dim, 1), TestData.Floats(rows * dim, 2) };
        var before = weights.Select(w => (float[])w.Clone()).ToArray();
        int stateLength = kind == SparseUpdateKind.Adam ? rows * dim : rows;
        var s1 = new[] { new float[stateLength], new float[stateLength] };
        var s2 = new[] { new float[stateLength], new float[stateLength] };
        var idx = Enumerable.Range(0, 2 * batch).Select(i => i % rows).ToArray();
        idx[2 * batch - 1] = -3;
        var off = Enumerable.Range(0, 2 * batch + 1).ToArray();
        var update = kind == SparseUpdateKind.Adam ? SparseUpdate.Adam(0.1f, 0.9f, 0.999f, 1e-8f, 1) : SparseUpdate.RowwiseAdagrad(0.1f, 1e-8f);
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.BackwardTables(weights, new[] { rows, rows }, dim, batch, idx, off, default, PoolingMode.Sum,
                TestData.Floats(batch * 2 * dim, 3), 2 * dim, 0, update, s1, kind == SparseUpdateKind.Adam ? s2 : default, new EmbeddingBagWorkspace()));
        Assert.That((ex!.Table, ex.Position, ex.Id), Is.EqualTo((1, 2 * batch - 1, -3)));
        Assert.That(weights[0], Is.EqualTo(before[0]));
        Assert.That(weights[1], Is.EqualTo(before[1]));
        Assert.That(s1[0].Concat(s1[1]).All(x => x == 0), Is.True, "optimizer state untouched");
    }

    [Test]
    public void BackwardTables_BadIdsAnywhere_ReportsTheFirstAndUpdatesNothing(
        [Values(0, 5, 16, 31, 47, 99)] int at, [Values(SparseUpdateKind.Sgd, SparseUpdateKind.RowwiseAdagrad)] SparseUpdateKind kind)
    {
        // Ids are checked 16 at a time before any row changes: a bad id in a block, at a block edge or in the tail, with
        // a second bad id after it, must be reported at its own position.
        const int dim = 8, batch = 100, rows = 7;
        var weights = new[] { TestData.Floats(rows * dim, 1) };
        var before = (float[])weights[0].Clone();
        var idx = Enumerable.Range(0, batch).Select(i => i % rows).ToArray();
        idx[at] = rows;
        if (at + 3 < batch) idx[at + 3] = -1;
        var off = Enumerable.Range(0, batch + 1).ToArray();
        var update = kind == SparseUpdateKind.Sgd ? SparseUpdate.Sgd(1f) : SparseUpdate.RowwiseAdagrad(1f, 1e-8f);
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.BackwardTables(weights, new[] { rows }, dim, batch, idx, off, default, PoolingMode.Sum,
                TestData.Floats(batch * dim, 3), dim, 0, update, new[] { new float[rows] }, default, new EmbeddingBagWorkspace()));
        Assert.That((ex!.Position, ex.Id), Is.EqualTo((at, rows)));
        Assert.That(weights[0], Is.EqualTo(before));
    }

    [Test]
    public void BackwardTables_Sgd_BadIdInLastTable_ThrowsAndUpdatesNothing()
    {
        // The scatter validates every id before the first row changes.
        const int dim = 16, batch = 300;
        var weights = new[] { TestData.Floats(10 * dim, 1), TestData.Floats(10 * dim, 2) };
        var before = weights.Select(w => (float[])w.Clone()).ToArray();
        var idx = Enumerable.Range(0, 2 * batch).Select(i => i % 10).ToArray();
        idx[2 * batch - 1] = 10;
        var off = Enumerable.Range(0, 2 * batch + 1).ToArray();
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
            EmbeddingBagKernels.BackwardTables(weights, new[] { 10, 10 }, dim, batch, idx, off, default, PoolingMode.Sum,
                TestData.Floats(batch * 2 * dim, 3), 2 * dim, 0, SparseUpdate.Sgd(1f), default, default, new EmbeddingBagWorkspace()));
        Assert.That((ex!.Table, ex.Position, ex.Id), Is.EqualTo((1, 2 * batch - 1, 10)));
        Assert.That(weights[0], Is.EqualTo(before[0]));
        Assert.That(weights[1], Is.EqualTo(before[1]));
    }

    [Test]
    public void ForwardTables_PoolingOneLargeAlignedOutput_NonTemporalCopiesMatchReference([Values(1, 17)] int tables, [Values(1, 2, 3)] int threads)
    {
        // >= 1 MiB of 64-byte-aligned [B, F, 64] output (one dlrm-style table at batch 4096, or a fused collection) takes
        // the non-temporal row copies; every bag must still land. 17 tables on 1–3 threads: each chunk's whole tables
        // sample by sample, the part of a table cut between two chunks table by table on either side.
        const int batch = 4096, dim = 64, rows = 1000;
        var weights = new float[tables][];
        for (int f = 0; f < tables; f++) weights[f] = TestData.Floats(rows * dim, 30 + f);
        var r = new Random(4);
        var idx = new int[tables * batch];
        for (int i = 0; i < idx.Length; i++) idx[i] = r.Next(rows);
        var off = Enumerable.Range(0, tables * batch + 1).ToArray();
        var buffer = LargeBuffers.AlignedFloats(batch * tables * dim, out int start, pinSmall: true);
        Assert.That((long)batch * tables * dim * sizeof(float), Is.GreaterThanOrEqualTo(1L << 20));
        var output = buffer.AsSpan(start, batch * tables * dim);
        output.Fill(float.NaN);
        using (KernelThreads.Use(threads))
            EmbeddingBagKernels.ForwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, default, PoolingMode.Sum,
                output, tables * dim, 0);
        for (int f = 0; f < tables; f++)
            for (int b = 0; b < batch; b += 97)
                Assert.That(output.Slice(b * tables * dim + f * dim, dim).ToArray(), Is.EqualTo(weights[f].AsSpan(idx[f * batch + b] * dim, dim).ToArray()),
                    $"table {f} bag {b}");
        Assert.That(output.ToArray().Any(float.IsNaN), Is.False, "every output element written");
    }

    [Test]
    public void ForwardTables_ShortBags_SeveralChunks_MatchReferenceAndOneThreadBits([Values(13, 64)] int dim, [Values(2, 3)] int threads,
        [Values(false, true)] bool weighted)
    {
        // Five tables of short bags (0..3 ids), enough work for several chunks of table-major bags, so a table is split
        // between chunks (5 tables on 2 or 3 threads). D = 64 without weights takes the one-row copy for one-id bags,
        // between pooled bags of 0, 2 and 3 ids. Output [B, 5, dim] poisoned with NaN first.
        const int rows = 400, batch = 900, tables = 5;
        var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows * dim, 60 + f)).ToArray();
        var (idx, off, w) = EmbeddingBagReference.Bags(tables * batch, 3, rows, seed: 61);
        var psw = weighted ? w : null;
        float[] RunWith(int n)
        {
            using (KernelThreads.Use(n))
            {
                var output = new float[batch * tables * dim];
                Array.Fill(output, float.NaN);
                EmbeddingBagKernels.ForwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, psw, PoolingMode.Sum,
                    output, tables * dim, 0);
                return output;
            }
        }
        var several = RunWith(threads);
        Assert.That(several, Is.EqualTo(RunWith(1)), $"{threads} threads vs 1");
        for (int f = 0; f < tables; f++)
        {
            var tableOff = off.Skip(f * batch).Take(batch + 1).ToArray();
            var expected = EmbeddingBagReference.Forward(weights[f], dim, idx, tableOff, psw, mean: false);
            var actual = new float[batch * dim];
            for (int b = 0; b < batch; b++) Array.Copy(several, (b * tables + f) * dim, actual, b * dim, dim);
            TestData.AssertClose(actual, expected, rtol: 1e-5, atol: 1e-5, $"table {f} dim {dim}");
        }
    }

    [Test]
    public void ForwardTables_OneIdBags_SeveralChunks_CopyRowsIntoStridedSlices([Values(1, 2, 3)] int threads, [Values(0, 5)] int baseOffset,
        [Values(false, true)] bool oneLongBag)
    {
        // Pooling 1 at D = 64 (the chunk-wide row-copy loop): five tables of 300 bags split over 1–3 chunks, so tables are
        // cut between chunks and the row prefetch runs across table boundaries. Offsets start above 0; the output is strided
        // with a poisoned column on each side of every bag. With oneLongBag, bag 0 of table 3 holds two ids: the chunk
        // holding it takes the general loop, the others the copy loop, and the results must not change.
        const int rows = 257, batch = 300, tables = 5, dim = 64, stride = tables * dim + 32, outOffset = 16;
        var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows * dim, 80 + f)).ToArray();
        var r = new Random(7);
        var ids = new List<int>();
        for (int i = 0; i < baseOffset; i++) ids.Add(-1); // never read: offsets start past them
        var off = new int[tables * batch + 1];
        for (int bag = 0; bag < tables * batch; bag++)
        {
            off[bag] = ids.Count;
            ids.Add(r.Next(rows));
            if (oneLongBag && bag == 3 * batch) ids.Add(r.Next(rows));
        }
        off[^1] = ids.Count;
        var idx = ids.ToArray();
        float[] RunWith(int n)
        {
            using (KernelThreads.Use(n))
            {
                var output = new float[batch * stride];
                Array.Fill(output, float.NaN);
                EmbeddingBagKernels.ForwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, default, PoolingMode.Sum,
                    output, stride, outOffset);
                return output;
            }
        }
        var got = RunWith(threads);
        Assert.That(got, Is.EqualTo(RunWith(1)), $"{threads} threads vs 1");
        for (int f = 0; f < tables; f++)
            for (int b = 0; b < batch; b++)
            {
                int bag = f * batch + b;
                var expected = new double[dim];
                for (int p = off[bag]; p < off[bag + 1]; p++)
                    for (int d = 0; d < dim; d++) expected[d] += weights[f][idx[p] * dim + d];
                var actual = got.AsSpan(b * stride + outOffset + f * dim, dim).ToArray();
                TestData.AssertClose(actual, expected, rtol: 1e-6, atol: 1e-6, $"table {f} bag {b}");
            }
        for (int b = 0; b < batch; b++)
        {
            Assert.That(got.AsSpan(b * stride, outOffset).ToArray().All(float.IsNaN), $"bag row {b}: columns before the slice untouched");
            Assert.That(got.AsSpan(b * stride + outOffset + tables * dim, stride - outOffset - tables * dim).ToArray().All(float.IsNaN),
                $"bag row {b}: columns after the slice untouched");
        }
    }

    [Test]
    public void ForwardTables_OneIdBags_MoreTablesThanOneSampleWalkTakes_EveryRowLands([Values(1, 2, 3)] int threads)
    {
        // Pooling 1 at D = 64 over 150 tables: a chunk's whole tables are walked sample by sample in groups of at most 64,
        // so one thread takes groups of 64, 64 and 22 tables, two threads 64 + 11 each (with a table cut between them).
        const int rows = 50, batch = 41, tables = 150, dim = 64;
        var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows * dim, 300 + f)).ToArray();
        var r = new Random(12);
        var idx = Enumerable.Range(0, tables * batch).Select(_ => r.Next(rows)).ToArray();
        var off = Enumerable.Range(0, tables * batch + 1).ToArray();
        var output = new float[batch * tables * dim];
        Array.Fill(output, float.NaN);
        using (KernelThreads.Use(threads))
            EmbeddingBagKernels.ForwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, default, PoolingMode.Mean,
                output, tables * dim, 0);
        for (int f = 0; f < tables; f++)
            for (int b = 0; b < batch; b++)
                Assert.That(output.AsSpan((b * tables + f) * dim, dim).ToArray(), Is.EqualTo(weights[f].AsSpan(idx[f * batch + b] * dim, dim).ToArray()),
                    $"table {f} bag {b}");
    }

    [Test]
    public void ForwardTables_OneIdBags_BadIdsInSeveralChunks_ReportsTheFirstPosition([Values(2, 3)] int threads, [Values(17, 299)] int firstBag)
    {
        // The row-copy loop checks a chunk's ids before it copies: with bad ids in a later chunk (table 4) and in an earlier
        // one (table 1, bag firstBag: inside a 16-id block or in its tail), the earlier position is reported.
        const int rows = 50, batch = 300, tables = 5, dim = 64;
        var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows * dim, 90 + f)).ToArray();
        var r = new Random(9);
        var idx = Enumerable.Range(0, tables * batch).Select(_ => r.Next(rows)).ToArray();
        var off = Enumerable.Range(0, tables * batch + 1).ToArray();
        idx[4 * batch + 10] = rows;
        idx[1 * batch + firstBag] = -3;
        using (KernelThreads.Use(threads))
        {
            var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() =>
                EmbeddingBagKernels.ForwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, default, PoolingMode.Sum,
                    new float[batch * tables * dim], tables * dim, 0));
            Assert.That((ex!.Table, ex.Position, ex.Id, ex.Rows), Is.EqualTo((1, 1 * batch + firstBag, -3, rows)));
        }
    }

    [Test]
    public void BackwardTables_Sgd_OneIdBags_SameBitsAsTheSequentialUpdate([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode,
        [Values(1, 3, 5, 150)] int tables, [Values(1, 2, 3)] int threads)
    {
        // Pooling 1 at D = 64 over several tables (the sample-order scatter's one-id loop; one table on one thread takes
        // its one-table loop, on more threads the sample split): every row update is
        // w ← fma(−lr, dOutput[b], w), applied from the last sample to the first, so the result is exactly that sequence
        // in float32, whatever the thread count. Few rows per table, so rows are hit many times; offsets start above 0 and
        // dOutput is strided. 150 tables: a thread's tables are walked in groups of at most 64.
        const int batch = 400, dim = 64, rows = 37, baseOffset = 3;
        const float lr = 0.25f;
        int stride = tables * dim + 16;
        var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows * dim, 120 + f)).ToArray();
        var r = new Random(11);
        var idx = new int[baseOffset + tables * batch];
        for (int i = baseOffset; i < idx.Length; i++) idx[i] = r.Next(rows);
        var off = Enumerable.Range(0, tables * batch + 1).Select(i => i + baseOffset).ToArray();
        var dOut = TestData.Floats(batch * stride, 130);
        var expected = weights.Select(w => (float[])w.Clone()).ToArray();
        for (int f = 0; f < tables; f++)
            for (int b = batch - 1; b >= 0; b--)
            {
                int id = idx[off[f * batch + b]];
                for (int d = 0; d < dim; d++)
                    expected[f][id * dim + d] = MathF.FusedMultiplyAdd(-lr, dOut[b * stride + 8 + f * dim + d], expected[f][id * dim + d]);
            }
        using (KernelThreads.Use(threads))
            EmbeddingBagKernels.BackwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, default, mode,
                dOut, stride, 8, SparseUpdate.Sgd(lr), default, default, new EmbeddingBagWorkspace());
        for (int f = 0; f < tables; f++) Assert.That(weights[f], Is.EqualTo(expected[f]), $"table {f}");
    }

    [Test]
    public void BackwardTables_Sgd_ShortBags_SameBitsAsTheSequentialUpdate([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode,
        [Values(false, true)] bool weighted, [Values(1, 3, 5)] int tables, [Values(1, 2, 3)] int threads)
    {
        // Bags of 0–3 ids at D = 64 (the short-bag scatter, table by table; one table on several threads: row slices):
        // every row update is w ← fma(s, dOutput[b], w), s = −lr (÷ the bag's length for the mean, × the id's weight),
        // bags from the last sample to the first and ids in position order, so the result is exactly that sequence in
        // float32 whatever the thread count. Few rows, so rows are hit many times; offsets start above 0; dOutput strided.
        const int batch = 300, dim = 64, rows = 23, baseOffset = 3;
        const float lr = 0.25f;
        int stride = tables * dim + 16;
        var weights = Enumerable.Range(0, tables).Select(f => TestData.Floats(rows * dim, 140 + f)).ToArray();
        var (idx, off, w) = EmbeddingBagReference.Bags(tables * batch, 3, rows, seed: 141, baseOffset: baseOffset);
        Assert.That(off[^1] - off[0], Is.GreaterThan(tables * batch), "more ids than bags: not the one-id loop");
        var psw = weighted ? w : null;
        var dOut = TestData.Floats(batch * stride, 142);
        var expected = weights.Select(x => (float[])x.Clone()).ToArray();
        for (int f = 0; f < tables; f++)
            for (int b = batch - 1; b >= 0; b--)
            {
                int p0 = off[f * batch + b], p1 = off[f * batch + b + 1];
                if (p0 == p1) continue;
                float a = mode == PoolingMode.Mean ? -lr / (p1 - p0) : -lr;
                for (int p = p0; p < p1; p++)
                {
                    float s = psw is null ? a : a * psw[p];
                    for (int d = 0; d < dim; d++)
                        expected[f][idx[p] * dim + d] = MathF.FusedMultiplyAdd(s, dOut[b * stride + 8 + f * dim + d], expected[f][idx[p] * dim + d]);
                }
            }
        using (KernelThreads.Use(threads))
            EmbeddingBagKernels.BackwardTables(weights, Enumerable.Repeat(rows, tables).ToArray(), dim, batch, idx, off, psw, mode,
                dOut, stride, 8, SparseUpdate.Sgd(lr), default, default, new EmbeddingBagWorkspace());
        for (int f = 0; f < tables; f++) Assert.That(weights[f], Is.EqualTo(expected[f]), $"table {f}");
    }
}

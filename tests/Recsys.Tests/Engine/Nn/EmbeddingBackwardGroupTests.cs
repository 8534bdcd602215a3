using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Tests.Kernels.EmbeddingBag;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Nn;

/// <summary>
/// One backward from the outputs of several collections (one per feature) runs their updates together, each collection
/// on one thread. It must leave every table, optimizer state and collected gradient exactly as the backwards run one by
/// one would, whatever the thread count.
/// </summary>
public class EmbeddingBackwardGroupTests
{
    private const int Dim = 24, Batch = 300;

    private int _savedThreads;

    [SetUp] public void SaveThreads() => _savedThreads = KernelParallelism.MaxThreads;
    [TearDown] public void RestoreThreads() => KernelParallelism.MaxThreads = _savedThreads;

    /// <summary>Feature f's collection: one table of rows[f] (small, so ids repeat within and across bags).</summary>
    private static EmbeddingBagCollection[] Collections(int[] rows, string optimizer, PoolingMode mode) =>
        rows.Select((r, f) => new EmbeddingBagCollection(new[] { new EmbeddingTableConfig($"f{f}", r, Dim) }, mode, new Rng(100 + (ulong)f))
        {
            Optimizer = optimizer switch
            {
                "sgd" => new SparseSgd(0.05f),
                "adagrad" => new RowwiseAdagrad(0.05f),
                "adam" => new SparseAdam(0.01f),
                _ => null,
            },
        }).ToArray();

    /// <summary>Bags of 0..maxLen ids (exactly one per bag when maxLen is 1), with per-id weights when asked.</summary>
    private static KeyedJagged Ids(int rows, int maxLen, int seed, bool weighted)
    {
        if (maxLen == 1)
        {
            var r = new Random(seed);
            var one = Enumerable.Range(0, Batch).Select(_ => r.Next(rows)).ToArray();
            return new KeyedJagged(1, Batch, one, Enumerable.Range(0, Batch + 1).ToArray(), weighted ? TestData.Floats(Batch, seed + 1) : null);
        }
        var (idx, off, w) = EmbeddingBagReference.Bags(Batch, maxLen, rows, seed);
        return new KeyedJagged(1, Batch, idx, off, weighted ? w : null);
    }

    /// <summary>The tables (weights and optimizer state) and the collected gradients of <paramref name="cs"/>, flattened.</summary>
    private static List<float[]> Snapshot(EmbeddingBagCollection[] cs)
    {
        var all = new List<float[]>();
        foreach (var c in cs)
        {
            foreach (var t in c.Tables)
            {
                all.Add(t.Weight.ToArray());
                if (t.State1 is { } s1) all.Add(s1.ToArray());
                if (t.State2 is { } s2) all.Add(s2.ToArray());
            }
            foreach (var g in c.LastSparseGradients)
            {
                all.Add(g.Ids.ToArray().Select(i => (float)i).ToArray());
                all.Add(g.Values.ToArray());
            }
        }
        return all;
    }

    /// <summary>
    /// Three steps of: every collection looks up its ids (collection <c>uses[k]</c> for lookup k), then the updates run
    /// — from one tape in one backward when <paramref name="grouped"/>, else one tape per lookup, backward one by one in
    /// the order the grouped backward takes (the last lookup first).
    /// </summary>
    private static List<float[]> Train(int[] rows, int[] uses, int maxLen, string optimizer, PoolingMode mode, bool weighted, bool grouped)
    {
        var cs = Collections(rows, optimizer, mode);
        var tape = new Tape();
        var tapes = uses.Select(_ => new Tape()).ToArray();
        for (int step = 0; step < 3; step++)
        {
            var ids = uses.Select((c, k) => Ids(rows[c], maxLen, 1000 * step + k, weighted)).ToArray();
            var seeds = uses.Select((_, k) => new Tensor(new Shape(Batch, 1, Dim), TestData.Floats(Batch * Dim, 7000 * step + k))).ToArray();
            if (grouped)
            {
                var outs = uses.Select((c, k) => cs[c].Forward(tape, ids[k])).ToArray();
                tape.Backward(outs, seeds);
                tape.Reset();
            }
            else
            {
                var outs = uses.Select((c, k) => cs[c].Forward(tapes[k], ids[k])).ToArray();
                for (int k = uses.Length - 1; k >= 0; k--)
                {
                    tapes[k].Backward(outs[k], seeds[k]);
                    tapes[k].Reset();
                }
            }
        }
        return Snapshot(cs);
    }

    private static void AssertSameBits(List<float[]> expected, List<float[]> actual)
    {
        Assert.That(actual.Count, Is.EqualTo(expected.Count));
        for (int i = 0; i < expected.Count; i++)
            Assert.That(actual[i], Is.EqualTo(expected[i]), $"array {i} (tables, optimizer state and collected gradients in collection order)");
    }

    [Test]
    public void GroupedBackward_SameBitsAsOneByOne(
        [Values("sgd", "adagrad", "adam", "collect")] string optimizer,
        [Values(1, 6)] int maxLen,
        [Values(1, 2, 3)] int threads)
    {
        KernelParallelism.MaxThreads = threads;
        // Five features of different sizes (within the balance the spread accepts), weighted mean bags.
        int[] rows = { 97, 400, 61, 250, 33 };
        int[] uses = { 0, 1, 2, 3, 4 };
        var oneByOne = Train(rows, uses, maxLen, optimizer, PoolingMode.Mean, weighted: true, grouped: false);
        var grouped = Train(rows, uses, maxLen, optimizer, PoolingMode.Mean, weighted: true, grouped: true);
        AssertSameBits(oneByOne, grouped);
        if (optimizer == "collect")
            Assert.That(grouped[^1], Is.Not.Empty, "the last collection's gradient must have been collected");
        else
            Assert.That(grouped[0], Is.Not.EqualTo(Collections(rows, optimizer, PoolingMode.Mean)[0].Tables[0].Weight.ToArray()), "the first table must have changed");
    }

    [Test]
    public void GroupedBackward_CollectionLookedUpTwice_UpdatesInTapeOrderLikeOneByOne([Values("sgd", "adam", "collect")] string optimizer)
    {
        KernelParallelism.MaxThreads = 2;
        // Collection 0 is looked up first and last: its two updates (and Adam's two steps) must run last lookup first,
        // on one thread, while collections 1 and 2 run on the other.
        int[] rows = { 80, 300, 200 };
        int[] uses = { 0, 1, 2, 0 };
        AssertSameBits(Train(rows, uses, 5, optimizer, PoolingMode.Sum, weighted: false, grouped: false),
            Train(rows, uses, 5, optimizer, PoolingMode.Sum, weighted: false, grouped: true));
    }

    [Test]
    public void GroupedBackward_OneCollectionMuchLarger_SameBitsAsOneByOne()
    {
        KernelParallelism.MaxThreads = 2;
        // The big one takes most of the work, so the backwards run one by one, each split across the threads.
        int[] rows = { 5000, 40, 40 };
        var big = Train(rows, new[] { 0, 1, 2 }, 6, "sgd", PoolingMode.Sum, weighted: false, grouped: false);
        AssertSameBits(big, Train(rows, new[] { 0, 1, 2 }, 6, "sgd", PoolingMode.Sum, weighted: false, grouped: true));
    }

    [Test]
    public void GroupedBackward_IdChangedSinceForward_FirstFailureInTapeOrderThrown_ItsTableUnchanged_OthersUpdated()
    {
        KernelParallelism.MaxThreads = 2;
        int[] rows = { 50, 60, 70, 80 };
        var cs = Collections(rows, "sgd", PoolingMode.Sum);
        var before = cs.Select(c => c.Tables[0].Weight.ToArray()).ToArray();
        var ids = rows.Select((r, f) => Ids(r, 4, f, weighted: false)).ToArray();
        var tape = new Tape();
        var outs = cs.Select((c, f) => c.Forward(tape, ids[f])).ToArray();
        // Corrupt features 1 and 2 after the forward; the backward runs from feature 3 down, so feature 2 fails first.
        ids[1].Values[3] = rows[1] + 5;
        ids[2].Values[0] = -1;
        var seeds = outs.Select((o, f) => new Tensor(o.Shape, TestData.Floats(o.Length, 50 + f))).ToArray();
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() => tape.Backward(outs, seeds));
        Assert.That(ex!.Message, Does.Contain("f2"));
        Assert.That(ex.Message, Does.Contain("-1"));
        Assert.That(cs[1].Tables[0].Weight.ToArray(), Is.EqualTo(before[1]), "a failing backward changes nothing");
        Assert.That(cs[2].Tables[0].Weight.ToArray(), Is.EqualTo(before[2]), "a failing backward changes nothing");
        Assert.That(cs[0].Tables[0].Weight.ToArray(), Is.Not.EqualTo(before[0]), "the group's other backwards still ran");
        Assert.That(cs[3].Tables[0].Weight.ToArray(), Is.Not.EqualTo(before[3]), "the group's other backwards still ran");
    }

    [Test]
    public void GroupedBackward_OutputWithoutGradient_IsSkipped()
    {
        KernelParallelism.MaxThreads = 2;
        int[] rows = { 50, 60, 70 };
        var cs = Collections(rows, "sgd", PoolingMode.Sum);
        var before = cs.Select(c => c.Tables[0].Weight.ToArray()).ToArray();
        var tape = new Tape();
        var outs = cs.Select((c, f) => c.Forward(tape, Ids(rows[f], 3, f, weighted: false))).ToArray();
        // Only features 0 and 2 reach the backward.
        tape.Backward(new[] { outs[0], outs[2] }, new[] { new Tensor(outs[0].Shape, TestData.Floats(outs[0].Length, 1)), new Tensor(outs[2].Shape, TestData.Floats(outs[2].Length, 2)) });
        Assert.That(cs[1].Tables[0].Weight.ToArray(), Is.EqualTo(before[1]));
        Assert.That(cs[1].Optimizer!.StepCount, Is.Zero, "a skipped backward takes no optimizer step");
        Assert.That(cs[0].Optimizer!.StepCount, Is.EqualTo(1));
        Assert.That(cs[0].Tables[0].Weight.ToArray(), Is.Not.EqualTo(before[0]));
        Assert.That(cs[2].Tables[0].Weight.ToArray(), Is.Not.EqualTo(before[2]));
    }

    [Test]
    public void GroupedBackward_SteadyState_AllocatesNothing()
    {
        KernelParallelism.MaxThreads = 2;
        int[] rows = { 500, 600, 700, 800 };
        var cs = Collections(rows, "sgd", PoolingMode.Sum);
        var ids = rows.Select((r, f) => Ids(r, 4, f, weighted: false)).ToArray();
        var seeds = rows.Select((_, f) => new Tensor(new Shape(Batch, 1, Dim), TestData.Floats(Batch * Dim, f))).ToArray();
        var outs = new Tensor[rows.Length];
        var tape = new Tape();
        void Step()
        {
            for (int f = 0; f < rows.Length; f++) outs[f] = cs[f].Forward(tape, ids[f]);
            tape.Backward(outs, seeds);
            tape.Reset();
        }
        for (int i = 0; i < 5; i++) Step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) Step();
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }
}

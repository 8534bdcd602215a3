using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Tests.Kernels.EmbeddingBag;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Nn;

public class EmbeddingBagCollectionTests
{
    private const int Dim = 5, Batch = 6;
    private static readonly int[] Rows = { 7, 3, 40 };

    private static EmbeddingBagCollection Make(PoolingMode mode, ulong seed = 42) =>
        new(Rows.Select((r, f) => new EmbeddingTableConfig($"t{f}", r, Dim)).ToList(), mode, new Rng(seed));

    /// <summary>A batch with duplicate ids, empty bags and (optionally) per-id weights; ids of table 2 stay below 20 so rows 20..39 are never touched.</summary>
    private static KeyedJagged Ids(int seed, bool weighted)
    {
        var (idx, off, w) = EmbeddingBagReference.TableBags(Rows, Batch, maxLen: 4, seed, idCap: 20);
        return new KeyedJagged(Rows.Length, Batch, idx, off, weighted ? w : null);
    }

    /// <summary>Bag (f, b) of <paramref name="ids"/> as absolute [offsets] for the reference.</summary>
    private static int[] TableOffsets(KeyedJagged ids, int f) => ids.Offsets[(f * Batch)..((f + 1) * Batch + 1)];

    [Test]
    public void Forward_ThreeTables_MatchesReferenceInBFDLayout([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted)
    {
        var ebc = Make(mode);
        var ids = Ids(1, weighted);
        var tape = new Tape();
        var y = ebc.Forward(tape, ids);
        Assert.That(y.Shape, Is.EqualTo(new Shape(Batch, 3, Dim)));
        for (int f = 0; f < 3; f++)
        {
            var expected = EmbeddingBagReference.Forward(ebc.Tables[f].Weight.ToArray(), Dim, ids.Values, TableOffsets(ids, f), ids.Weights, mode == PoolingMode.Mean);
            var actual = new float[Batch * Dim];
            for (int b = 0; b < Batch; b++) y.ReadOnlySpan.Slice((b * 3 + f) * Dim, Dim).CopyTo(actual.AsSpan(b * Dim));
            TestData.AssertClose(actual, expected, 1e-5, 1e-6, $"table {f}");
        }
    }

    [Test]
    public void Init_IsUniformWithinSqrtOneOverRows()
    {
        var ebc = Make(PoolingMode.Sum);
        foreach (var t in ebc.Tables)
        {
            double bound = Math.Sqrt(1.0 / t.Rows);
            var w = t.Weight.ToArray();
            Assert.That(w.All(v => Math.Abs(v) <= bound), t.Name);
            Assert.That(w.Distinct().Count(), Is.GreaterThan(w.Length / 2), t.Name);
        }
    }

    [Test]
    public void SparseGradient_MatchesFiniteDifferences_UntouchedRowsZero([Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted)
    {
        var ebc = Make(mode);
        var ids = Ids(2, weighted);
        var tape = new Tape();
        var y = ebc.Forward(tape, ids);
        var r = TestData.Floats(y.Length, 77, 0.1f, 1f);
        tape.Backward(y, new Tensor(y.Shape, r));
        tape.Reset();

        var probe = new Tape { RecordingEnabled = false };
        double Loss()
        {
            var yy = ebc.Forward(probe, ids).ReadOnlySpan;
            double acc = 0;
            for (int i = 0; i < yy.Length; i++) acc += (double)r[i] * yy[i];
            probe.Reset();
            return acc;
        }

        for (int f = 0; f < 3; f++)
        {
            var g = ebc.LastSparseGradients[f];
            var w = ebc.Tables[f].Weight.Span;
            for (int row = 0; row < Rows[f]; row++)
            {
                var gRow = g.RowOf(row);
                for (int c = 0; c < Dim; c++)
                {
                    float orig = w[row * Dim + c];
                    const float h = 1e-2f;
                    w[row * Dim + c] = orig + h; double lp = Loss();
                    w[row * Dim + c] = orig - h; double lm = Loss();
                    w[row * Dim + c] = orig;
                    double numeric = (lp - lm) / ((double)(orig + h) - (orig - h));
                    double analytic = gRow.IsEmpty ? 0.0 : gRow[c];
                    Assert.That(analytic, Is.EqualTo(numeric).Within(2e-3 + 1e-2 * Math.Abs(numeric)), $"table {f} row {row} col {c}");
                    if (gRow.IsEmpty) Assert.That(numeric, Is.EqualTo(0.0), $"untouched row {row} of table {f} has a gradient");
                }
            }
        }
    }

    /// <summary>Float64 dense reference of the three sparse optimizers; rows with no lookup this step are skipped.</summary>
    private sealed class RefOptimizer(string kind, float[][] weights)
    {
        public readonly double[][] W = weights.Select(w => w.Select(v => (double)v).ToArray()).ToArray();
        public readonly double[][] S = weights.Select(w => new double[w.Length]).ToArray(); // Adagrad uses [row]
        public readonly double[][] V = weights.Select(w => new double[w.Length]).ToArray();
        private int _t;

        public void Step(KeyedJagged ids, float[] dOut, PoolingMode mode)
        {
            _t++;
            for (int f = 0; f < W.Length; f++)
            {
                // dOut is [B, F, D]; take table f's slice as dense [B, D].
                var d = new float[Batch * Dim];
                for (int b = 0; b < Batch; b++) Array.Copy(dOut, (b * W.Length + f) * Dim, d, b * Dim, Dim);
                var grads = EmbeddingBagReference.RowGradients(Dim, ids.Values, TableOffsets(ids, f), ids.Weights, mode == PoolingMode.Mean, d);
                foreach (var (row, g) in grads)
                {
                    int o = row * Dim;
                    switch (kind)
                    {
                        case "sgd":
                            for (int c = 0; c < Dim; c++) W[f][o + c] -= 0.1 * g[c];
                            break;
                        case "adagrad":
                            S[f][row] += g.Sum(x => x * x) / Dim;
                            for (int c = 0; c < Dim; c++) W[f][o + c] -= 0.1 * g[c] / (Math.Sqrt(S[f][row]) + 1e-8);
                            break;
                        case "adam":
                            double step = 0.1 * Math.Sqrt(1 - Math.Pow(0.999, _t)) / (1 - Math.Pow(0.9, _t));
                            for (int c = 0; c < Dim; c++)
                            {
                                S[f][o + c] = 0.9 * S[f][o + c] + 0.1 * g[c];
                                V[f][o + c] = 0.999 * V[f][o + c] + 0.001 * g[c] * g[c];
                                W[f][o + c] -= step * S[f][o + c] / (Math.Sqrt(V[f][o + c]) + 1e-8);
                            }
                            break;
                    }
                }
            }
        }
    }

    [Test]
    public void Optimizers_ThreeStepsWithDuplicates_MatchFloat64Reference(
        [Values("sgd", "adagrad", "adam")] string kind, [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode)
    {
        var ebc = Make(mode);
        ebc.Optimizer = kind switch
        {
            "sgd" => new SparseSgd(0.1f),
            "adagrad" => new RowwiseAdagrad(0.1f),
            _ => new SparseAdam(0.1f),
        };
        var initial = ebc.Tables.Select(t => t.Weight.ToArray()).ToArray();
        var reference = new RefOptimizer(kind, initial);
        var tape = new Tape();
        for (int step = 0; step < 3; step++)
        {
            var ids = Ids(10 + step, weighted: step == 1);
            var y = ebc.Forward(tape, ids);
            var dOut = TestData.Floats(y.Length, 20 + step);
            tape.Backward(y, new Tensor(y.Shape, dOut));
            tape.Reset();
            reference.Step(ids, dOut, mode);
        }
        Assert.That(ebc.Optimizer.StepCount, Is.EqualTo(3));
        for (int f = 0; f < 3; f++)
        {
            TestData.AssertClose(ebc.Tables[f].Weight.ReadOnlySpan, reference.W[f], 1e-4, 1e-5, $"{kind} table {f} weights");
            if (kind == "adagrad") TestData.AssertClose(ebc.Tables[f].State1!, reference.S[f].AsSpan(0, Rows[f]).ToArray(), 1e-4, 1e-7, $"table {f} accumulator");
            if (kind == "adam")
            {
                TestData.AssertClose(ebc.Tables[f].State1!, reference.S[f], 1e-4, 1e-7, $"table {f} m");
                TestData.AssertClose(ebc.Tables[f].State2!, reference.V[f], 1e-4, 1e-8, $"table {f} v");
            }
        }
        // Table 2 has 40 rows; ids stay below 20, so rows 20..39 and their state are untouched.
        var t2 = ebc.Tables[2];
        Assert.That(t2.Weight.ReadOnlySpan.Slice(20 * Dim).ToArray(), Is.EqualTo(initial[2].AsSpan(20 * Dim).ToArray()), "untouched rows changed");
        if (t2.State1 is not null)
            Assert.That(t2.State1.AsSpan(kind == "adagrad" ? 20 : 20 * Dim).ToArray(), Is.All.EqualTo(0f), "untouched state changed");
        if (t2.State2 is not null)
            Assert.That(t2.State2.AsSpan(20 * Dim).ToArray(), Is.All.EqualTo(0f), "untouched state changed");
    }

    [Test]
    public void Forward_IdOutOfRange_ErrorNamesTablePositionIdAndRows()
    {
        var ebc = Make(PoolingMode.Sum);
        var ids = Ids(3, weighted: false);
        int p = ids.Offsets[Batch]; // first id of table 1 ('t1', 3 rows)
        Assume.That(ids.Offsets[2 * Batch], Is.GreaterThan(p), "table 1 needs at least one id");
        ids.Values[p] = 3;
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() => ebc.Forward(new Tape(), ids));
        Assert.That(ex!.Message, Does.Contain("'t1'").And.Contain($"position {p}").And.Contain("id 3").And.Contain("3 rows"));
    }

    [Test]
    public void Forward_MixedDims_Throws()
    {
        var ebc = new EmbeddingBagCollection(new[] { new EmbeddingTableConfig("a", 4, 8), new EmbeddingTableConfig("b", 4, 16) }, PoolingMode.Sum, new Rng(1));
        var ids = new KeyedJagged(2, 1, new[] { 0, 1 }, new[] { 0, 1, 2 });
        var ex = Assert.Throws<InvalidOperationException>(() => ebc.Forward(new Tape(), ids));
        Assert.That(ex!.Message, Does.Contain("'b' has 16"));
    }

    [Test]
    public void Training_TwoThreads_SameInputsTwice_BitIdentical()
    {
        using (KernelThreads.Use(2))
        {
            float[][] Train()
            {
                var ebc = new EmbeddingBagCollection(new[] { new EmbeddingTableConfig("a", 500, 64), new EmbeddingTableConfig("b", 300, 64) }, PoolingMode.Sum, new Rng(5))
                {
                    Optimizer = new SparseAdam(0.01f),
                };
                var tape = new Tape();
                for (int step = 0; step < 2; step++)
                {
                    var (idx, off, w) = EmbeddingBagReference.Bags(2 * 512, maxLen: 8, rows: 300, seed: step);
                    var ids = new KeyedJagged(2, 512, idx, off, w);
                    var y = ebc.Forward(tape, ids);
                    tape.Backward(y, new Tensor(y.Shape, TestData.Floats(y.Length, 9 + step)));
                    tape.Reset();
                }
                return ebc.Tables.Select(t => t.Weight.ToArray()).ToArray();
            }
            var a = Train();
            var b = Train();
            for (int f = 0; f < a.Length; f++) Assert.That(b[f], Is.EqualTo(a[f]), $"table {f}");
        }
    }

    [Test]
    public void StateTensors_NameEachTableWeight()
    {
        var ebc = Make(PoolingMode.Sum);
        Assert.That(ebc.StateTensors().Select(kv => kv.Key), Is.EqualTo(new[] { "t0.weight", "t1.weight", "t2.weight" }));
        Assert.That(ebc.StateTensors().First().Value.Shape, Is.EqualTo(new Shape(7, Dim)));
    }

    [Test]
    public void Forward_NotRecording_RecordsNothingAndTakesNoStep()
    {
        var ebc = Make(PoolingMode.Sum);
        ebc.Optimizer = new SparseSgd(1f);
        var tape = new Tape { RecordingEnabled = false };
        ebc.Forward(tape, Ids(4, false));
        Assert.That(tape.Count, Is.EqualTo(0));
        Assert.That(ebc.Optimizer.StepCount, Is.EqualTo(0));
    }
}

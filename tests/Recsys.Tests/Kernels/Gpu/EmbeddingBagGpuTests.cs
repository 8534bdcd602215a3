using NUnit.Framework;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Tests.Support;
using Pooling = Recsys.Kernels.EmbeddingBag.EmbeddingBagGpuKernels.Pooling;

namespace Recsys.Tests.Kernels.Gpu;

public abstract partial class GpuKernelTests
{
    /// <summary>A random jagged batch over F tables of 4 + 3f rows each, bags of 0..3 ids, repeated ids likely.</summary>
    private sealed class Bags
    {
        public int B, F, D;
        public int[] TableRowStart = null!, Indices = null!, Offsets = null!;
        public float[] Weights = null!, ValueWeights = null!;

        public static Bags Make(int f, int b, int d, bool weighted, int seed)
        {
            var r = new Random(seed);
            var bags = new Bags { B = b, F = f, D = d, TableRowStart = new int[f + 1], Offsets = new int[f * b + 1] };
            for (int t = 0; t < f; t++) bags.TableRowStart[t + 1] = bags.TableRowStart[t] + 4 + 3 * t;
            var idx = new List<int>();
            for (int t = 0; t < f; t++)
                for (int i = 0; i < b; i++)
                {
                    int len = r.Next(4);
                    int rows = bags.TableRowStart[t + 1] - bags.TableRowStart[t];
                    for (int q = 0; q < len; q++) idx.Add(r.Next(rows));
                    bags.Offsets[t * b + i + 1] = idx.Count;
                }
            bags.Indices = idx.ToArray();
            bags.Weights = TestData.Floats(bags.TableRowStart[f] * d, seed + 1);
            bags.ValueWeights = weighted ? TestData.Floats(idx.Count, seed + 2) : Array.Empty<float>();
            return bags;
        }

        /// <summary>Per (bag, position): the factor w_value (/len for mean) the row enters the bag with.</summary>
        public double Factor(int bag, int pos, Pooling pooling)
        {
            double w = ValueWeights.Length > 0 ? ValueWeights[pos] : 1.0;
            return pooling == Pooling.Mean ? w / (Offsets[bag + 1] - Offsets[bag]) : w;
        }

        public double[] Forward(Pooling pooling)
        {
            var o = new double[B * F * D];
            for (int f = 0; f < F; f++)
                for (int b = 0; b < B; b++)
                {
                    int bag = f * B + b;
                    for (int pos = Offsets[bag]; pos < Offsets[bag + 1]; pos++)
                        for (int d = 0; d < D; d++)
                            o[(b * F + f) * D + d] += Factor(bag, pos, pooling) * Weights[(TableRowStart[f] + Indices[pos]) * D + d];
                }
            return o;
        }

        /// <summary>Dense gradient of the weights [rows, D] for upstream gradient dOut [B, F, D].</summary>
        public double[] WeightGrad(float[] dOut, Pooling pooling)
        {
            var g = new double[Weights.Length];
            for (int f = 0; f < F; f++)
                for (int b = 0; b < B; b++)
                {
                    int bag = f * B + b;
                    for (int pos = Offsets[bag]; pos < Offsets[bag + 1]; pos++)
                        for (int d = 0; d < D; d++)
                            g[(TableRowStart[f] + Indices[pos]) * D + d] += Factor(bag, pos, pooling) * dOut[(b * F + f) * D + d];
                }
            return g;
        }
    }

    private static IEnumerable<TestCaseData> BagShapes()
    {
        foreach (var (f, b, d) in new[] { (1, 1, 1), (3, 5, 7), (3, 5, 17), (1, 5, 17), (3, 1, 1) })
            foreach (var pooling in new[] { Pooling.Sum, Pooling.Mean })
            {
                bool weighted = (f + d + (int)pooling) % 2 == 0;
                yield return new TestCaseData(f, b, d, pooling, weighted)
                    .SetName($"EmbeddingBag_F{f}_B{b}_D{d}_{pooling}{(weighted ? "_Weighted" : "")}_MatchesFloat64Reference");
            }
    }

    [TestCaseSource(nameof(BagShapes))]
    public void EmbeddingBag_ForwardAndFusedBackward_MatchesFloat64Reference(int f, int b, int d, Pooling pooling, bool weighted)
    {
        var bags = Bags.Make(f, b, d, weighted, 10 * f + b + d);
        var rowStart = Upload(bags.TableRowStart);
        var indices = Upload(bags.Indices);
        var offsets = Upload(bags.Offsets);
        var vw = Upload(bags.ValueWeights);

        var output = Zeros(b * f * d);
        EmbeddingBagGpuKernels.Forward(Device, Upload(bags.Weights), rowStart, indices, offsets, vw, output, b, f, d, pooling);
        TestData.AssertClose(Download(output), bags.Forward(pooling), Rtol, Atol, "forward");

        const float lr = 0.3f, eps = 1e-6f;
        var dOut = TestData.Floats(b * f * d, 99);
        var grad = bags.WeightGrad(dOut, pooling);
        var sgd = new double[grad.Length];
        for (int i = 0; i < grad.Length; i++) sgd[i] = bags.Weights[i] - lr * grad[i];

        var wAtomic = Upload(bags.Weights);
        EmbeddingBagGpuKernels.BackwardSgdAtomic(Device, wAtomic, rowStart, indices, offsets, vw, Upload(dOut), b, f, d, pooling, lr);
        TestData.AssertClose(Download(wAtomic), sgd, Rtol, Atol, "sgd atomic");

        var wDet = Upload(bags.Weights);
        EmbeddingBagGpuKernels.BackwardSgdDeterministic(Device, wDet, rowStart, indices, offsets, vw, Upload(dOut), b, f, d, pooling, lr);
        var det1 = Download(wDet);
        TestData.AssertClose(det1, sgd, Rtol, Atol, "sgd deterministic");
        var wDet2 = Upload(bags.Weights);
        EmbeddingBagGpuKernels.BackwardSgdDeterministic(Device, wDet2, rowStart, indices, offsets, vw, Upload(dOut), b, f, d, pooling, lr);
        Assert.That(Download(wDet2), Is.EqualTo(det1), "deterministic variant must be bit-identical run to run");

        // Row-wise Adagrad on touched rows only.
        int rows = bags.TableRowStart[f];
        var state0 = TestData.Floats(rows, 7, 0.1f, 0.5f).Select(Math.Abs).ToArray();
        var wExp = bags.Weights.Select(x => (double)x).ToArray();
        var sExp = state0.Select(x => (double)x).ToArray();
        for (int row = 0; row < rows; row++)
        {
            bool touched = false;
            for (int t = 0; t < f; t++)
                for (int pos = bags.Offsets[t * b]; pos < bags.Offsets[(t + 1) * b]; pos++)
                    touched |= bags.TableRowStart[t] + bags.Indices[pos] == row;
            if (!touched) continue;
            double sq = 0;
            for (int q = 0; q < d; q++) sq += grad[row * d + q] * grad[row * d + q];
            sExp[row] += sq / d;
            for (int q = 0; q < d; q++) wExp[row * d + q] -= lr * grad[row * d + q] / (Math.Sqrt(sExp[row]) + eps);
        }
        var wAda = Upload(bags.Weights);
        var state = Upload(state0);
        EmbeddingBagGpuKernels.BackwardRowwiseAdagradDeterministic(Device, wAda, state, rowStart, indices, offsets, vw, Upload(dOut), b, f, d,
            pooling, lr, eps);
        TestData.AssertClose(Download(state), sExp, Rtol, Atol, "adagrad state");
        TestData.AssertClose(Download(wAda), wExp, Rtol, Atol, "adagrad weights");
    }

    [TestCase(-1)]
    [TestCase(7)]
    public void EmbeddingBag_IdOutsideTable_ThrowsNamingFeatureAndId(int badId)
    {
        var bags = Bags.Make(3, 5, 7, false, 3);
        int pos = bags.Offsets[5 * 1 + 2]; // a value of feature 1 (table of 7 rows)
        if (bags.Offsets[5 * 1 + 3] == pos) Assert.Fail("test data: chosen bag of feature 1 is empty");
        bags.Indices[pos] = badId;
        var output = Zeros(5 * 3 * 7);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingBagGpuKernels.Forward(Device, Upload(bags.Weights),
            Upload(bags.TableRowStart), Upload(bags.Indices), Upload(bags.Offsets), Upload(Array.Empty<float>()), output, 5, 3, 7, Pooling.Sum));
        Assert.That(ex!.Message, Does.Contain("feature 1").And.Contain($"id {badId}").And.Contain("7 rows"));

        var weights = Upload(bags.Weights);
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingBagGpuKernels.BackwardSgdDeterministic(Device, weights,
            Upload(bags.TableRowStart), Upload(bags.Indices), Upload(bags.Offsets), Upload(Array.Empty<float>()), Zeros(5 * 3 * 7), 5, 3, 7, Pooling.Sum, 0.1f));

        // The flag is cleared: a good batch afterwards runs.
        var good = Bags.Make(3, 5, 7, false, 3);
        EmbeddingBagGpuKernels.Forward(Device, Upload(good.Weights), Upload(good.TableRowStart), Upload(good.Indices), Upload(good.Offsets),
            Upload(Array.Empty<float>()), output, 5, 3, 7, Pooling.Sum);
    }
}

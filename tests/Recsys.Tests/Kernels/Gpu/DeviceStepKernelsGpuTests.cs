using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Kernels.Loss;
using Recsys.Kernels.Optim;
using Recsys.Kernels.Reduce;
using Recsys.Tests.Support;
using Pooling = Recsys.Kernels.EmbeddingBag.EmbeddingBagGpuKernels.Pooling;

namespace Recsys.Tests.Kernels.Gpu;

/// <summary>The small kernels a device training step needs, each against its CPU twin on random data and odd sizes.</summary>
public abstract partial class GpuKernelTests
{
    [TestCase(Activation.Relu, 1)]
    [TestCase(Activation.Relu, 37)]
    [TestCase(Activation.Sigmoid, 37)]
    [TestCase(Activation.None, 5)]
    public void ActivationBackwardInPlace_MatchesCpu(Activation activation, int n)
    {
        var y = TestData.Floats(n, 1);
        if (activation == Activation.Sigmoid) y = y.Select(v => (v + 1f) / 2f).ToArray(); // sigmoid outputs are in (0, 1)
        var d = TestData.Floats(n, 2);
        var expected = (float[])d.Clone();
        ElementwiseKernels.ActivationBackwardInPlace(activation, y, expected);
        var dv = Upload(d);
        ElementwiseGpuKernels.ActivationBackwardInPlace(Device, activation, Upload(y), dv, n);
        TestData.AssertClose(Download(dv), expected, 1e-6, 1e-7, $"{activation} backward");
    }

    [TestCase(1)]
    [TestCase(33)]
    public void FillAxpyScale_MatchScalarFormulas(int n)
    {
        var x = TestData.Floats(n, 3);
        var y = TestData.Floats(n, 4);
        var yv = Upload(y);
        ElementwiseGpuKernels.Axpy(Device, 0.75f, Upload(x), yv, n);
        ElementwiseGpuKernels.Scale(Device, yv, -2f, n);
        TestData.AssertClose(Download(yv), x.Zip(y, (a, b) => (double)-2f * (b + 0.75f * a)).ToArray(), 1e-6, 1e-7, "axpy then scale");
        ElementwiseGpuKernels.Fill(Device, yv, 3.5f, n);
        Assert.That(Download(yv), Is.All.EqualTo(3.5f));
    }

    [TestCase(1)]
    [TestCase(45)]
    public void SigmoidMulAddAndBackward_MatchCpu(int n)
    {
        var x = TestData.Floats(n, 40, hi: 5f);
        var b = TestData.Floats(n, 41);
        var d0 = TestData.Floats(n, 42);
        var y = new float[n];
        ElementwiseKernels.Sigmoid(x, y);
        var yv = Zeros(n);
        ElementwiseGpuKernels.Sigmoid(Device, Upload(x), yv, n);
        TestData.AssertClose(Download(yv), y, 1e-5, 1e-7, "sigmoid");
        var dx = (float[])d0.Clone();
        ElementwiseKernels.SigmoidBackward(y, b, dx);
        var dxv = Upload(d0);
        ElementwiseGpuKernels.SigmoidBackward(Device, Upload(y), Upload(b), dxv, n);
        TestData.AssertClose(Download(dxv), dx, 1e-5, 1e-7, "sigmoid backward");
        var prod = new float[n];
        ElementwiseKernels.Mul(x, b, prod);
        var pv = Zeros(n);
        ElementwiseGpuKernels.Mul(Device, Upload(x), Upload(b), pv, n);
        Assert.That(Download(pv), Is.EqualTo(prod));
        var sum = new float[n];
        ElementwiseKernels.Add(x, b, sum);
        ElementwiseGpuKernels.Add(Device, Upload(x), Upload(b), pv, n);
        Assert.That(Download(pv), Is.EqualTo(sum));
        var acc = (float[])d0.Clone();
        ElementwiseKernels.MulAccumulate(x, b, acc);
        var av = Upload(d0);
        ElementwiseGpuKernels.MulAccumulate(Device, Upload(x), Upload(b), av, n);
        TestData.AssertClose(Download(av), acc, 1e-6, 1e-7, "mul accumulate");
        var sv = Upload(d0);
        ElementwiseGpuKernels.AxpyScalar(Device, 0.5f, Upload(new[] { 3f }), sv, n);
        ElementwiseGpuKernels.ScaleInto(Device, 2f, sv, av, n);
        TestData.AssertClose(Download(av), d0.Select(v => 2.0 * (v + 1.5)).ToArray(), 1e-6, 1e-7, "axpy scalar, scale into");
    }

    [TestCase(1, 1, 1f)]
    [TestCase(3, 37, 0.5f)]
    [TestCase(2, 300, 2f)]
    public void Softmax_ForwardBackward_MatchesCpu(int rows, int cols, float temperature)
    {
        var x = TestData.Floats(rows * cols, 70, hi: 6f);
        var dy = TestData.Floats(rows * cols, 71);
        var dx0 = TestData.Floats(rows * cols, 72);
        var y = new float[rows * cols];
        LossKernels.SoftmaxForward(x, y, rows, cols, temperature);
        var dx = (float[])dx0.Clone();
        LossKernels.SoftmaxBackward(y, dy, dx, rows, cols, temperature);
        var yv = Zeros(rows * cols);
        LossGpuKernels.SoftmaxForward(Device, Upload(x), yv, rows, cols, temperature);
        TestData.AssertClose(Download(yv), y, 1e-5, 1e-7, "softmax");
        var dxv = Upload(dx0);
        LossGpuKernels.SoftmaxBackward(Device, Upload(y), Upload(dy), dxv, rows, cols, temperature);
        TestData.AssertClose(Download(dxv), dx, 1e-5, 1e-6, "softmax backward");
    }

    [TestCase(1)]
    [TestCase(77)]
    [TestCase(2000)]
    public void SumOfSquares_MatchesCpu(int n)
    {
        var x = TestData.Floats(n, 80);
        var o = Zeros(1);
        ReduceGpuKernels.SumOfSquares(Device, Upload(x), o, n);
        TestData.AssertClose(Download(o), new[] { DenseOptimizerKernels.SumOfSquares(x) }, 1e-5, 1e-6, "sum of squares");
    }

    [TestCase(5, true, false)]
    [TestCase(33, true, true)]
    [TestCase(9, false, true)]
    public void MaskedWeightedBce_MatchesCpu(int n, bool masked, bool weighted)
    {
        var z = TestData.Floats(n, 81, hi: 4f);
        var y = TestData.Floats(n, 82).Select(Math.Abs).ToArray();
        var m = masked ? TestData.Floats(n, 83).Select(v => v > 0 ? 1f : 0f).ToArray() : Array.Empty<float>();
        var w = weighted ? TestData.Floats(n, 84).Select(Math.Abs).ToArray() : Array.Empty<float>();
        var d0 = TestData.Floats(n, 85);
        float expected = LossKernels.BceWithLogitsForward(z, y, m, w);
        var dExpected = (float[])d0.Clone();
        LossKernels.BceWithLogitsBackward(z, y, m, w, 0.6f, dExpected);
        var loss = Zeros(1);
        var count = Zeros(1);
        LossGpuKernels.BceWithLogitsForward(Device, Upload(z), Upload(y), m.Length > 0 ? Upload(m) : default, w.Length > 0 ? Upload(w) : default, loss, count, n);
        TestData.AssertClose(Download(loss), new[] { expected }, 1e-5, 1e-6, "masked bce");
        var d = Upload(d0);
        LossGpuKernels.BceWithLogitsBackward(Device, Upload(z), Upload(y), m.Length > 0 ? Upload(m) : default, w.Length > 0 ? Upload(w) : default,
            count, Upload(new[] { 0.6f }), d, n);
        TestData.AssertClose(Download(d), dExpected, 1e-5, 1e-6, "masked bce backward");
    }

    [TestCase(1, 1, 1, 0)]
    [TestCase(5, 3, 7, 2)]
    [TestCase(3, 4, 4, 0)]
    public void ColumnBlocks_CopyIntoAndAddFrom_MatchConcatLayout(int rows, int cols, int width, int offset)
    {
        var narrow = TestData.Floats(rows * cols, 5);
        var wide0 = TestData.Floats(rows * width, 6);
        var wide = Upload(wide0);
        ElementwiseGpuKernels.CopyColumnsInto(Device, Upload(narrow), wide, rows, cols, width, offset);
        var expectedWide = (float[])wide0.Clone();
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) expectedWide[r * width + offset + j] = narrow[r * cols + j];
        Assert.That(Download(wide), Is.EqualTo(expectedWide));

        var acc0 = TestData.Floats(rows * cols, 7);
        var acc = Upload(acc0);
        ElementwiseGpuKernels.AddColumnsFrom(Device, wide, acc, rows, cols, width, offset);
        TestData.AssertClose(Download(acc), acc0.Select((v, i) => (double)v + narrow[i]).ToArray(), 1e-6, 1e-7, "add columns");
        Assert.Throws<ArgumentOutOfRangeException>(() => ElementwiseGpuKernels.CopyColumnsInto(Device, Upload(narrow), wide, rows, cols, width, width - cols + 1));
    }

    [TestCase(1, 0f, 0f)]
    [TestCase(37, 0.9f, 0.01f)]
    [TestCase(17, 0f, 0.1f)]
    public void DenseSgd_MatchesCpuKernel_OverTwoSteps(int n, float momentum, float weightDecay)
    {
        var w = TestData.Floats(n, 8);
        var g = TestData.Floats(n, 9);
        var wc = (float[])w.Clone();
        var bc = new float[n];
        var wv = Upload(w);
        var bv = Zeros(n);
        var gv = Upload(g);
        for (int step = 0; step < 2; step++)
        {
            DenseOptimizerKernels.Sgd(wc, g, momentum != 0 ? bc : default, 0.1f, momentum, weightDecay, firstStep: step == 0);
            DenseOptimizerGpuKernels.Sgd(Device, wv, gv, momentum != 0 ? bv : default, n, 0.1f, momentum, weightDecay, firstStep: step == 0);
        }
        TestData.AssertClose(Download(wv), wc, 1e-5, 1e-6, "sgd weights");
        if (momentum != 0) TestData.AssertClose(Download(bv), bc, 1e-5, 1e-6, "sgd momentum");
    }

    [TestCase(1, 0f, false)]
    [TestCase(37, 0.01f, false)]
    [TestCase(19, 0.05f, true)]
    public void DenseAdam_MatchesCpuKernel_OverThreeSteps(int n, float weightDecay, bool decoupled)
    {
        var w = TestData.Floats(n, 10);
        var wc = (float[])w.Clone();
        var mc = new float[n];
        var vc = new float[n];
        var wv = Upload(w);
        var mv = Zeros(n);
        var vv = Zeros(n);
        for (int step = 1; step <= 3; step++)
        {
            var g = TestData.Floats(n, 10 + step);
            DenseOptimizerKernels.Adam(wc, g, mc, vc, 0.01f, 0.9f, 0.999f, 1e-8f, weightDecay, decoupled, step);
            DenseOptimizerGpuKernels.Adam(Device, wv, Upload(g), mv, vv, n, 0.01f, 0.9f, 0.999f, 1e-8f, weightDecay, decoupled, step);
        }
        TestData.AssertClose(Download(wv), wc, 1e-5, 1e-6, "adam weights");
        TestData.AssertClose(Download(mv), mc, 1e-5, 1e-6, "adam m");
        TestData.AssertClose(Download(vv), vc, 1e-5, 1e-7, "adam v");
    }

    [TestCase(1)]
    [TestCase(41)]
    public void DenseAdagrad_MatchesCpuKernel_OverTwoSteps(int n)
    {
        var w = TestData.Floats(n, 20);
        var wc = (float[])w.Clone();
        var sc = new float[n];
        var wv = Upload(w);
        var sv = Zeros(n);
        for (int step = 0; step < 2; step++)
        {
            var g = TestData.Floats(n, 21 + step);
            DenseOptimizerKernels.Adagrad(wc, g, sc, 0.05f, 1e-10f, 0.01f);
            DenseOptimizerGpuKernels.Adagrad(Device, wv, Upload(g), sv, n, 0.05f, 1e-10f, 0.01f);
        }
        TestData.AssertClose(Download(wv), wc, 1e-5, 1e-6, "adagrad weights");
        TestData.AssertClose(Download(sv), sc, 1e-5, 1e-6, "adagrad state");
    }

    [TestCase(1)]
    [TestCase(29)]
    public void BceBackward_WithDeviceUpstreamGradient_MatchesHostScalarVariant(int n)
    {
        var z = TestData.Floats(n, 30, hi: 4f);
        var y = TestData.Floats(n, 31).Select(v => Math.Abs(v)).ToArray();
        var d0 = TestData.Floats(n, 32);
        var a = Upload(d0);
        var b = Upload(d0);
        LossGpuKernels.BceWithLogitsBackward(Device, Upload(z), Upload(y), a, n, dLoss: 0.7f);
        LossGpuKernels.BceWithLogitsBackward(Device, Upload(z), Upload(y), Upload(new[] { 0.7f }), b, n);
        Assert.That(Download(b), Is.EqualTo(Download(a)));
    }

    /// <summary>Sparse Adam on the device against the CPU fused backward (PyTorch SparseAdam: only rows in the batch change).</summary>
    [TestCase(3, 5, 7, Pooling.Sum, false)]
    [TestCase(2, 4, 17, Pooling.Mean, true)]
    [TestCase(1, 1, 1, Pooling.Sum, false)]
    public void SparseAdam_Deterministic_MatchesCpuFusedBackward_OverTwoSteps(int f, int b, int d, Pooling pooling, bool weighted)
    {
        var bags = Bags.Make(f, b, d, weighted, 50 + f + d);
        int[] rows = Enumerable.Range(0, f).Select(t => bags.TableRowStart[t + 1] - bags.TableRowStart[t]).ToArray();
        var hostW = Enumerable.Range(0, f).Select(t => bags.Weights.AsSpan(bags.TableRowStart[t] * d, rows[t] * d).ToArray()).ToArray();
        var hostM = rows.Select(r => new float[r * d]).ToArray();
        var hostV = rows.Select(r => new float[r * d]).ToArray();
        var ws = new EmbeddingBagWorkspace();
        var mode = pooling == Pooling.Mean ? PoolingMode.Mean : PoolingMode.Sum;

        var w = Upload(bags.Weights);
        var m = Zeros(bags.Weights.Length);
        var v = Zeros(bags.Weights.Length);
        var rowStart = Upload(bags.TableRowStart);
        var indices = Upload(bags.Indices);
        var offsets = Upload(bags.Offsets);
        var vw = Upload(bags.ValueWeights);
        for (int step = 1; step <= 2; step++)
        {
            var dOut = TestData.Floats(b * f * d, 60 + step);
            var update = SparseUpdate.Adam(0.05f, 0.9f, 0.999f, 1e-8f, step);
            EmbeddingBagKernels.BackwardTables(hostW, rows, d, b, bags.Indices, bags.Offsets, bags.ValueWeights, mode, dOut, f * d, 0,
                update, hostM, hostV, ws);
            EmbeddingBagGpuKernels.BackwardAdamDeterministic(Device, w, m, v, rowStart, indices, offsets, vw, Upload(dOut), b, f, d, pooling,
                0.05f, 0.9f, 0.999f, 1e-8f, step);
        }
        var expected = hostW.SelectMany(x => x).ToArray();
        TestData.AssertClose(Download(w), expected, 1e-4, 1e-5, "sparse adam weights");
        TestData.AssertClose(Download(m), hostM.SelectMany(x => x).ToArray(), 1e-4, 1e-6, "sparse adam m");
        TestData.AssertClose(Download(v), hostV.SelectMany(x => x).ToArray(), 1e-4, 1e-7, "sparse adam v");
        // Rows outside the batch: weights bit-identical to the start, moments still zero (SparseAdam never decays them).
        var touched = new HashSet<int>();
        for (int t = 0; t < f; t++)
            for (int pos = bags.Offsets[t * b]; pos < bags.Offsets[(t + 1) * b]; pos++) touched.Add(bags.TableRowStart[t] + bags.Indices[pos]);
        var wd = Download(w);
        var md = Download(m);
        for (int row = 0; row < bags.TableRowStart[f]; row++)
            if (!touched.Contains(row))
                for (int q = 0; q < d; q++)
                {
                    Assert.That(wd[row * d + q], Is.EqualTo(bags.Weights[row * d + q]), $"untouched row {row} changed");
                    Assert.That(md[row * d + q], Is.EqualTo(0f), $"untouched row {row} got a moment");
                }
    }
}

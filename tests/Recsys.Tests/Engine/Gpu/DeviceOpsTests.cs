using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Kernels.Gpu;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Gpu;

using Recsys.Engine.Operations;

/// <summary>
/// Every op DLRM and DCNv2 use, forward and backward, on a GPU tape against the same op on a CPU tape (same inputs,
/// same upstream gradient). Shapes are tiny and odd: the CPU accelerator is slow and edge tiles must be right.
/// </summary>
public abstract class DeviceOpsTests : DeviceTestBase
{
    protected DeviceOpsTests(GpuBackend backend) : base(backend) { }

    private const double Rtol = 1e-4, Atol = 1e-5;

    /// <summary>Runs <paramref name="op"/> on <paramref name="device"/>; returns the output and each input's gradient (empty when none).</summary>
    private static (float[] Y, float[][] Grads) Run(Device device, Func<Tape, Tensor[], Tensor> op, Shape[] shapes, float[][] data, bool[] grad, int seedSeed)
    {
        var tape = new Tape(device);
        var inputs = shapes.Select((s, i) => On(device, s, data[i], grad[i])).ToArray();
        var y = op(tape, inputs);
        var yHost = y.ToArray();
        Tensor? seed = y.Length == 1 ? null : On(device, y.Shape, TestData.Floats(y.Length, seedSeed));
        tape.Backward(y, seed);
        var grads = inputs.Select(t => t.Grad?.ToArray() ?? Array.Empty<float>()).ToArray();
        tape.Reset();
        return (yHost, grads);
    }

    private void Compare(string what, Func<Tape, Tensor[], Tensor> op, Shape[] shapes, bool[]? grad = null, Func<int, float[]>? data = null)
    {
        grad ??= shapes.Select(_ => true).ToArray();
        var inputs = shapes.Select((s, i) => data?.Invoke(i) ?? TestData.Floats(s.Size, 100 + i)).ToArray();
        var cpu = Run(Device.Cpu, op, shapes, inputs, grad, 7);
        var gpu = Run(Gpu, op, shapes, inputs, grad, 7);
        TestData.AssertClose(gpu.Y, cpu.Y, Rtol, Atol, $"{what} forward");
        for (int i = 0; i < shapes.Length; i++)
        {
            Assert.That(gpu.Grads[i].Length, Is.EqualTo(cpu.Grads[i].Length), $"{what}: input {i} has a gradient on one device only");
            TestData.AssertClose(gpu.Grads[i], cpu.Grads[i], Rtol, Atol, $"{what} gradient of input {i}");
        }
        Assert.That(cpu.Grads.Any(g => g.Length > 0), Is.True, $"{what}: no gradient was compared");
    }

    [TestCase(Activation.None, true)]
    [TestCase(Activation.Relu, true)]
    [TestCase(Activation.Sigmoid, false)]
    public void Linear_MatchesCpu(Activation activation, bool bias)
    {
        var shapes = bias ? new[] { new Shape(5, 7), new Shape(3, 7), new Shape(3) } : new[] { new Shape(5, 7), new Shape(3, 7) };
        Compare($"Linear {activation}", (t, x) => Ops.Linear(t, x[0], x[1], bias ? x[2] : null, activation), shapes);
    }

    [Test]
    public void Linear_StackedLayers_InputWithoutGrad_MatchesCpu() =>
        Compare("Linear x2", (t, x) => Ops.Linear(t, Ops.Linear(t, x[0], x[1], x[2], Activation.Relu), x[3], null),
            new[] { new Shape(9, 4), new Shape(6, 4), new Shape(6), new Shape(2, 6) }, new[] { false, true, true, true });

    [Test]
    public void DotInteraction_MatchesCpu() =>
        Compare("DotInteraction", (t, x) => Ops.DotInteraction(t, x[0], x[1]), new[] { new Shape(3, 5), new Shape(3, 4, 5) });

    [Test]
    public void DotInteraction_OnlySparseNeedsGrad_MatchesCpu() =>
        Compare("DotInteraction sparse only", (t, x) => Ops.DotInteraction(t, x[0], x[1]), new[] { new Shape(2, 3), new Shape(2, 2, 3) },
            new[] { false, true });

    [Test]
    public void Concat_MatchesCpu() =>
        Compare("Concat", (t, x) => Ops.Concat(t, x[0], x[1], x[2]), new[] { new Shape(3, 2), new Shape(3, 5), new Shape(3, 1) },
            new[] { true, false, true });

    [Test]
    public void CrossLayer_MatchesCpu() =>
        Compare("CrossLayer", (t, x) => Ops.CrossLayer(t, x[0], x[1], x[2], x[3]), new[] { new Shape(4, 5), new Shape(4, 5), new Shape(5, 5), new Shape(5) });

    [Test]
    public void CrossLayer_FirstLayer_X0IsXl_MatchesCpu() =>
        Compare("CrossLayer x0 = xl", (t, x) => Ops.CrossLayer(t, Ops.CrossLayer(t, x[0], x[0], x[1], x[2]), x[0], x[1], x[2]),
            new[] { new Shape(3, 6), new Shape(6, 6), new Shape(6) });

    [Test]
    public void CrossLayerLowRank_MatchesCpu() =>
        Compare("CrossLayerLowRank", (t, x) => Ops.CrossLayerLowRank(t, x[0], x[1], x[2], x[3], x[4]),
            new[] { new Shape(4, 5), new Shape(4, 5), new Shape(5, 2), new Shape(5, 2), new Shape(5) });

    [Test]
    public void BceWithLogits_MatchesCpu() =>
        Compare("BceWithLogits", (t, x) => Ops.BceWithLogits(t, x[0], x[1]), new[] { new Shape(7, 1), new Shape(7) }, new[] { true, false },
            i => i == 0 ? TestData.Floats(7, 1, hi: 3f) : TestData.Floats(7, 2).Select(v => v > 0 ? 1f : 0f).ToArray());

    [Test]
    public void Reshape_MatchesCpu() =>
        Compare("Reshape", (t, x) => Ops.Linear(t, Ops.Reshape(t, x[0], new Shape(3, 6)), x[1], null),
            new[] { new Shape(3, 2, 3), new Shape(2, 6) });

    [Test]
    public void Relu_MatchesCpu() =>
        Compare("Relu", (t, x) => Ops.Relu(t, x[0]), new[] { new Shape(5, 3) });

    [Test]
    public void AddMulScaleSigmoid_MatchCpu() =>
        Compare("Add/Mul/Scale/Sigmoid", (t, x) => Ops.Sigmoid(t, Ops.Scale(t, Ops.Mul(t, Ops.Add(t, x[0], x[1]), x[2]), -1.5f)),
            new[] { new Shape(3, 5), new Shape(3, 5), new Shape(3, 5) }, new[] { true, false, true });

    [Test]
    public void AddResidual_MatchesCpu() =>
        Compare("AddResidual", (t, x) => Ops.AddResidual(t, x[0], x[1]), new[] { new Shape(2, 3, 4), new Shape(2, 3, 4) });

    [TestCase(false)]
    [TestCase(true)]
    public void SumAndMean_MatchCpu(bool mean) =>
        Compare(mean ? "Mean" : "Sum", (t, x) => mean ? Ops.Mean(t, Ops.Mul(t, x[0], x[0])) : Ops.Sum(t, x[0]), new[] { new Shape(7, 37) });

    [TestCase(1f)]
    [TestCase(0.7f)]
    public void Softmax_MatchesCpu(float temperature) =>
        Compare($"Softmax T={temperature}", (t, x) => Ops.Softmax(t, x[0], temperature), new[] { new Shape(3, 37) });

    [Test]
    public void TokenLinear_MatchesCpu() =>
        Compare("TokenLinear", (t, x) => Ops.TokenLinear(t, x[0], x[1], x[2]), new[] { new Shape(2, 3, 5), new Shape(4, 5), new Shape(4) });

    [Test]
    public void AttentionCore_MatchesCpu() =>
        Compare("AttentionCore", (t, x) => Ops.AttentionCore(t, x[0], 2), new[] { new Shape(2, 3, 12) });

    [Test]
    public void LayerNorm_MatchesCpu() =>
        Compare("LayerNorm", (t, x) => Ops.LayerNorm(t, x[0], x[1], x[2]), new[] { new Shape(3, 2, 7), new Shape(7), new Shape(7) },
            new[] { true, true, false });

    [Test]
    public void SelfAttentionBlock_OnDevice_MatchesCpu()
    {
        var cpu = new SelfAttentionInteraction("attn", 8, 2, new Rng(4));
        var gpu = new SelfAttentionInteraction("attn", 8, 2, new Rng(4));
        gpu.To(Gpu);
        var data = TestData.Floats(2 * 5 * 8, 3);
        var upstream = TestData.Floats(2 * 5 * 8, 4);
        var tc = new Tape();
        var yc = cpu.Forward(tc, new Tensor(new Shape(2, 5, 8), data));
        tc.Backward(yc, new Tensor(yc.Shape, upstream));
        var tg = new Tape(Gpu);
        var yg = gpu.Forward(tg, On(Gpu, new Shape(2, 5, 8), data));
        tg.Backward(yg, On(Gpu, yg.Shape, upstream));
        TestData.AssertClose(yg.ToArray(), yc.ToArray(), Rtol, Atol, "attention block forward");
        foreach (var (pc, pg) in cpu.Parameters().Zip(gpu.Parameters()))
            TestData.AssertClose(pg.Grad.ToArray(), pc.Grad.ToArray(), 1e-3, 1e-4, $"gradient of {pc.Name}");
    }

    private static EmbeddingBagCollection Tables(PoolingMode pooling) =>
        new(new[] { new EmbeddingTableConfig("a", 5, 3), new EmbeddingTableConfig("b", 9, 3), new EmbeddingTableConfig("c", 2, 3) }, pooling, new Rng(11));

    /// <summary>Three features, batch 4, bags of 0..3 ids with repeats.</summary>
    private static KeyedJagged Ids(bool weighted)
    {
        int[] rows = { 5, 9, 2 };
        var r = new Random(5);
        var values = new List<int>();
        var offsets = new int[3 * 4 + 1];
        for (int f = 0; f < 3; f++)
            for (int b = 0; b < 4; b++)
            {
                int len = (f + b) % 4;
                for (int q = 0; q < len; q++) values.Add(r.Next(rows[f]));
                offsets[f * 4 + b + 1] = values.Count;
            }
        return new KeyedJagged(3, 4, values.ToArray(), offsets, weighted ? TestData.Floats(values.Count, 6) : null);
    }

    private static IEnumerable<TestCaseData> SparseCases()
    {
        yield return new TestCaseData("sgd", PoolingMode.Sum, false, true);
        yield return new TestCaseData("sgd", PoolingMode.Mean, true, false);
        yield return new TestCaseData("adagrad", PoolingMode.Sum, true, true);
        yield return new TestCaseData("adam", PoolingMode.Mean, false, true);
    }

    private static SparseOptimizer Optimizer(string kind) => kind switch
    {
        "sgd" => new SparseSgd(0.1f),
        "adagrad" => new RowwiseAdagrad(0.1f),
        _ => new SparseAdam(0.05f),
    };

    [TestCaseSource(nameof(SparseCases))]
    public void EmbeddingBags_ForwardAndFusedUpdate_MatchCpu_OverTwoSteps(string optimizer, PoolingMode pooling, bool weighted, bool deterministic)
    {
        var cpu = Tables(pooling);
        var gpu = Tables(pooling);
        gpu.To(Gpu);
        gpu.DeterministicOnDevice = deterministic;
        cpu.Optimizer = Optimizer(optimizer);
        gpu.Optimizer = Optimizer(optimizer);
        var ids = Ids(weighted);
        for (int step = 0; step < 2; step++)
        {
            var upstream = TestData.Floats(4 * 3 * 3, 20 + step);
            var tc = new Tape();
            var yc = Ops.EmbeddingBags(tc, cpu, ids);
            var yHost = yc.ToArray();
            tc.Backward(yc, new Tensor(yc.Shape, (float[])upstream.Clone()));
            var tg = new Tape(Gpu);
            var yg = Ops.EmbeddingBags(tg, gpu, ids);
            Assert.That(yg.IsOnDevice, Is.True);
            TestData.AssertClose(yg.ToArray(), yHost, Rtol, Atol, $"step {step} forward");
            tg.Backward(yg, On(Gpu, yg.Shape, upstream));
        }
        for (int f = 0; f < 3; f++)
            TestData.AssertClose(gpu.Tables[f].Weight.ToArray(), cpu.Tables[f].Weight.ToArray(), Rtol, Atol, $"{optimizer} table {f} after two steps");
    }

    [Test]
    public void EmbeddingBags_IdOutsideTable_ThrowsNamingFeatureAndId()
    {
        var gpu = Tables(PoolingMode.Sum);
        gpu.To(Gpu);
        var ids = new KeyedJagged(3, 1, new[] { 0, 9, 1 }, new[] { 0, 1, 2, 3 });
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Ops.EmbeddingBags(new Tape(Gpu), gpu, ids));
        Assert.That(ex!.Message, Does.Contain("feature 1").And.Contain("id 9"));
    }

    [Test]
    public void DeviceTables_OnHostTape_ThrowNamingBothDevices()
    {
        var gpu = Tables(PoolingMode.Sum);
        gpu.To(Gpu);
        var ex = Assert.Throws<InvalidOperationException>(() => Ops.EmbeddingBags(new Tape(), gpu, Ids(false)));
        Assert.That(ex!.Message, Does.Contain(Gpu.Name).And.Contain("'cpu'"));
    }

    [Test]
    public void EmbeddingBags_WithoutOptimizerOnDevice_ThrowsNotSupported_NamingOpAndDevice()
    {
        var gpu = Tables(PoolingMode.Sum);
        gpu.To(Gpu);
        var tape = new Tape(Gpu);
        var y = Ops.EmbeddingBags(tape, gpu, Ids(false));
        var ex = Assert.Throws<NotSupportedException>(() => tape.Backward(y, On(Gpu, y.Shape, TestData.Floats(y.Length, 1))));
        Assert.That(ex!.Message, Does.Contain("EmbeddingBags").And.Contain(Gpu.Name));
    }

    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(true, true)]
    public void BceWithLogits_MaskedOrWeighted_MatchesCpu(bool masked, bool weighted)
    {
        var mask = new[] { 1f, 0f, 1f, 1f, 0f, 1f, 1f };
        Compare($"BceWithLogits mask={masked} weights={weighted}",
            (t, x) => Ops.BceWithLogits(t, x[0], x[1], masked ? x[2] : null, weighted ? x[3] : null),
            new[] { new Shape(7), new Shape(7), new Shape(7), new Shape(7) }, new[] { true, false, false, false },
            i => i switch
            {
                0 => TestData.Floats(7, 1, hi: 3f),
                1 => TestData.Floats(7, 2).Select(v => v > 0 ? 1f : 0f).ToArray(),
                2 => mask,
                _ => TestData.Floats(7, 3).Select(Math.Abs).ToArray(),
            });
    }

    [Test]
    public void BceWithLogits_EverySampleMasked_GivesZeroLossAndGradient()
    {
        var tape = new Tape(Gpu);
        var z = On(Gpu, new Shape(3), TestData.Floats(3, 1), requiresGrad: true);
        var loss = Ops.BceWithLogits(tape, z, On(Gpu, new Shape(3), new[] { 1f, 0f, 1f }), On(Gpu, new Shape(3), new float[3]));
        Assert.That(loss.ToArray(), Is.EqualTo(new[] { 0f }));
        tape.Backward(loss);
        Assert.That(z.Grad!.ToArray(), Is.All.EqualTo(0f));
    }

    [Test]
    public void GradientClipping_OnDevice_MatchesCpu()
    {
        Parameter[] Make(Device device) => new[] { (5, 3), (7, 1) }.Select((s, i) =>
        {
            var p = new Parameter($"p{i}", new Tensor(new Shape(s.Item1, s.Item2)));
            p.Grad.CopyFrom(TestData.Floats(s.Item1 * s.Item2, 10 + i));
            p.To(device);
            return p;
        }).ToArray();
        var cpu = Make(Device.Cpu);
        var gpu = Make(Gpu);
        foreach (var p in cpu.Concat(gpu)) Touch(p);
        double nc = Recsys.Engine.Optim.GradientClipping.ClipByGlobalNorm(cpu, 0.5);
        double ng = Recsys.Engine.Optim.GradientClipping.ClipByGlobalNorm(gpu, 0.5);
        Assert.That(ng, Is.EqualTo(nc).Within(1e-5 * nc));
        Assert.That(nc, Is.GreaterThan(0.5), "the gradients were actually clipped");
        for (int i = 0; i < cpu.Length; i++)
            TestData.AssertClose(gpu[i].Grad.ToArray(), cpu[i].Grad.ToArray(), Rtol, Atol, $"clipped gradient {i}");
    }

    /// <summary>Marks a parameter as written by a backward (a tape's GradOf does so).</summary>
    private static void Touch(Parameter p)
    {
        var tape = new Tape(p.Device);
        tape.GradOf(p.Value);
    }

    [Test]
    public void HostTensorOnDeviceTape_ThrowsNamingTensorAndDevices()
    {
        var x = new Tensor(new Shape(2, 3), TestData.Floats(6, 1)) { Name = "features" };
        var w = On(Gpu, new Shape(4, 3), TestData.Floats(12, 2));
        var ex = Assert.Throws<InvalidOperationException>(() => Ops.Linear(new Tape(Gpu), x, w, null));
        Assert.That(ex!.Message, Does.Contain("'features'").And.Contain("cpu").And.Contain(Gpu.Name));
    }

    [Test]
    public void DeviceTensor_HostAccessorsThrow_ToArrayAndViewsWork()
    {
        var data = TestData.Floats(6, 3);
        var t = On(Gpu, new Shape(2, 3), data);
        t.Name = "activations";
        var ex = Assert.Throws<InvalidOperationException>(() => _ = t.Span.Length);
        Assert.That(ex!.Message, Does.Contain("'activations'").And.Contain(Gpu.Name));
        Assert.Throws<InvalidOperationException>(() => _ = t[0]);
        Assert.That(t.ToArray(), Is.EqualTo(data));
        var tape = new Tape(Gpu);
        var v = Ops.Reshape(tape, t, new Shape(3, 2));
        Assert.That(v.IsOnDevice && v.Shape == new Shape(3, 2), Is.True);
        Assert.That(v.ToArray(), Is.EqualTo(data));
        var host = new Tensor(new Shape(2), new[] { 1f, 2f });
        Assert.Throws<InvalidOperationException>(() => _ = host.View);
    }

    [Test]
    public void DeviceArena_GrowsBySlabs_AndReusesThemAfterReset()
    {
        var arena = new TensorArena(Gpu, initialFloats: 64);
        int startSlabs = arena.DeviceSlabCount;
        for (int step = 0; step < 3; step++)
        {
            arena.Reset();
            var a = arena.Zeros(new Shape(100));
            var b = arena.Allocate(new Shape(300));
            Assert.That(a.IsOnDevice && b.IsOnDevice, Is.True);
            Assert.That(a.ToArray(), Is.All.EqualTo(0f));
            b.CopyFrom(TestData.Floats(300, step));
            Assert.That(a.ToArray(), Is.All.EqualTo(0f), "allocations must not overlap");
        }
        int grown = arena.DeviceSlabCount;
        Assert.That(grown, Is.GreaterThan(startSlabs), "the first step outgrew the first slab");
        arena.Reset();
        arena.Allocate(new Shape(100));
        arena.Allocate(new Shape(300));
        Assert.That(arena.DeviceSlabCount, Is.EqualTo(grown), "a repeated step takes no new slab");
    }
}

[TestFixture]
public sealed class DeviceOpsIlgpuCpu : DeviceOpsTests
{
    public DeviceOpsIlgpuCpu() : base(GpuBackend.IlgpuCpu) { }
}

[TestFixture]
public sealed class DeviceOpsCuda : DeviceOpsTests
{
    public DeviceOpsCuda() : base(GpuBackend.Cuda) { }
}

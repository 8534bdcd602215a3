using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Nn;
using Recsys.Kernels.Common;
using Recsys.Tests.Support;
using Recsys.Engine.Operations;

namespace Recsys.Tests.Engine.Nn;

public class LinearMlpTests
{
    [Test]
    public void Linear_Construction_NamesShapesAndInitScale()
    {
        var layer = new Linear("top.0", 415, 512, new Rng(1));
        var ps = layer.Parameters().ToList();
        Assert.That(ps.Select(p => p.Name), Is.EqualTo(new[] { "top.0.weight", "top.0.bias" }));
        Assert.That(ps[0].Shape, Is.EqualTo(new Shape(512, 415)));
        Assert.That(ps[1].Shape, Is.EqualTo(new Shape(512)));
        double Std(float[] a) { double m = a.Average(v => (double)v); return Math.Sqrt(a.Average(v => (v - m) * (v - m))); }
        Assert.That(Std(ps[0].Value.ToArray()), Is.EqualTo(Math.Sqrt(2.0 / (415 + 512))).Within(0.03 * Math.Sqrt(2.0 / (415 + 512))));
        Assert.That(Std(ps[1].Value.ToArray()), Is.EqualTo(Math.Sqrt(1.0 / 512)).Within(0.15 * Math.Sqrt(1.0 / 512)));
    }

    [Test]
    public void Linear_NoBias_HasOnlyWeight()
    {
        var layer = new Linear("l", 3, 2, new Rng(1), bias: false);
        Assert.That(layer.Parameters().Select(p => p.Name), Is.EqualTo(new[] { "l.weight" }));
    }

    [Test]
    public void Linear_SameSeed_SameWeights()
    {
        var a = new Linear("l", 13, 7, new Rng(42));
        var b = new Linear("l", 13, 7, new Rng(42));
        Assert.That(a.Weight.Value.ToArray(), Is.EqualTo(b.Weight.Value.ToArray()));
    }

    [Test]
    public void Linear_WrongInputWidth_ThrowsNamingShapes()
    {
        var layer = new Linear("bot.0", 13, 8, new Rng(1));
        var ex = Assert.Throws<ArgumentException>(() => layer.Forward(new Tape(), TestData.Tensor(new Shape(4, 12), 1)));
        Assert.That(ex!.Message, Does.Contain("bot.0").And.Contain("[B, 13]").And.Contain("[4, 12]"));
    }

    [Test]
    public void Mlp_Construction_LayerNamesAndShapes()
    {
        var mlp = new Mlp("bot", new[] { 13, 512, 256, 64 }, new Rng(3));
        Assert.That(mlp.Layers.Count, Is.EqualTo(3));
        Assert.That(mlp.Parameters().Select(p => p.Name), Is.EqualTo(new[] { "bot.0.weight", "bot.0.bias", "bot.1.weight", "bot.1.bias", "bot.2.weight", "bot.2.bias" }));
        Assert.That(mlp.Layers[2].Weight.Shape, Is.EqualTo(new Shape(64, 256)));
        var y = mlp.Forward(new Tape(), TestData.Tensor(new Shape(5, 13), 1, requiresGrad: false));
        Assert.That(y.Shape, Is.EqualTo(new Shape(5, 64)));
        Assert.That(y.ToArray(), Is.All.GreaterThanOrEqualTo(0f), "last layer is ReLU by default");
    }

    [Test]
    public void Mlp_GradCheck_AllParametersMatchFiniteDifferences()
    {
        var mlp = new Mlp("top", new[] { 6, 5, 4, 1 }, new Rng(7), Activation.Sigmoid, Activation.None);
        var x = TestData.Tensor(new Shape(3, 6), 2);
        var inputs = mlp.Parameters().Select(p => p.Value).Append(x).ToList();
        GradCheck.Check(t => mlp.Forward(t, x), inputs, what: "Mlp");
    }

    [Test]
    public void Mlp_TrainingStepOnBce_LowersLoss()
    {
        var rng = new Rng(11);
        var mlp = new Mlp("m", new[] { 8, 16, 1 }, rng, Activation.Relu, Activation.None);
        var x = TestData.Tensor(new Shape(64, 8), 3, requiresGrad: false);
        var yv = new float[64];
        for (int i = 0; i < 64; i++) yv[i] = x[i * 8] + x[i * 8 + 1] > 0 ? 1f : 0f;
        var y = new Tensor(new Shape(64), yv);
        float first = 0, last = 0;
        var tape = new Tape();
        for (int step = 0; step < 50; step++)
        {
            foreach (var p in mlp.Parameters()) p.ZeroGrad();
            var loss = Ops.BceWithLogits(tape, mlp.Forward(tape, x), y);
            if (step == 0) first = loss[0];
            last = loss[0];
            tape.Backward(loss);
            foreach (var p in mlp.Parameters())
            {
                var v = p.Value.Span; var g = p.Grad.ReadOnlySpan;
                for (int i = 0; i < v.Length; i++) v[i] -= 0.5f * g[i];
            }
            tape.Reset();
        }
        Assert.That(last, Is.LessThan(first * 0.7f), $"loss {first} -> {last}");
    }

    [Test]
    public void Mlp_SteadyStateStep_AllocatesNothing()
    {
        var mlp = new Mlp("m", new[] { 13, 32, 16, 1 }, new Rng(5), Activation.Relu, Activation.None);
        var x = TestData.Tensor(new Shape(8, 13), 1, requiresGrad: false);
        var y = new Tensor(new Shape(8), new float[8]);
        var tape = new Tape();
        void Step()
        {
            var loss = Ops.BceWithLogits(tape, mlp.Forward(tape, x), y);
            tape.Backward(loss);
            tape.Reset();
        }
        for (int i = 0; i < 5; i++) Step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) Step();
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.That(after - before, Is.LessThan(1024), "bytes allocated by 20 steady-state training steps");
    }
}

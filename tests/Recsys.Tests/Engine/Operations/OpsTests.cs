using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Operations;
using Recsys.Kernels.Common;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Operations;

public class OpsTests
{
    [Test]
    public void Linear_GradCheck_MatchesFiniteDifferences(
        [Values(Activation.None, Activation.Relu, Activation.Sigmoid)] Activation act, [Values(false, true)] bool withBias)
    {
        var x = TestData.Tensor(new Shape(5, 7), 1);
        var w = TestData.Tensor(new Shape(4, 7), 2);
        var b = TestData.Tensor(new Shape(4), 3);
        var inputs = withBias ? new[] { x, w, b } : new[] { x, w };
        GradCheck.Check(t => Ops.Linear(t, x, w, withBias ? b : null, act), inputs, what: $"Linear {act}");
    }

    [Test]
    public void Linear_ReluOnNarrowInputWithoutGrad_GradCheck()
    {
        // 20 rows of 3 features into 16 ReLU outputs, the input needing no gradient: the shape whose mask is applied
        // inside the weight-gradient pass on AVX-512 hosts. Small inputs (|x·wᵀ| ≤ 0.6) and biases of both signs in
        // ±[0.8, 1] keep every pre-activation 0.2 from ReLU's kink, where finite differences would be wrong, while
        // the mask still drops the outputs whose bias is negative.
        var x = TestData.Tensor(new Shape(20, 3), 11, requiresGrad: false, lo: 0.05f, hi: 0.2f);
        var w = TestData.Tensor(new Shape(16, 3), 12);
        var b = TestData.Tensor(new Shape(16), 13, lo: 0.8f, hi: 1f);
        var pre = Ops.Linear(new Tape { RecordingEnabled = false }, x, w, b).ToArray();
        Assert.That(pre.Min(Math.Abs), Is.GreaterThan(0.1f));
        Assert.That(pre.Count(v => v < 0), Is.InRange(pre.Length / 8, pre.Length * 7 / 8), "the mask must drop some of dY and keep some");
        GradCheck.Check(t => Ops.Linear(t, x, w, b, Activation.Relu), new[] { w, b }, what: "Linear ReLU, input without grad");
    }

    [Test]
    public void Linear_ReluOnNarrowInput_SameWeightGradientsWithOrWithoutInputGrad()
    {
        // Without an input gradient the ReLU mask goes into the weight-gradient pass (dY never rewritten); with one, dY is
        // masked in place first. Both must give the same bits, and neither may change the caller's seed gradient.
        const int rows = 600, inF = 13, outF = 40;
        var seed = TestData.Tensor(new Shape(rows, outF), 23, requiresGrad: false);
        var seedBefore = seed.ToArray();
        (float[] W, float[] B) Run(bool inputGrad)
        {
            var x = TestData.Tensor(new Shape(rows, inF), 21, requiresGrad: inputGrad);
            var w = TestData.Tensor(new Shape(outF, inF), 22);
            var b = TestData.Tensor(new Shape(outF), 24);
            var tape = new Tape();
            var y = Ops.Linear(tape, x, w, b, Activation.Relu);
            tape.Backward(y, seed);
            Assert.That(x.Grad is null, Is.EqualTo(!inputGrad));
            return (w.Grad!.ToArray(), b.Grad!.ToArray());
        }
        var fused = Run(inputGrad: false);
        var unfused = Run(inputGrad: true);
        Assert.That(fused.W, Is.EqualTo(unfused.W));
        Assert.That(fused.B, Is.EqualTo(unfused.B));
        Assert.That(seed.ToArray(), Is.EqualTo(seedBefore));
    }

    [Test]
    public void Linear_InputWithoutGrad_GivesWeightGradOnly()
    {
        var x = TestData.Tensor(new Shape(3, 4), 1, requiresGrad: false);
        var w = TestData.Parameter("w", new Shape(2, 4), 2);
        var tape = new Tape();
        var y = Ops.Linear(tape, x, w.Value, null, Activation.Relu);
        tape.Backward(y, TestData.Tensor(new Shape(3, 2), 3, requiresGrad: false));
        Assert.That(x.Grad, Is.Null);
        Assert.That(w.Touched, Is.True);
    }

    [Test]
    public void Linear_MismatchedWeight_ThrowsNamingShapes()
    {
        var x = TestData.Tensor(new Shape(3, 4), 1);
        var w = TestData.Tensor(new Shape(2, 5), 2);
        var ex = Assert.Throws<ArgumentException>(() => Ops.Linear(new Tape(), x, w, null));
        Assert.That(ex!.Message, Does.Contain("[3, 4]").And.Contain("[2, 5]"));
        var ex2 = Assert.Throws<ArgumentException>(() => Ops.Linear(new Tape(), x, TestData.Tensor(new Shape(2, 4), 2), TestData.Tensor(new Shape(3), 3)));
        Assert.That(ex2!.Message, Does.Contain("[2]").And.Contain("[3]"));
    }

    [Test]
    public void Relu_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(4, 9), 4, lo: 0.1f);
        GradCheck.Check(t => Ops.Relu(t, x), new[] { x }, what: "Relu");
    }

    [Test]
    public void Sigmoid_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(4, 9), 5, hi: 3f);
        GradCheck.Check(t => Ops.Sigmoid(t, x), new[] { x }, what: "Sigmoid");
    }

    [Test]
    public void AddMul_GradCheck_MatchesFiniteDifferences()
    {
        var a = TestData.Tensor(new Shape(3, 17), 6);
        var b = TestData.Tensor(new Shape(3, 17), 7);
        GradCheck.Check(t => Ops.Add(t, a, b), new[] { a, b }, what: "Add");
        GradCheck.Check(t => Ops.Mul(t, a, b), new[] { a, b }, what: "Mul");
        // The same tensor on both sides accumulates both contributions.
        GradCheck.Check(t => Ops.Mul(t, a, a), new[] { a }, what: "Mul(a, a)");
    }

    [Test]
    public void AddMul_ShapeMismatch_ThrowsNamingShapes()
    {
        var a = TestData.Tensor(new Shape(3, 4), 1);
        var b = TestData.Tensor(new Shape(4, 3), 2);
        Assert.That(Assert.Throws<ArgumentException>(() => Ops.Add(new Tape(), a, b))!.Message, Does.Contain("[3, 4]").And.Contain("[4, 3]"));
        Assert.That(Assert.Throws<ArgumentException>(() => Ops.Mul(new Tape(), a, b))!.Message, Does.Contain("[3, 4]").And.Contain("[4, 3]"));
    }

    [Test]
    public void Scale_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(2, 5), 8);
        GradCheck.Check(t => Ops.Scale(t, x, -1.75f), new[] { x }, what: "Scale");
    }

    [Test]
    public void Concat_GradCheck_MatchesFiniteDifferences()
    {
        var a = TestData.Tensor(new Shape(3, 2), 9);
        var b = TestData.Tensor(new Shape(3, 5), 10, requiresGrad: false);
        var c = TestData.Tensor(new Shape(3, 1), 11);
        GradCheck.Check(t => Ops.Concat(t, a, b, c), new[] { a, c }, what: "Concat");
        var y = Ops.Concat(new Tape(), a, b, c);
        Assert.That(y.Shape, Is.EqualTo(new Shape(3, 8)));
        Assert.That(y[1 * 8 + 2], Is.EqualTo(b[1 * 5 + 0]));
        Assert.That(y[2 * 8 + 7], Is.EqualTo(c[2]));
    }

    [Test]
    public void Concat_BatchMismatch_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Ops.Concat(new Tape(), TestData.Tensor(new Shape(3, 2), 1), TestData.Tensor(new Shape(4, 2), 2)));
        Assert.That(ex!.Message, Does.Contain("[3, 2]").And.Contain("[4, 2]"));
    }

    [Test]
    public void SumMean_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(4, 6), 12);
        GradCheck.Check(t => Ops.Sum(t, x), new[] { x }, what: "Sum");
        GradCheck.Check(t => Ops.Mean(t, x), new[] { x }, what: "Mean");
        var m = Ops.Mean(new Tape(), x);
        Assert.That(m.Shape, Is.EqualTo(Shape.Scalar));
        Assert.That(m[0], Is.EqualTo(x.ToArray().Average()).Within(1e-6));
    }

    [Test]
    public void Softmax_GradCheck_MatchesFiniteDifferences([Values(1f, 0.5f, 3f)] float temperature)
    {
        var x = TestData.Tensor(new Shape(3, 7), 13);
        GradCheck.Check(t => Ops.Softmax(t, x, temperature), new[] { x }, what: $"Softmax T={temperature}");
    }

    [Test]
    public void Softmax_Rank1_ThrowsNamingShape()
    {
        var ex = Assert.Throws<ArgumentException>(() => Ops.Softmax(new Tape(), TestData.Tensor(new Shape(5), 1)));
        Assert.That(ex!.Message, Does.Contain("[5]"));
    }

    [Test]
    public void BceWithLogits_GradCheck_MatchesFiniteDifferences([Values(false, true)] bool withMask, [Values(false, true)] bool columnShape)
    {
        var z = TestData.Tensor(columnShape ? new Shape(9, 1) : new Shape(9), 14, hi: 4f);
        var y = new Tensor(new Shape(9), TestData.Floats(9, 15).Select(Math.Abs).ToArray());
        var mask = new Tensor(new Shape(9), new float[] { 1, 0, 1, 1, 0, 1, 1, 1, 0 });
        GradCheck.Check(t => Ops.BceWithLogits(t, z, y, withMask ? mask : null), new[] { z }, what: "BceWithLogits");
        var w = new Tensor(new Shape(9), TestData.Floats(9, 16).Select(v => 0.5f + Math.Abs(v)).ToArray());
        GradCheck.Check(t => Ops.BceWithLogits(t, z, y, withMask ? mask : null, w), new[] { z }, what: "BceWithLogits weighted");
    }

    [Test]
    public void BceWithLogits_TargetMismatch_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Ops.BceWithLogits(new Tape(), TestData.Tensor(new Shape(4, 1), 1), TestData.Tensor(new Shape(5), 2, requiresGrad: false)));
        Assert.That(ex!.Message, Does.Contain("[4, 1]").And.Contain("[5]"));
    }

    [Test]
    public void Composite_MlpLikeChain_GradCheck()
    {
        // Linear → Relu → Concat → Linear → Softmax → Mul → Mean: gradients flow through every op together.
        var x = TestData.Tensor(new Shape(4, 6), 20);
        var w1 = TestData.Tensor(new Shape(5, 6), 21);
        var w2 = TestData.Tensor(new Shape(3, 11), 22);
        var g = TestData.Tensor(new Shape(4, 3), 23);
        GradCheck.Check(t =>
        {
            var h = Ops.Linear(t, x, w1, null, Activation.Sigmoid);
            var cat = Ops.Concat(t, h, x);
            var z = Ops.Linear(t, cat, w2, null);
            var p = Ops.Softmax(t, z, 0.7f);
            return Ops.Mean(t, Ops.Mul(t, p, g));
        }, new[] { x, w1, w2, g }, what: "composite");
    }
}

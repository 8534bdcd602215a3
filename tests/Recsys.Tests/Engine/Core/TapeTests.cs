using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Operations;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Core;

public class TapeTests
{
    [Test]
    public void Reshape_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(3, 5), seed: 1);
        GradCheck.Check(t => Ops.Reshape(t, x, new Shape(5, 3)), new[] { x }, what: "Reshape");
    }

    [Test]
    public void Reshape_WrongSize_ThrowsNamingBothShapes()
    {
        var x = TestData.Tensor(new Shape(3, 5), seed: 1);
        var ex = Assert.Throws<ArgumentException>(() => Ops.Reshape(new Tape(), x, new Shape(4, 4)));
        Assert.That(ex!.Message, Does.Contain("[3, 5]").And.Contain("[4, 4]"));
    }

    [Test]
    public void Reset_ClearsTheGradientsItGave_AndOldTensorsSaySoWhenUsed()
    {
        var x = TestData.Tensor(new Shape(3, 4), seed: 7);
        x.Name = "dense input";
        var seed = TestData.Tensor(new Shape(12), seed: 8);
        var tape = new Tape();
        var stepOutput = Ops.Reshape(tape, x, new Shape(12));
        tape.Backward(stepOutput, seed);
        var oldGrad = x.Grad!;
        var first = oldGrad.ToArray();
        tape.Reset();
        // A leaf's gradient came from the arena: the reset takes it back, so the next step starts from none (a stale one
        // would have become some later tensor of the arena, silently).
        Assert.That(x.Grad, Is.Null);
        // Tensors of the old step say so when used, before the arena hands their objects out again (a reference kept
        // past that aliases a new tensor: the documented contract is not to keep them).
        var read = Assert.Throws<InvalidOperationException>(() => _ = oldGrad.Span[0]);
        Assert.That(read!.Message, Does.Contain("reset").And.Contain("ToArray"));
        // Set back by hand, the old gradient is refused by the next backward, naming the tensor.
        x.Grad = oldGrad;
        var y = Ops.Reshape(tape, x, new Shape(12));
        var ex = Assert.Throws<InvalidOperationException>(() => tape.Backward(y, seed));
        Assert.That(ex!.Message, Does.Contain("'dense input'").And.Contain("[3, 4]").And.Contain("x.Grad = null"));
        tape.Reset();
        var view = Assert.Throws<InvalidOperationException>(() => Ops.Reshape(tape, stepOutput, new Shape(3, 4)));
        Assert.That(view!.Message, Does.Contain("reset"));
        // The next step, as usual: the same gradient, not added to the last one.
        tape.Reset();
        x.Grad = null;
        tape.Backward(Ops.Reshape(tape, x, new Shape(12)), seed);
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(first));
        tape.Reset();
        tape.Backward(Ops.Reshape(tape, x, new Shape(12)), seed);
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(first));
    }

    [Test]
    public void Backward_NonScalarWithoutSeed_Throws()
    {
        var x = TestData.Tensor(new Shape(2, 2), seed: 2);
        var tape = new Tape();
        var y = Ops.Reshape(tape, x, new Shape(4));
        Assert.Throws<ArgumentException>(() => tape.Backward(y));
    }

    [Test]
    public void Parameter_NotUsedInStep_IsNotTouched()
    {
        var used = TestData.Parameter("used", new Shape(4), 3);
        var unused = TestData.Parameter("unused", new Shape(4), 4);
        var tape = new Tape();
        var y = Ops.Reshape(tape, used.Value, new Shape(2, 2));
        tape.Backward(y, TestData.Tensor(new Shape(2, 2), 5, requiresGrad: false));
        Assert.That(used.Touched, Is.True);
        Assert.That(unused.Touched, Is.False);
        Assert.That(unused.Grad.ToArray(), Is.All.EqualTo(0f));
    }

    [Test]
    public void Arena_SteadyState_AllocatesNothingAfterWarmup()
    {
        var arena = new TensorArena(initialFloats: 16);
        void Step()
        {
            for (int i = 0; i < 10; i++) arena.Allocate(new Shape(100 + i, 7));
            arena.Reset();
        }
        Step(); Step(); // grows and consolidates
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) Step();
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.That(after - before, Is.LessThan(1024), "bytes allocated by 100 steady-state arena steps");
    }

    [Test]
    public unsafe void Arena_EveryTensor_StartsOnA64ByteBoundary()
    {
        // Small and large first blocks, an overflow into an extra block, and the consolidated block after a reset.
        foreach (int initial in new[] { 16, 5_000, 3 << 20 })
        {
            var arena = new TensorArena(initialFloats: initial);
            for (int step = 0; step < 3; step++)
            {
                for (int i = 0; i < 12; i++)
                {
                    var t = arena.Allocate(new Shape(37 + 1000 * i, 3));
                    fixed (float* p = t.Span)
                        Assert.That((long)p % 64, Is.EqualTo(0), $"initial {initial}, step {step}, tensor {i}");
                }
                arena.Reset();
            }
        }
    }

    [Test]
    public void Backward_CalledTwice_DoesNotRerunEarlierOps()
    {
        var p = TestData.Parameter("p", new Shape(4), 6);
        var tape = new Tape();
        var seed = TestData.Tensor(new Shape(2, 2), 7, requiresGrad: false);
        var y1 = Ops.Reshape(tape, p.Value, new Shape(2, 2));
        tape.Backward(y1, seed);
        var afterFirst = p.Grad.ToArray();
        Assert.That(tape.Count, Is.EqualTo(0), "backward consumes the recorded ops");
        var y2 = Ops.Reshape(tape, p.Value, new Shape(2, 2));
        tape.Backward(y2, seed);
        var afterSecond = p.Grad.ToArray();
        for (int i = 0; i < 4; i++)
            Assert.That(afterSecond[i], Is.EqualTo(2 * afterFirst[i]).Within(1e-6), "the second backward adds exactly one more contribution");
    }

    [Test]
    public void Backward_HostSeed_IsNeverModified_EvenWhenTheLastRuleWritesItsOutputGradientInPlace()
    {
        // Linear + ReLU turns its output gradient into dPre in place; with the seed lent as that gradient it must copy.
        var x = TestData.Tensor(new Shape(5, 7), 1);
        var w = TestData.Parameter("w", new Shape(3, 7), 2);
        var b = TestData.Parameter("b", new Shape(3), 3);
        var seed = TestData.Tensor(new Shape(5, 3), 4, requiresGrad: false);
        var seedBefore = seed.ToArray();

        var tape = new Tape();
        tape.Backward(Ops.Linear(tape, x, w.Value, b.Value, Recsys.Kernels.Common.Activation.Relu), seed);
        Assert.That(seed.ToArray(), Is.EqualTo(seedBefore), "seed after backward");
        var dW = w.Grad.ToArray();
        var dX = x.Grad!.ToArray();

        // The same step seeded through an ones-scaled loss (no lent seed): the same gradients.
        w.ZeroGrad();
        b.ZeroGrad();
        x.Grad = null;
        var tape2 = new Tape();
        var y = Ops.Linear(tape2, x, w.Value, b.Value, Recsys.Kernels.Common.Activation.Relu);
        var seedCopy = new Tensor(seed.Shape, seedBefore);
        tape2.Backward(Ops.Sum(tape2, Ops.Mul(tape2, y, seedCopy)));
        Assert.That(w.Grad.ToArray(), Is.EqualTo(dW).Within(1e-6), "dW");
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(dX).Within(1e-6), "dX");
    }

    [Test]
    public void Backward_LaterAccumulationIntoASeededOutput_LeavesTheFirstSeedAlone()
    {
        var p = TestData.Parameter("p", new Shape(4), 6);
        var tape = new Tape();
        var seed1 = TestData.Tensor(new Shape(2, 2), 7, requiresGrad: false);
        var seed2 = TestData.Tensor(new Shape(2, 2), 8, requiresGrad: false);
        var before1 = seed1.ToArray();
        var y = Ops.Reshape(tape, p.Value, new Shape(2, 2));
        tape.Backward(y, seed1);
        Assert.That(y.Grad!.ToArray(), Is.EqualTo(before1), "the output's gradient is the seed");
        // A second graph from y: its rule adds into y's gradient, which must not be the caller's seed1 any more.
        var z = Ops.Reshape(tape, y, new Shape(4));
        tape.Backward(z, new Tensor(new Shape(4), seed2.ToArray()));
        Assert.That(seed1.ToArray(), Is.EqualTo(before1), "first seed after the second backward");
        var expected = before1.Zip(seed2.ToArray(), (u, v) => u + v).ToArray();
        Assert.That(y.Grad!.ToArray(), Is.EqualTo(expected).Within(1e-6), "y's gradient accumulated both seeds");
    }

    [Test]
    public void Backward_SeveralSeedsOnOneTape_NoneIsModified()
    {
        // Per-table training calls Backward once per table on one tape: every seed is lent, none copied or changed, even
        // when a later graph adds into an earlier output's gradient or the caller clears that gradient first.
        var p = TestData.Parameter("p", new Shape(4), 6);
        var tape = new Tape();
        var seeds = Enumerable.Range(0, 3).Select(i => TestData.Tensor(new Shape(2, 2), 20 + i, requiresGrad: false)).ToArray();
        var s4 = TestData.Tensor(new Shape(4), 30, requiresGrad: false);
        var s5 = TestData.Tensor(new Shape(4), 31, requiresGrad: false);
        var before = seeds.Select(t => t.ToArray()).ToArray();
        var y = seeds.Select(seed =>
        {
            var yi = Ops.Reshape(tape, p.Value, new Shape(2, 2));
            tape.Backward(yi, seed);
            return yi;
        }).ToArray();
        tape.Backward(Ops.Reshape(tape, y[1], new Shape(4)), s4); // adds into y[1]'s lent gradient
        y[2].Grad = null;
        tape.Backward(Ops.Reshape(tape, y[2], new Shape(4)), s5); // y[2]'s gradient was cleared: a fresh one
        for (int i = 0; i < 3; i++) Assert.That(seeds[i].ToArray(), Is.EqualTo(before[i]), $"seed {i}");
        Assert.That(y[0].Grad!.ToArray(), Is.EqualTo(before[0]), "y0's gradient is its seed");
        Assert.That(y[1].Grad!.ToArray(), Is.EqualTo(before[1].Zip(s4.ToArray(), (a, b) => a + b).ToArray()).Within(1e-6), "y1: seed + later graph");
        Assert.That(y[2].Grad!.ToArray(), Is.EqualTo(s5.ToArray()), "y2: only the later graph");
    }

    [Test]
    public void Backward_SeveralOutputs_EachOpRunsOnce_SharedInputGetsTheSum()
    {
        // y0 = 2x and y1 = x ⊙ x share x; one backward from both gives dx = 2·s0 + 2x ⊙ s1, each rule run once.
        var x = TestData.Tensor(new Shape(2, 3), seed: 1);
        var s0 = TestData.Tensor(new Shape(2, 3), 2, requiresGrad: false);
        var s1 = TestData.Tensor(new Shape(2, 3), 3, requiresGrad: false);
        var tape = new Tape();
        var y0 = Ops.Scale(tape, x, 2f);
        var y1 = Ops.Mul(tape, x, x);
        tape.Backward(new[] { y0, y1 }, new Tensor?[] { s0, s1 });
        var expected = x.ToArray().Select((v, i) => 2.0 * s0.ToArray()[i] + 2.0 * v * s1.ToArray()[i]).ToArray();
        TestData.AssertClose(x.Grad!.ToArray(), expected, 1e-6, 1e-6, "dx");
        Assert.That(s0.ToArray(), Is.EqualTo(TestData.Tensor(new Shape(2, 3), 2, requiresGrad: false).ToArray()), "seeds are not modified");
    }

    [Test]
    public void Backward_SeveralOutputs_CountMismatch_SaysHowMany()
    {
        var x = TestData.Tensor(new Shape(2), seed: 1);
        var tape = new Tape();
        var y = Ops.Scale(tape, x, 2f);
        var ex = Assert.Throws<ArgumentException>(() => tape.Backward(new[] { y, y }, new Tensor?[] { TestData.Tensor(new Shape(2), 2, requiresGrad: false) }));
        Assert.That(ex!.Message, Does.Contain("2 outputs but 1 seeds"));
    }
}

using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Operations;
using Recsys.Kernels.Common;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Core;

public class TapeProfileTests
{
    /// <summary>Two Linear layers of different shapes and one of the first shape again, over two steps.</summary>
    private static TapeProfile Profile(bool byShape)
    {
        var x = TestData.Tensor(new Shape(6, 5), seed: 1);
        var w1 = TestData.Parameter("w1", new Shape(4, 5), 2);
        var w2 = TestData.Parameter("w2", new Shape(3, 4), 3);
        var w3 = TestData.Parameter("w3", new Shape(4, 5), 4);
        var profile = new TapeProfile { ByShape = byShape };
        var tape = new Tape { Profile = profile };
        for (int step = 0; step < 2; step++)
        {
            tape.Reset();
            x.Grad = null;
            var h = Ops.Linear(tape, x, w1.Value, null, Activation.Relu);
            var y = Ops.Linear(tape, h, w2.Value, null);
            var z = Ops.Linear(tape, x, w3.Value, null);
            tape.Backward(new[] { y, z }, new Tensor?[] { TestData.Tensor(new Shape(6, 3), seed: 5), TestData.Tensor(new Shape(6, 4), seed: 6) });
            profile.Steps++;
        }
        return profile;
    }

    [Test]
    public void ByOp_OneRowPerOp()
    {
        var rows = Profile(byShape: false).Entries.ToArray();
        Assert.That(rows.Select(r => r.Name), Is.EqualTo(new[] { "Linear" }));
        Assert.That(rows[0].Op, Is.EqualTo("Linear"));
        Assert.That(rows[0].Shapes, Is.Null);
        Assert.That(rows[0].Calls, Is.EqualTo(6), "three backward rules a step, two steps");
        Assert.That(rows[0].ForwardTicks, Is.GreaterThan(0));
        Assert.That(rows[0].BackwardTicks, Is.GreaterThan(0));
    }

    [Test]
    public void ByShape_OneRowPerOpAndShapes_SameOpName()
    {
        var rows = Profile(byShape: true).Entries.OrderBy(r => r.Name, StringComparer.Ordinal).ToArray();
        Assert.That(rows.Select(r => r.Name), Is.EqualTo(new[] { "Linear [6, 4] → [6, 3]", "Linear [6, 5] → [6, 4]" }));
        Assert.That(rows.Select(r => r.Op), Is.All.EqualTo("Linear"));
        Assert.That(rows.Select(r => r.Shapes), Is.EqualTo(new[] { "[6, 4] → [6, 3]", "[6, 5] → [6, 4]" }));
        Assert.That(rows.Select(r => r.Calls), Is.EqualTo(new[] { 2, 4 }), "4 → 3 once a step; 5 → 4 twice (two layers share the shape)");
        Assert.That(rows.Select(r => r.BackwardTicks), Is.All.GreaterThan(0));
    }

    [Test]
    public void NamedPhase_HasNoShapes()
    {
        var profile = new TapeProfile { ByShape = true };
        profile.Add("optimizer (dense)", 0, 10);
        var row = profile.Entries.Single();
        Assert.That((row.Name, row.Op, row.Shapes, row.BackwardTicks, row.Calls), Is.EqualTo(("optimizer (dense)", "optimizer (dense)", (string?)null, 10L, 0L)));
    }
}

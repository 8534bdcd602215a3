using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Nn;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Nn;

using Recsys.Engine.Operations;

public class InteractionModuleTests
{
    [Test]
    public void DotInteraction_OutputDim_MatchesForwardWidth()
    {
        var m = new DotInteraction();
        var y = m.Forward(new Tape(), TestData.Tensor(new Shape(2, 16), 1), TestData.Tensor(new Shape(2, 26, 16), 2));
        Assert.That(y.Dim(1), Is.EqualTo(DotInteraction.OutputDim(26, 16)));
        Assert.That(DotInteraction.OutputDim(26, 64), Is.EqualTo(415));
        Assert.That(m.Parameters(), Is.Empty);
    }

    [Test]
    public void CrossNet_FullRank_HasNamedParametersAndMatchesChainedLayers()
    {
        var net = new CrossNet("cross", 6, 3, new Rng(7));
        Assert.That(net.Parameters().Select(p => p.Name), Is.EqualTo(new[]
        {
            "cross.0.weight", "cross.0.bias", "cross.1.weight", "cross.1.bias", "cross.2.weight", "cross.2.bias",
        }));
        var x0 = TestData.Tensor(new Shape(4, 6), 3);
        var tape = new Tape();
        var y = net.Forward(tape, x0);
        var ps = net.Parameters().ToArray();
        var x = x0;
        for (int l = 0; l < 3; l++) x = Ops.CrossLayer(tape, x0, x, ps[2 * l].Value, ps[2 * l + 1].Value);
        Assert.That(y.ToArray(), Is.EqualTo(x.ToArray()));
    }

    [Test]
    public void CrossNet_LowRank_GradCheck_MatchesFiniteDifferences()
    {
        var net = new CrossNet("cross", 5, 2, new Rng(11), lowRank: 2);
        Assert.That(net.Parameters().Select(p => p.Name), Is.EqualTo(new[]
        {
            "cross.0.u", "cross.0.v", "cross.0.bias", "cross.1.u", "cross.1.v", "cross.1.bias",
        }));
        foreach (var p in net.Parameters()) TestData.Floats(p.Value.Length, p.Name.Length, 0.05f, 0.5f).CopyTo(p.Value.Span);
        var x0 = TestData.Tensor(new Shape(3, 5), 4);
        GradCheck.Check(t => net.Forward(t, x0), new[] { x0 }.Concat(net.Parameters().Select(p => p.Value)).ToArray(), what: "CrossNet low rank");
    }

    [Test]
    public void CrossNet_WrongInputWidth_ThrowsNamingShape()
    {
        var net = new CrossNet("cross", 6, 1, new Rng(1));
        var ex = Assert.Throws<ArgumentException>(() => net.Forward(new Tape(), TestData.Tensor(new Shape(2, 5), 1)));
        Assert.That(ex!.Message, Does.Contain("[2, 5]").And.Contain("6"));
    }

    [Test]
    public void LayerNorm_Initialised_NormalisesRows()
    {
        var ln = new LayerNorm("ln", 8);
        var y = ln.Forward(new Tape(), TestData.Tensor(new Shape(3, 8), 5));
        for (int r = 0; r < 3; r++)
        {
            var row = y.ToArray().AsSpan(r * 8, 8).ToArray();
            Assert.That(row.Average(), Is.EqualTo(0).Within(1e-5));
            Assert.That(row.Select(v => v * v).Average(), Is.EqualTo(1).Within(1e-3));
        }
        Assert.That(ln.Parameters().Select(p => p.Name), Is.EqualTo(new[] { "ln.weight", "ln.bias" }));
    }

    [Test]
    public void SelfAttentionInteraction_GradCheck_MatchesFiniteDifferences()
    {
        var block = new SelfAttentionInteraction("attn", 4, 2, new Rng(3));
        foreach (var p in block.Parameters()) TestData.Floats(p.Value.Length, p.Name.Length, 0.05f, 0.5f).CopyTo(p.Value.Span);
        var x = TestData.Tensor(new Shape(2, 3, 4), 6);
        var inputs = new[] { x }.Concat(block.Parameters().Select(p => p.Value)).ToArray();
        GradCheck.Check(t => block.Forward(t, x), inputs, eps: 3e-3, what: "SelfAttentionInteraction");
        Assert.That(block.Parameters().Select(p => p.Name), Is.EqualTo(new[]
        {
            "attn.in_proj.weight", "attn.in_proj.bias", "attn.out_proj.weight", "attn.out_proj.bias", "attn.norm.weight", "attn.norm.bias",
        }));
    }

    [Test]
    public void SelfAttentionInteraction_W5Shape_KeepsTokenShape()
    {
        var block = new SelfAttentionInteraction("attn", 64, 2, new Rng(3));
        var y = block.Forward(new Tape(), TestData.Tensor(new Shape(2, 27, 64), 6));
        Assert.That(y.Shape, Is.EqualTo(new Shape(2, 27, 64)));
    }
}

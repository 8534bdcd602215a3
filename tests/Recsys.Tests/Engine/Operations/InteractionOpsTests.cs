using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Tests.Support;

// Not "Recsys.Tests.Engine.Ops": that namespace would shadow the Ops class for every test under Recsys.Tests.Engine.
namespace Recsys.Tests.Engine.Operations;

using Recsys.Engine.Operations;

public class DotInteractionOpTests
{
    [Test]
    public void DotInteraction_GradCheck_MatchesFiniteDifferences()
    {
        var dense = TestData.Tensor(new Shape(2, 5), seed: 1);
        var sparse = TestData.Tensor(new Shape(2, 3, 5), seed: 2);
        GradCheck.Check(t => Ops.DotInteraction(t, dense, sparse), new[] { dense, sparse }, what: "DotInteraction");
    }

    /// <summary>D = 64 and F + 1 ≤ 32: the kernel's blocked backward (masked-load G, three-row products) where AVX-512 is there.</summary>
    [Test]
    public void DotInteraction_DlrmShapedRows_GradCheck_MatchesFiniteDifferences()
    {
        var dense = TestData.Tensor(new Shape(2, 64), seed: 11, lo: 0.05f, hi: 0.3f);
        var sparse = TestData.Tensor(new Shape(2, 4, 64), seed: 12, lo: 0.05f, hi: 0.3f);
        GradCheck.Check(t => Ops.DotInteraction(t, dense, sparse), new[] { dense, sparse }, what: "DotInteraction D = 64");
    }

    [Test]
    public void DotInteraction_InputsUsedTwice_SecondBackwardAccumulatesOntoTheFirst()
    {
        // The later use's backward runs first and overwrites fresh gradient buffers; the earlier one must add to them.
        var dense = TestData.Tensor(new Shape(3, 5), seed: 7);
        var sparse = TestData.Tensor(new Shape(3, 4, 5), seed: 8);
        GradCheck.Check(t => Ops.Add(t, Ops.DotInteraction(t, dense, sparse), Ops.Scale(t, Ops.DotInteraction(t, dense, sparse), 0.5f)),
            new[] { dense, sparse }, what: "DotInteraction used twice");
    }

    [Test]
    public void DotInteraction_OnlySparseNeedsGrad_GivesSparseGradient()
    {
        var dense = TestData.Tensor(new Shape(2, 4), seed: 3, requiresGrad: false);
        var sparse = TestData.Tensor(new Shape(2, 2, 4), seed: 4);
        GradCheck.Check(t => Ops.DotInteraction(t, dense, sparse), new[] { sparse }, what: "DotInteraction sparse only");
        Assert.That(dense.Grad, Is.Null);
    }

    [Test]
    public void DotInteraction_OutputShape_IsDensePlusPairs()
    {
        var y = Ops.DotInteraction(new Tape(), TestData.Tensor(new Shape(3, 64), 5), TestData.Tensor(new Shape(3, 26, 64), 6));
        Assert.That(y.Shape, Is.EqualTo(new Shape(3, 64 + 351)));
    }

    [Test]
    public void DotInteraction_MismatchedDims_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Ops.DotInteraction(new Tape(), TestData.Tensor(new Shape(3, 8), 1), TestData.Tensor(new Shape(3, 4, 6), 2)));
        Assert.That(ex!.Message, Does.Contain("[3, 8]").And.Contain("[3, 4, 6]"));
    }
}

public class CrossLayerOpTests
{
    [Test]
    public void CrossLayer_GradCheck_MatchesFiniteDifferences()
    {
        var x0 = TestData.Tensor(new Shape(3, 7), 1);
        var xl = TestData.Tensor(new Shape(3, 7), 2);
        var w = TestData.Parameter("w", new Shape(7, 7), 3, 0.01f, 0.3f);
        var b = TestData.Parameter("b", new Shape(7), 4);
        GradCheck.Check(t => Ops.CrossLayer(t, x0, xl, w.Value, b.Value), new[] { x0, xl, w.Value, b.Value }, what: "CrossLayer");
    }

    [Test]
    public void CrossLayer_FirstLayerXlIsX0_GradCheckSeesBothPaths()
    {
        var x0 = TestData.Tensor(new Shape(2, 5), 5);
        var w = TestData.Parameter("w", new Shape(5, 5), 6, 0.01f, 0.3f);
        var b = TestData.Parameter("b", new Shape(5), 7);
        GradCheck.Check(t => Ops.CrossLayer(t, x0, x0, w.Value, b.Value), new[] { x0, w.Value, b.Value }, what: "CrossLayer x_l = x0");
    }

    [Test]
    public void CrossLayerLowRank_GradCheck_MatchesFiniteDifferences()
    {
        var x0 = TestData.Tensor(new Shape(3, 6), 8);
        var xl = TestData.Tensor(new Shape(3, 6), 9);
        var u = TestData.Parameter("u", new Shape(6, 2), 10, 0.05f, 0.5f);
        var v = TestData.Parameter("v", new Shape(6, 2), 11, 0.05f, 0.5f);
        var b = TestData.Parameter("b", new Shape(6), 12);
        GradCheck.Check(t => Ops.CrossLayerLowRank(t, x0, xl, u.Value, v.Value, b.Value), new[] { x0, xl, u.Value, v.Value, b.Value }, what: "CrossLayerLowRank");
    }

    [Test]
    public void CrossLayer_WrongWeightShape_ThrowsNamingShapes()
    {
        var x = TestData.Tensor(new Shape(2, 4), 1);
        var ex = Assert.Throws<ArgumentException>(() => Ops.CrossLayer(new Tape(), x, x, TestData.Tensor(new Shape(4, 3), 2), TestData.Tensor(new Shape(4), 3)));
        Assert.That(ex!.Message, Does.Contain("[2, 4]").And.Contain("[4, 3]"));
    }

    [Test]
    public void CrossLayerLowRank_MismatchedFactors_ThrowsNamingShapes()
    {
        var x = TestData.Tensor(new Shape(2, 4), 1);
        var ex = Assert.Throws<ArgumentException>(() => Ops.CrossLayerLowRank(new Tape(), x, x,
            TestData.Tensor(new Shape(4, 2), 2), TestData.Tensor(new Shape(4, 3), 3), TestData.Tensor(new Shape(4), 4)));
        Assert.That(ex!.Message, Does.Contain("[4, 2]").And.Contain("[4, 3]"));
    }
}

public class AttentionOpTests
{
    [Test]
    public void AttentionCore_GradCheck_MatchesFiniteDifferences()
    {
        var qkv = TestData.Tensor(new Shape(2, 3, 12), 1);
        GradCheck.Check(t => Ops.AttentionCore(t, qkv, heads: 2), new[] { qkv }, maxPerInput: 72, what: "AttentionCore");
    }

    [Test]
    public void AttentionCore_HeadsNotDividingDim_ThrowsNamingShape()
    {
        var ex = Assert.Throws<ArgumentException>(() => Ops.AttentionCore(new Tape(), TestData.Tensor(new Shape(2, 3, 15), 1), heads: 2));
        Assert.That(ex!.Message, Does.Contain("[2, 3, 15]").And.Contain("2 heads"));
    }

    [Test]
    public void TokenLinear_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(2, 3, 5), 2);
        var w = TestData.Parameter("w", new Shape(4, 5), 3);
        var b = TestData.Parameter("b", new Shape(4), 4);
        GradCheck.Check(t => Ops.TokenLinear(t, x, w.Value, b.Value), new[] { x, w.Value, b.Value }, what: "TokenLinear");
    }

    [Test]
    public void TokenLinear_ManyTokens_GradCheck_MatchesFiniteDifferences()
    {
        // 2,100 tokens, weight 16 × 32: the backward's one-pass path (dX and dW from each block of dY, dW summed per row
        // range, a partial last tile), with the op's gradient flags around it.
        Assert.That(Recsys.Kernels.Gemm.GemmKernels.UseFusedBackward(2100, 16, 32),
            Is.EqualTo(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated), "the shape takes the one-pass path");
        var x = TestData.Tensor(new Shape(3, 700, 32), 12);
        var w = TestData.Parameter("w", new Shape(16, 32), 13);
        var b = TestData.Parameter("b", new Shape(16), 14);
        GradCheck.Check(t => Ops.TokenLinear(t, x, w.Value, b.Value), new[] { x, w.Value, b.Value }, what: "TokenLinear, many tokens");
    }

    [Test]
    public void TokenLinear_WrongInputDim_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Ops.TokenLinear(new Tape(), TestData.Tensor(new Shape(2, 3, 5), 1), TestData.Tensor(new Shape(4, 6), 2), TestData.Tensor(new Shape(4), 3)));
        Assert.That(ex!.Message, Does.Contain("[2, 3, 5]").And.Contain("[4, 6]"));
    }

    [Test]
    public void AddResidual_GradCheck_MatchesFiniteDifferences()
    {
        var a = TestData.Tensor(new Shape(2, 3, 4), 5);
        var b = TestData.Tensor(new Shape(2, 3, 4), 6);
        GradCheck.Check(t => Ops.AddResidual(t, a, b), new[] { a, b }, what: "AddResidual");
    }

    [Test]
    public void AddResidual_InAChain_MatchesFiniteDifferences()
    {
        // One input is a ReLU Linear's output (whose backward rewrites its gradient in place), the other is used twice
        // (x feeds the Linear and the residual); then a residual whose two inputs are the same tensor.
        var x = TestData.Tensor(new Shape(3, 5), 7);
        var w = TestData.Tensor(new Shape(5, 5), 8);
        GradCheck.Check(t =>
        {
            var h = Ops.Linear(t, x, w, null, Recsys.Kernels.Common.Activation.Relu);
            var y = Ops.AddResidual(t, h, x);
            return Ops.AddResidual(t, y, y);
        }, new[] { x, w }, what: "Linear+AddResidual chain");
    }

    [Test]
    public void AddResidual_ShapeMismatch_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Ops.AddResidual(new Tape(), TestData.Tensor(new Shape(2, 3), 1), TestData.Tensor(new Shape(3, 2), 2)));
        Assert.That(ex!.Message, Does.Contain("[2, 3]").And.Contain("[3, 2]"));
    }
}

public class LayerNormOpTests
{
    [Test]
    public void LayerNorm_GradCheck_MatchesFiniteDifferences()
    {
        var x = TestData.Tensor(new Shape(2, 3, 7), 1);
        var g = TestData.Parameter("g", new Shape(7), 2);
        var b = TestData.Parameter("b", new Shape(7), 3);
        GradCheck.Check(t => Ops.LayerNorm(t, x, g.Value, b.Value), new[] { x, g.Value, b.Value }, eps: 3e-3, what: "LayerNorm");
    }

    [Test]
    public void LayerNorm_WrongGammaShape_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Ops.LayerNorm(new Tape(), TestData.Tensor(new Shape(2, 7), 1), TestData.Tensor(new Shape(6), 2), TestData.Tensor(new Shape(7), 3)));
        Assert.That(ex!.Message, Does.Contain("[2, 7]").And.Contain("[6]"));
    }
}

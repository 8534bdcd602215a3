using System.Runtime.Intrinsics;
using NUnit.Framework;
using Recsys.Kernels.Common;

namespace Recsys.Tests.Kernels.Common;

[Category("Kernel")]
public class VectorMathTests
{
    [Test]
    public void ExpNonPositive_DenseSweepOfNonPositiveInputs_MatchesFloat64WithinFourUlp()
    {
        var lanes = new float[16];
        double worst = 0;
        for (int i = 0; i <= 200_000; i += 16)
        {
            for (int l = 0; l < 16; l++) lanes[l] = -87.0f * (i + l) / 200_000f; // 0 down to -87
            var e = VectorMath.ExpNonPositive(Vector512.Create(lanes));
            for (int l = 0; l < 16; l++)
            {
                double expected = Math.Exp(lanes[l]);
                worst = Math.Max(worst, Math.Abs(e[l] - expected) / expected);
            }
        }
        Assert.That(worst, Is.LessThan(4 * 1.2e-7), "relative error");
    }

    [Test]
    public void ExpNonPositive_BelowRangeAndMinusInfinity_GiveExactZero_ZeroGivesOne()
    {
        var x = Vector512.Create(float.NegativeInfinity, -1000f, -88f, -87.31f, 0f, -0f, -1e-30f, -1f,
            -2f, -10f, -20f, -50f, -80f, -87f, -0.5f, -3.75f);
        var e = VectorMath.ExpNonPositive(x);
        Assert.That(new[] { e[0], e[1], e[2], e[3] }, Is.All.EqualTo(0f));
        Assert.That(e[4], Is.EqualTo(1f));
        Assert.That(e[5], Is.EqualTo(1f));
        Assert.That(e[6], Is.EqualTo(1f));
        for (int l = 7; l < 16; l++)
            Assert.That(e[l], Is.EqualTo((float)Math.Exp(x[l])).Within(4 * 1.2e-7 * Math.Exp(x[l])), $"lane {l}: x = {x[l]}");
    }

    [Test]
    public void Sigmoid_WideRangeIncludingExtremes_MatchesFloat64()
    {
        var lanes = new float[16];
        double worst = 0;
        for (int i = 0; i <= 40_000; i += 16)
        {
            for (int l = 0; l < 16; l++) lanes[l] = -100f + 200f * (i + l) / 40_000f;
            var y = VectorMath.Sigmoid(Vector512.Create(lanes));
            for (int l = 0; l < 16; l++)
            {
                double expected = 1.0 / (1.0 + Math.Exp(-(double)lanes[l]));
                worst = Math.Max(worst, Math.Abs(y[l] - expected) / Math.Max(expected, 1e-30));
            }
        }
        Assert.That(worst, Is.LessThan(1e-6), "relative error");
        var edge = VectorMath.Sigmoid(Vector512.Create(float.NegativeInfinity, float.PositiveInfinity, 0f, -0f, 1000f, -1000f, 88f, -88f,
            1f, -1f, 2f, -2f, 5f, -5f, 20f, -20f));
        Assert.That(new[] { edge[0], edge[1], edge[2], edge[3], edge[4], edge[5] }, Is.EqualTo(new[] { 0f, 1f, 0.5f, 0.5f, 1f, 0f }));
    }
}

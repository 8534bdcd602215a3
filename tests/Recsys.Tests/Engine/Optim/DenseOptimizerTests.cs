using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Optim;
using Recsys.Kernels.Common;
using Recsys.Kernels.Optim;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Optim;

[Category("Kernel")]
public class DenseOptimizerTests
{
    // 70,001 is split across threads (see DenseOptimizerKernels.UpdateChunks); the gradient is zeroed the same way.
    private static readonly int[] Sizes = { 1, 7, 15, 16, 17, 33, 67, 1031, 70_001 };

    // float64 references of PyTorch's update rules.
    private static void RefAdam(double[] w, double[] g, double[] m, double[] v, double lr, double b1, double b2, double eps, double wd, bool decoupled, int t)
    {
        for (int i = 0; i < w.Length; i++)
        {
            double gi = g[i] + (decoupled ? 0 : wd * w[i]);
            if (decoupled) w[i] *= 1 - lr * wd;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            double denom = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(b2, t)) + eps;
            w[i] -= lr / (1 - Math.Pow(b1, t)) * m[i] / denom;
        }
    }

    private static (Parameter p, double[] w) MakeParam(int n, int seed)
    {
        var p = TestData.Parameter("p", new Shape(n), seed);
        return (p, p.Value.ToArray().Select(x => (double)x).ToArray());
    }

    private static double[] SetGrad(Parameter p, int seed)
    {
        var g = TestData.Floats(p.Value.Length, seed);
        g.CopyTo(p.Grad.Span);
        p.Touched = true;
        return g.Select(x => (double)x).ToArray();
    }

    [TestCaseSource(nameof(Sizes))]
    public void Adam_ThreeSteps_MatchesFloat64Reference(int n)
    {
        foreach (var decoupled in new[] { false, true })
        {
            var (p, w) = MakeParam(n, 1);
            var opt = new Adam(new[] { p }, 1e-2f, 0.9f, 0.999f, 1e-8f, weightDecay: 0.1f, decoupledWeightDecay: decoupled);
            var m = new double[n]; var v = new double[n];
            for (int t = 1; t <= 3; t++)
            {
                var g = SetGrad(p, 10 + t);
                opt.Step();
                RefAdam(w, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled, t);
            }
            TestData.AssertClose(p.Value.ReadOnlySpan, w, 1e-5, 1e-6, $"Adam n={n} decoupled={decoupled}");
            Assert.That(p.Grad.ToArray(), Is.All.EqualTo(0f), "gradient zeroed after the step");
        }
    }

    [Test]
    public void Kernels_SplitAcrossThreads_SameBitsAsOneThread([Values(1, 2, 3)] int threads)
    {
        const int n = 131_101; // several chunks, each a whole number of vectors but the last, and a scalar tail
        float[] Run(int maxThreads, int kernel)
        {
            using (KernelThreads.Use(maxThreads))
            {
                var w = TestData.Floats(n, 1); var g = TestData.Floats(n, 2);
                var s1 = TestData.Floats(n, 3).Select(Math.Abs).ToArray(); var s2 = TestData.Floats(n, 4).Select(Math.Abs).ToArray();
                switch (kernel)
                {
                    case 0: DenseOptimizerKernels.Sgd(w, g, s1, 0.1f, 0.9f, 0.01f, firstStep: false); break;
                    case 1: DenseOptimizerKernels.Sgd(w, g, default, 0.1f, 0f, 0.01f, firstStep: false); break;
                    case 2: DenseOptimizerKernels.Adam(w, g, s1, s2, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, decoupled: false, step: 3); break;
                    case 3: DenseOptimizerKernels.Adagrad(w, g, s1, 0.05f, 1e-10f, 0.01f); break;
                    default: DenseOptimizerKernels.ZeroGradient(g); return g;
                }
                return w.Concat(s1).Concat(s2).ToArray();
            }
        }
        for (int kernel = 0; kernel <= 4; kernel++)
            Assert.That(Run(threads, kernel), Is.EqualTo(Run(1, kernel)), $"kernel {kernel}, {threads} threads");
        Assert.That(Run(threads, 4), Is.All.EqualTo(0f));
    }

    [Test]
    public void SgdKernel_Momentum_VectorBodyAndScalarTail_SameBitsAsScalarFormula([Values(true, false)] bool firstStep)
    {
        const int n = 1037; // whole vectors and a tail
        var w = TestData.Floats(n, 1); var g = TestData.Floats(n, 2); var b = TestData.Floats(n, 3);
        var ew = (float[])w.Clone(); var eb = (float[])b.Clone();
        for (int i = 0; i < n; i++)
        {
            float gi = g[i] + 0.01f * ew[i];
            float bi = firstStep ? gi : 0.9f * eb[i] + gi;
            eb[i] = bi;
            ew[i] -= 0.1f * bi;
        }
        DenseOptimizerKernels.Sgd(w, g, b, 0.1f, 0.9f, 0.01f, firstStep);
        Assert.That(w, Is.EqualTo(ew));
        Assert.That(b, Is.EqualTo(eb));
    }

    [TestCaseSource(nameof(Sizes))]
    public void Sgd_MomentumAndWeightDecay_MatchesFloat64Reference(int n)
    {
        var (p, w) = MakeParam(n, 2);
        var opt = new Sgd(new[] { p }, 0.1f, momentum: 0.9f, weightDecay: 0.01f);
        var buf = new double[n];
        for (int t = 1; t <= 3; t++)
        {
            var g = SetGrad(p, 20 + t);
            opt.Step();
            for (int i = 0; i < n; i++)
            {
                double gi = g[i] + 0.01 * w[i];
                buf[i] = t == 1 ? gi : 0.9 * buf[i] + gi;
                w[i] -= 0.1 * buf[i];
            }
        }
        TestData.AssertClose(p.Value.ReadOnlySpan, w, 1e-5, 1e-6, $"SGD n={n}");
    }

    [TestCaseSource(nameof(Sizes))]
    public void Adagrad_ThreeSteps_MatchesFloat64Reference(int n)
    {
        var (p, w) = MakeParam(n, 3);
        var opt = new Adagrad(new[] { p }, 0.05f, 1e-10f, weightDecay: 0.01f);
        var s = new double[n];
        for (int t = 1; t <= 3; t++)
        {
            var g = SetGrad(p, 30 + t);
            opt.Step();
            for (int i = 0; i < n; i++)
            {
                double gi = g[i] + 0.01 * w[i];
                s[i] += gi * gi;
                w[i] -= 0.05 * gi / (Math.Sqrt(s[i]) + 1e-10);
            }
        }
        TestData.AssertClose(p.Value.ReadOnlySpan, w, 1e-5, 1e-6, $"Adagrad n={n}");
    }

    [Test]
    public void Step_UntouchedParameter_GetsNoUpdateNoDecayNoStateChange()
    {
        var used = TestData.Parameter("used", new Shape(5), 4);
        var unused = TestData.Parameter("unused", new Shape(5), 5);
        var before = unused.Value.ToArray();
        var opt = new Adam(new[] { used, unused }, 1e-2f, weightDecay: 0.5f, decoupledWeightDecay: true);
        SetGrad(used, 6);
        opt.Step();
        Assert.That(unused.Value.ToArray(), Is.EqualTo(before));
        Assert.That(opt.StepCount(1), Is.EqualTo(0));
        Assert.That(opt.StepCount(0), Is.EqualTo(1));
    }

    [Test]
    public void ClipByGlobalNorm_LargeGradients_ScaledToMaxNorm()
    {
        var a = TestData.Parameter("a", new Shape(10), 7);
        var b = TestData.Parameter("b", new Shape(3), 8);
        SetGrad(a, 9); SetGrad(b, 10);
        double norm = GradientClipping.ClipByGlobalNorm(new[] { a, b }, 0.5);
        double after = Math.Sqrt(a.Grad.ToArray().Concat(b.Grad.ToArray()).Sum(x => (double)x * x));
        Assert.That(norm, Is.GreaterThan(0.5));
        Assert.That(after, Is.EqualTo(0.5).Within(1e-4));
    }

    [Test]
    public void Optimizer_NegativeLearningRate_ThrowsWithValue()
    {
        var p = TestData.Parameter("p", new Shape(3), 1);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(new[] { p }, -1f));
        Assert.That(ex!.Message, Does.Contain("-1"));
    }
}

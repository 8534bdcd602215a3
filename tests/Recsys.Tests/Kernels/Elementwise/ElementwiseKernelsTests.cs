using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Elementwise;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Elementwise;

[Category("Kernel")]
public class ElementwiseKernelsTests
{
    private static IEnumerable<int> Sizes() => TestData.TailSizes();

    private static double[] Map(float[] x, Func<double, double> f) => x.Select(v => f(v)).ToArray();

    private static double[] Map(float[] x, float[] y, Func<double, double, double> f) => x.Select((v, i) => f(v, y[i])).ToArray();

    private static double[] Map(float[] x, float[] y, float[] z, Func<double, double, double, double> f) => x.Select((v, i) => f(v, y[i], z[i])).ToArray();

    [Test]
    public void Relu_TailSizes_MatchesReference([ValueSource(nameof(Sizes))] int n)
    {
        var x = TestData.Floats(n, n);
        var y = new float[n];
        ElementwiseKernels.Relu(x, y);
        TestData.AssertClose(y, Map(x, v => Math.Max(v, 0)), 0, 0, "Relu");
    }

    [Test]
    public void ReluBackward_TailSizes_AccumulatesWherePositive([ValueSource(nameof(Sizes))] int n)
    {
        var y = TestData.Floats(n, n);
        for (int i = 0; i < n; i++) y[i] = Math.Max(y[i], 0f);
        var dy = TestData.Floats(n, n + 1);
        var dx = TestData.Floats(n, n + 2);
        var expected = Map(y, dy, dx, (yv, d, x0) => x0 + (yv > 0 ? d : 0));
        ElementwiseKernels.ReluBackward(y, dy, dx);
        TestData.AssertClose(dx, expected, 1e-6, 1e-7, "ReluBackward");
    }

    [Test]
    public void Sigmoid_TailSizes_MatchesReference([ValueSource(nameof(Sizes))] int n)
    {
        var x = TestData.Floats(n, n, 0.05f, 20f);
        var y = new float[n];
        ElementwiseKernels.Sigmoid(x, y);
        TestData.AssertClose(y, Map(x, v => 1 / (1 + Math.Exp(-v))), 1e-5, 1e-7, "Sigmoid");
    }

    [Test]
    public void SigmoidBackward_TailSizes_MatchesReference([ValueSource(nameof(Sizes))] int n)
    {
        var y = TestData.Floats(n, n).Select(v => 1f / (1f + MathF.Exp(-v))).ToArray();
        var dy = TestData.Floats(n, n + 1);
        var dx = TestData.Floats(n, n + 2);
        var expected = Map(y, dy, dx, (yv, d, x0) => x0 + d * yv * (1 - yv));
        ElementwiseKernels.SigmoidBackward(y, dy, dx);
        TestData.AssertClose(dx, expected, 1e-5, 1e-6, "SigmoidBackward");
    }

    [Test]
    public void ActivationBackwardInPlace_EachActivation_MatchesReference(
        [Values(Activation.None, Activation.Relu, Activation.Sigmoid)] Activation act, [Values(0, 1, 15, 16, 17, 67, 1031, 70_001)] int n) // 70,001: split over the kernel threads
    {
        var y = TestData.Floats(n, n);
        if (act == Activation.Relu) for (int i = 0; i < n; i++) y[i] = Math.Max(y[i], 0f);
        if (act == Activation.Sigmoid) for (int i = 0; i < n; i++) y[i] = Math.Abs(y[i]) * 0.99f;
        var d = TestData.Floats(n, n + 1);
        var expected = Map(y, d, (yv, dv) => act switch
        {
            Activation.Relu => yv > 0 ? dv : 0,
            Activation.Sigmoid => dv * yv * (1 - yv),
            _ => dv,
        });
        ElementwiseKernels.ActivationBackwardInPlace(act, y, d);
        TestData.AssertClose(d, expected, 1e-6, 1e-7, $"ActivationBackward {act}");
    }

    [Test]
    public void Binary_TailSizes_MatchReference([ValueSource(nameof(Sizes))] int n)
    {
        var x = TestData.Floats(n, n);
        var y = TestData.Floats(n, n + 1);
        var z = TestData.Floats(n, n + 2);
        var z0 = (float[])z.Clone();
        var outp = new float[n];

        ElementwiseKernels.Add(x, y, outp);
        TestData.AssertClose(outp, Map(x, y, (a, b) => a + b), 1e-6, 1e-7, "Add");
        ElementwiseKernels.Mul(x, y, outp);
        TestData.AssertClose(outp, Map(x, y, (a, b) => a * b), 1e-6, 1e-7, "Mul");
        ElementwiseKernels.MulAccumulate(x, y, z);
        TestData.AssertClose(z, Map(x, y, z0, (a, b, c) => c + a * b), 1e-6, 1e-7, "MulAccumulate");
        z0.CopyTo(z, 0);
        ElementwiseKernels.AddInPlace(x, z);
        TestData.AssertClose(z, Map(x, z0, (a, c) => c + a), 1e-6, 1e-7, "AddInPlace");
        z0.CopyTo(z, 0);
        ElementwiseKernels.Axpy(-0.75f, x, z);
        TestData.AssertClose(z, Map(x, z0, (a, c) => c - 0.75 * a), 1e-6, 1e-7, "Axpy");
        ElementwiseKernels.Scale(2.5f, x, outp);
        TestData.AssertClose(outp, Map(x, a => 2.5 * a), 1e-6, 1e-7, "Scale");
    }

    [Test]
    public void Streaming_LongSpans_SplitOverThreads_ExactAndThreadCountIndependent([Values(1, 2)] int threads)
    {
        // Past the parallel threshold, with a length that leaves a ragged last range.
        const int n = (1 << 17) + 37;
        var x = TestData.Floats(n, 1);
        var y = TestData.Floats(n, 2);
        using (KernelThreads.Use(threads))
        {
            var z = new float[n];
            ElementwiseKernels.Add(x, y, z);
            for (int i = 0; i < n; i++) Assert.That(z[i], Is.EqualTo(x[i] + y[i]), $"Add at {i}");
            var c = new float[n];
            ElementwiseKernels.Copy(x, c);
            Assert.That(c, Is.EqualTo(x), "Copy");
            ElementwiseKernels.AddInPlace(y, c);
            Assert.That(c, Is.EqualTo(z), "AddInPlace");
        }
    }

    [Test]
    public void Copy_LengthMismatch_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => ElementwiseKernels.Copy(new float[3], new float[4]));
        Assert.That(ex!.Message, Does.Contain("3").And.Contain("4"));
    }

    [Test]
    public void Add_LengthMismatch_ThrowsNamingLengths()
    {
        var ex = Assert.Throws<ArgumentException>(() => ElementwiseKernels.Add(new float[3], new float[4], new float[3]));
        Assert.That(ex!.Message, Does.Contain("3").And.Contain("4"));
    }
}

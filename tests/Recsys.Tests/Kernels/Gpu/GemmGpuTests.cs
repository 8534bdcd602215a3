using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Gpu;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gpu;

public abstract partial class GpuKernelTests
{
    private static IEnumerable<TestCaseData> GemmShapes()
    {
        foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 17, 33), (17, 3, 1), (33, 33, 17), (1, 65, 3), (65, 17, 65) })
            foreach (var layout in new[] { "NN", "TN", "NT" })
                yield return new TestCaseData(layout, m, n, k).SetName($"MatMul{layout}_m{m}_n{n}_k{k}_MatchesFloat64Reference");
    }

    private static double[] RefGemm(float[] a, float[] b, float[]? c0, int m, int n, int k, bool transA, bool transB)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = c0 is null ? 0 : c0[i * n + j];
                for (int q = 0; q < k; q++)
                    s += (double)(transA ? a[q * m + i] : a[i * k + q]) * (transB ? b[j * k + q] : b[q * n + j]);
                c[i * n + j] = s;
            }
        return c;
    }

    [TestCaseSource(nameof(GemmShapes))]
    public void MatMul_Layouts_MatchesFloat64Reference(string layout, int m, int n, int k)
    {
        bool ta = layout == "TN", tb = layout == "NT";
        var a = TestData.Floats(m * k, 1);
        var b = TestData.Floats(k * n, 2);
        var c0 = TestData.Floats(m * n, 3);
        foreach (bool accumulate in new[] { false, true })
        {
            var dc = Upload(c0);
            var da = Upload(a);
            var db = Upload(b);
            switch (layout)
            {
                case "NN": GemmGpuKernels.MatMul(Device, da, db, dc, m, n, k, accumulate); break;
                case "TN": GemmGpuKernels.MatMulTN(Device, da, db, dc, m, n, k, accumulate); break;
                default: GemmGpuKernels.MatMulNT(Device, da, db, dc, m, n, k, accumulate); break;
            }
            var expected = RefGemm(a, b, accumulate ? c0 : null, m, n, k, ta, tb);
            TestData.AssertClose(Download(dc), expected, Rtol, Atol * k, $"{layout} accumulate={accumulate}");

            var dn = Upload(c0);
            GemmGpuKernels.MatMulNaive(Device, da, db, dn, m, n, k, ta, tb, accumulate);
            TestData.AssertClose(Download(dn), expected, Rtol, Atol * k, $"naive {layout} accumulate={accumulate}");
        }
    }

    [TestCase(Activation.None)]
    [TestCase(Activation.Relu)]
    [TestCase(Activation.Sigmoid)]
    public void LinearForward_BiasAndActivation_MatchesFloat64Reference(Activation act)
    {
        int m = 5, n = 17, k = 33;
        var x = TestData.Floats(m * k, 4);
        var w = TestData.Floats(n * k, 5);
        var bias = TestData.Floats(n, 6);
        var y = Zeros(m * n);
        GemmGpuKernels.LinearForward(Device, Upload(x), Upload(w), Upload(bias), y, m, n, k, act);
        var e = RefGemm(x, w, null, m, n, k, false, true);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double v = e[i * n + j] + bias[j];
                e[i * n + j] = act switch { Activation.Relu => Math.Max(v, 0), Activation.Sigmoid => 1 / (1 + Math.Exp(-v)), _ => v };
            }
        TestData.AssertClose(Download(y), e, Rtol, Atol * k, $"linear {act}");
    }

    [Test]
    public void LinearForward_ShortBias_ThrowsNamingBias()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            GemmGpuKernels.LinearForward(Device, Zeros(6), Zeros(6), Zeros(2), Zeros(6), 2, 3, 2, Activation.None));
        Assert.That(ex!.Message, Does.Contain("bias").And.Contain("3"));
    }

    [Test]
    public void Kernels_LoadedTwice_ReturnsCachedSetWithoutRecompiling()
    {
        var first = Device.Kernels<GemmGpuKernels.KernelSet>();
        int loads = Device.KernelSetLoads;
        var sw = Stopwatch.StartNew();
        var second = Device.Kernels<GemmGpuKernels.KernelSet>();
        sw.Stop();
        Assert.That(second, Is.SameAs(first));
        Assert.That(second.TiledLauncher, Is.SameAs(first.TiledLauncher));
        Assert.That(Device.KernelSetLoads, Is.EqualTo(loads));
        Assert.That(sw.ElapsedMilliseconds, Is.LessThan(50));
    }

    [Test]
    public void BufferPool_RentReturnRent_ReusesBuffer()
    {
        var r1 = Device.Pool.Rent<float>(300);
        var buf = r1.Buffer;
        r1.Dispose();
        int allocations = Device.Pool.Allocations;
        var r2 = Device.Pool.Rent<float>(400); // same size class (512)
        Assert.That(r2.Buffer, Is.SameAs(buf));
        Assert.That(r2.View.Length, Is.EqualTo(400));
        Assert.That(Device.Pool.Allocations, Is.EqualTo(allocations));
        r2.Dispose();
    }
}

public abstract partial class GpuKernelTests
{
    [Test]
    public void MatMul_LargeTileGroupsOnCpuAccelerator_MatchesFloat64Reference()
    {
        // A CPU accelerator with 256-thread groups takes the 32×32-tile path CUDA uses.
        using var big = GpuDevice.Create(GpuBackend.IlgpuCpu, new GpuDeviceOptions { CpuThreadsPerWarp = 32, CpuWarpsPerMultiprocessor = 8 });
        int m = 33, n = 35, k = 19;
        var a = TestData.Floats(k * m, 7);
        var b = TestData.Floats(k * n, 8);
        using var da = big.Accelerator.Allocate1D(a);
        using var db = big.Accelerator.Allocate1D(b);
        using var dc = big.Accelerator.Allocate1D<float>(m * n);
        GemmGpuKernels.MatMulTN(big, da.View, db.View, dc.View, m, n, k, accumulate: false);
        big.Synchronize();
        Assert.That(big.Kernels<GemmGpuKernels.KernelSet>().Tile, Is.EqualTo(32));
        TestData.AssertClose(dc.GetAsArray1D(), RefGemm(a, b, null, m, n, k, true, false), Rtol, Atol * k, "TN tile 32");
    }
}

public abstract partial class GpuKernelTests
{
    [Test]
    public void Create_CudaWithoutDevice_ThrowsInvalidOperationNamingCause()
    {
        if (GpuDevice.IsCudaAvailable(out _)) Assert.Ignore("a CUDA device exists here");
        var ex = Assert.Throws<InvalidOperationException>(() => GpuDevice.Create(GpuBackend.Cuda).Dispose());
        Assert.That(ex!.Message, Does.StartWith("no CUDA device found: "));
        TestContext.Out.WriteLine(ex.Message);
    }
}

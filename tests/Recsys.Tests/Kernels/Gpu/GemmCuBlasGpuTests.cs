using NUnit.Framework;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Gpu;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gpu;

public abstract partial class GpuKernelTests
{
    [Test]
    public void CuBlasGemm_EveryLayout_MatchesFloat64ReferenceOrSaysWhyUnavailable(
        [Values(GemmLayout.NN, GemmLayout.TN, GemmLayout.NT)] GemmLayout layout)
    {
        if (!GemmCuBlasKernels.IsAvailable(Device, out var reason))
        {
            // Only a CUDA device may lack cuBLAS for a reason other than not being CUDA.
            if (Device.Backend == GpuBackend.IlgpuCpu)
            {
                Assert.That(reason, Does.Contain("needs a CUDA device"));
                Assert.Throws<InvalidOperationException>(() =>
                    GemmCuBlasKernels.Gemm(Device, layout, Zeros(4), Zeros(4), Zeros(4), 2, 2, 2, accumulate: false));
                return;
            }
            Assert.Ignore($"cuBLAS unavailable on this CUDA device: {reason}");
        }
        foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 17, 33), (65, 17, 65), (257, 129, 63) })
        {
            bool ta = layout == GemmLayout.TN, tb = layout == GemmLayout.NT;
            var a = TestData.Floats(m * k, 1);
            var b = TestData.Floats(k * n, 2);
            var c0 = TestData.Floats(m * n, 3);
            var c = Upload(c0);
            GemmCuBlasKernels.Gemm(Device, layout, Upload(a), Upload(b), c, m, n, k, accumulate: true);
            TestData.AssertClose(Download(c), RefGemm(a, b, c0, m, n, k, ta, tb), Rtol, Atol, $"cuBLAS {layout} {m}x{n}x{k}");
        }
    }
}

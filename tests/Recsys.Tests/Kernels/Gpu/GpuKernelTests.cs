using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using Recsys.Kernels.Gpu;

namespace Recsys.Tests.Kernels.Gpu;

/// <summary>
/// Every GPU kernel against a float64 scalar reference, written once and run per backend: <see cref="IlgpuCpu"/>
/// (ILGPU's CPU accelerator, runs everywhere) and <see cref="Cuda"/> (ignored where no CUDA device exists).
/// Shapes stay tiny: the CPU accelerator runs one OS thread per simulated GPU thread.
/// </summary>
[Category("Gpu")]
public abstract partial class GpuKernelTests
{
    private readonly GpuBackend _backend;
    private readonly List<MemoryBuffer> _buffers = new();

    protected GpuKernelTests(GpuBackend backend) => _backend = backend;

    protected GpuDevice Device { get; private set; } = null!;

    [OneTimeSetUp]
    public void CreateDevice()
    {
        if (_backend == GpuBackend.Cuda && !GpuDevice.IsCudaAvailable(out var reason))
            Assert.Ignore($"no CUDA device: {reason}");
        Device = GpuDevice.Create(_backend);
    }

    [OneTimeTearDown]
    public void DisposeDevice() => Device?.Dispose();

    [TearDown]
    public void FreeBuffers()
    {
        Device?.Synchronize();
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }

    protected ArrayView<float> Upload(float[] data)
    {
        var buf = Device.Accelerator.Allocate1D(data.Length == 0 ? new float[1] : data);
        _buffers.Add(buf);
        return buf.View.SubView(0, data.Length);
    }

    protected ArrayView<int> Upload(int[] data)
    {
        var buf = Device.Accelerator.Allocate1D(data.Length == 0 ? new int[1] : data);
        _buffers.Add(buf);
        return buf.View.SubView(0, data.Length);
    }

    protected ArrayView<float> Zeros(int n) => Upload(new float[n]);

    protected float[] Download(ArrayView<float> view)
    {
        Device.Synchronize();
        var host = new float[view.Length];
        view.CopyToCPU(host);
        return host;
    }

    protected int[] Download(ArrayView<int> view)
    {
        Device.Synchronize();
        var host = new int[view.Length];
        view.CopyToCPU(host);
        return host;
    }

    protected const double Rtol = 1e-4;
    protected const double Atol = 1e-5;
}

[TestFixture]
public sealed class IlgpuCpu : GpuKernelTests
{
    public IlgpuCpu() : base(GpuBackend.IlgpuCpu) { }
}

[TestFixture]
public sealed class Cuda : GpuKernelTests
{
    public Cuda() : base(GpuBackend.Cuda) { }
}

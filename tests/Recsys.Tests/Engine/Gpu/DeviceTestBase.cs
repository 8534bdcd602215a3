using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Kernels.Gpu;

namespace Recsys.Tests.Engine.Gpu;

/// <summary>
/// Engine tests run once per GPU backend: ILGPU's CPU accelerator (everywhere) and CUDA (ignored with the reason when no
/// CUDA device exists). One <see cref="Device"/> per fixture: kernels load once per accelerator.
/// </summary>
[Category("Gpu")]
public abstract class DeviceTestBase
{
    private readonly GpuBackend _backend;

    protected DeviceTestBase(GpuBackend backend) => _backend = backend;

    protected Device Gpu { get; private set; } = null!;

    [OneTimeSetUp]
    public void OpenDevice()
    {
        if (_backend == GpuBackend.Cuda && !GpuDevice.IsCudaAvailable(out var reason))
            Assert.Ignore($"no CUDA device: {reason}");
        Gpu = Device.Parse(_backend == GpuBackend.Cuda ? "gpu" : "ilgpu-cpu");
    }

    [OneTimeTearDown]
    public void CloseDevice() => Gpu?.Dispose();

    /// <summary>A tensor on <paramref name="device"/> holding <paramref name="data"/>.</summary>
    protected static Tensor On(Device device, Shape shape, float[] data, bool requiresGrad = false)
    {
        var t = new Tensor(shape, device, requiresGrad);
        t.CopyFrom(data);
        return t;
    }
}

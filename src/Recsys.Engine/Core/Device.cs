using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Gpu;

namespace Recsys.Engine.Core;

/// <summary>Where tensors live and kernels run.</summary>
public enum DeviceKind
{
    /// <summary>The host CPU with SIMD kernels.</summary>
    Cpu,

    /// <summary>An ILGPU accelerator running the GPU kernels: CUDA, or ILGPU's CPU accelerator (same kernels, for machines without a GPU).</summary>
    Gpu,
}

/// <summary>
/// A compute device. <see cref="Cpu"/> runs the SIMD kernels of Recsys.Kernels on host arrays; a GPU device owns one
/// <see cref="GpuDevice"/> (ILGPU context, accelerator, kernels loaded once and cached) plus the device memory of the
/// parameters, embedding tables and optimizer state moved onto it, all released by <see cref="Dispose"/>. Tensors on a
/// GPU device are slices of device buffers; their host accessors throw.
/// </summary>
public sealed class Device : IDisposable
{
    /// <summary>The names <see cref="Parse"/> accepts.</summary>
    public const string Names = "cpu, gpu, ilgpu-cpu";

    public static Device Cpu { get; } = new(DeviceKind.Cpu, "cpu", null);

    private readonly GpuDevice? _gpu;
    private readonly List<MemoryBuffer> _owned = new();
    private bool _disposed;

    public DeviceKind Kind { get; }
    public string Name { get; }

    /// <summary>True for a GPU device (CUDA or ILGPU's CPU accelerator).</summary>
    public bool IsGpu => _gpu is not null;

    private Device(DeviceKind kind, string name, GpuDevice? gpu)
    {
        Kind = kind;
        Name = name;
        _gpu = gpu;
    }

    /// <summary>The GPU device; throws on the CPU device.</summary>
    public GpuDevice Gpu
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _gpu ?? throw new InvalidOperationException($"Device '{Name}' is not a GPU device: it has no accelerator.");
        }
    }

    /// <summary>
    /// Parses a device name as given on the command line: <c>cpu</c> (the shared <see cref="Cpu"/>), <c>gpu</c> (the first
    /// CUDA device; fails with <see cref="InvalidOperationException"/> when there is none) or <c>ilgpu-cpu</c> (the GPU
    /// kernels on ILGPU's CPU accelerator). A GPU device is new and owned by the caller: dispose it.
    /// </summary>
    public static Device Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        switch (name.Trim().ToLowerInvariant())
        {
            case "cpu":
                return Cpu;
            case "gpu":
            case "cuda":
                if (!GpuDevice.IsCudaAvailable(out var reason))
                    throw new InvalidOperationException($"device 'gpu': no CUDA device found ({reason}); use --device cpu, or --device ilgpu-cpu to run the GPU kernels on the CPU.");
                return new Device(DeviceKind.Gpu, "gpu", GpuDevice.Create(GpuBackend.Cuda));
            case "ilgpu-cpu":
                return new Device(DeviceKind.Gpu, "ilgpu-cpu", GpuDevice.Create(GpuBackend.IlgpuCpu));
            default:
                throw new ArgumentException($"Unknown device '{name}': expected one of: {Names}.");
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is a known device name (creates nothing).</summary>
    public static void ValidateName(string name)
    {
        if (name is null || name.Trim().ToLowerInvariant() is not ("cpu" or "gpu" or "cuda" or "ilgpu-cpu"))
            throw new ArgumentException($"Unknown device '{name}': expected one of: {Names}.");
    }

    /// <summary>
    /// A zeroed device buffer of <paramref name="length"/> elements that lives as long as this device (parameters, tables,
    /// optimizer state). Not for per-step temporaries: those come from a <see cref="TensorArena"/>.
    /// </summary>
    internal ArrayView<T> AllocatePersistent<T>(long length) where T : unmanaged
    {
        var gpu = Gpu;
        var buffer = gpu.Accelerator.Allocate1D<T>(Math.Max(1, length));
        buffer.View.MemSetToZero(gpu.Stream);
        _owned.Add(buffer);
        return buffer.View.SubView(0, length);
    }

    /// <summary>Device bytes held by persistent allocations (parameters, tables, optimizer state).</summary>
    public long PersistentBytes => _owned.Sum(b => b.LengthInBytes);

    /// <summary>Blocks until the device has finished all launched work (no-op on the CPU).</summary>
    public void Synchronize() => _gpu?.Synchronize();

    /// <summary>Releases the accelerator and every buffer allocated on it. The CPU device ignores it.</summary>
    public void Dispose()
    {
        if (_gpu is null || _disposed) return;
        _disposed = true;
        _gpu.Synchronize();
        foreach (var b in _owned) b.Dispose();
        _owned.Clear();
        _gpu.Dispose();
    }

    public override string ToString() => Name;
}

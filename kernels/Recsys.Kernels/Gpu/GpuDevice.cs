using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Recsys.Kernels.Gpu;

/// <summary>Options for <see cref="GpuDevice.Create(GpuBackend, GpuDeviceOptions?)"/>.</summary>
public sealed record GpuDeviceOptions
{
    /// <summary>Index among the CUDA devices ILGPU finds (default 0: the first).</summary>
    public int CudaDeviceIndex { get; init; }

    /// <summary>
    /// Forces the PTX instruction-set version ILGPU emits (ILGPU's <c>CudaDeviceOverride.InstructionSet</c>), e.g.
    /// <c>CudaInstructionSet.ISA_78</c>, for a driver that refuses the one ILGPU picks. ILGPU 1.5.3 exposes no override of the
    /// target architecture (sm_XX): it always uses the device's own compute capability. Null keeps ILGPU's choice.
    /// </summary>
    public CudaInstructionSet? PtxInstructionSet { get; init; }

    /// <summary>Threads per simulated warp of the CPU accelerator (default 4).</summary>
    public int CpuThreadsPerWarp { get; init; } = 4;

    /// <summary>Warps per simulated multiprocessor of the CPU accelerator (default 4: groups of up to 16 threads).</summary>
    public int CpuWarpsPerMultiprocessor { get; init; } = 4;
}

/// <summary>A set of kernel delegates loaded once per accelerator (one per kernel family).</summary>
public interface IGpuKernelSet<TSelf> where TSelf : class
{
    static abstract TSelf Load(GpuDevice device);
}

/// <summary>
/// One ILGPU context and accelerator, the kernels loaded on it (each family once, on first use) and a pool of
/// device buffers. Host methods of the kernel families launch on <see cref="Stream"/> (the default stream) and
/// return without waiting unless they must read a result back (error flags, sizes). Not thread-safe for launches;
/// kernel loading is.
/// </summary>
/// <remarks>
/// ILGPU 1.5.1 was reported to crash on Hopper (H100, sm_90; m4rs-mt/ILGPU#1540) while 1.5.3 runs there. ILGPU derives
/// the PTX target architecture from the device and offers no public override of it in 1.5.3; what it does offer is an
/// override of the PTX ISA version (<see cref="GpuDeviceOptions.PtxInstructionSet"/>), which is the knob to turn when a
/// driver rejects the emitted PTX.
/// </remarks>
public sealed class GpuDevice : IDisposable
{
    private readonly ConcurrentDictionary<Type, object> _kernelSets = new();
    private MemoryBuffer1D<int, Stride1D.Dense>? _errorFlag;
    private bool _disposed;

    private GpuDevice(GpuBackend backend, Context context, Accelerator accelerator)
    {
        Backend = backend;
        Context = context;
        Accelerator = accelerator;
        Pool = new GpuBufferPool(accelerator);
        int maxGroup = Math.Min(256, accelerator.MaxNumThreadsPerGroup);
        int pow2 = 1;
        while (pow2 * 2 <= maxGroup) pow2 *= 2;
        ReductionGroupSize = pow2;
    }

    public GpuBackend Backend { get; }

    public Context Context { get; }

    public Accelerator Accelerator { get; }

    /// <summary>The stream every host method launches on.</summary>
    public AcceleratorStream Stream => Accelerator.DefaultStream;

    /// <summary>Pooled device buffers for temporaries of a step.</summary>
    public GpuBufferPool Pool { get; }

    /// <summary>Threads per group of the row-reduction kernels: the largest power of two ≤ min(256, max group size).</summary>
    public int ReductionGroupSize { get; }

    /// <summary>Number of times a kernel set has been loaded (compiled) on this device; stays put once all families are warm.</summary>
    public int KernelSetLoads { get; private set; }

    public static GpuDevice Create(GpuBackend backend, GpuDeviceOptions? options = null)
    {
        options ??= new GpuDeviceOptions();
        return backend switch
        {
            GpuBackend.Cuda => CreateCuda(options),
            GpuBackend.IlgpuCpu => CreateCpu(options),
            _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, $"GpuDevice.Create: unknown backend {backend}."),
        };
    }

    /// <summary>True when ILGPU finds at least one CUDA device; <paramref name="reason"/> says why not otherwise.</summary>
    public static bool IsCudaAvailable(out string reason)
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            int count = context.GetCudaDevices().Count;
            reason = count > 0 ? $"{count} CUDA device(s)" : "ILGPU enumerated zero CUDA devices (no GPU, or no CUDA driver library)";
            return count > 0;
        }
        catch (Exception ex)
        {
            reason = $"CUDA driver could not be loaded ({ex.GetType().Name}: {ex.Message})";
            return false;
        }
    }

    private static GpuDevice CreateCuda(GpuDeviceOptions options)
    {
        Context? context = null;
        try
        {
            context = Context.Create(b =>
            {
                b.Cuda(o =>
                {
                    if (options.PtxInstructionSet is { } isa) o.InstructionSet = isa;
                }).EnableAlgorithms();
            });
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
                throw new InvalidOperationException("no CUDA device found: ILGPU enumerated zero CUDA devices (no GPU, or no CUDA driver library).");
            if (options.CudaDeviceIndex < 0 || options.CudaDeviceIndex >= devices.Count)
                throw new InvalidOperationException(
                    $"no CUDA device found: index {options.CudaDeviceIndex} requested, {devices.Count} device(s) present.");
            var accelerator = devices[options.CudaDeviceIndex].CreateAccelerator(context);
            return new GpuDevice(GpuBackend.Cuda, context, accelerator);
        }
        catch (InvalidOperationException)
        {
            context?.Dispose();
            throw;
        }
        catch (Exception ex)
        {
            context?.Dispose();
            throw new InvalidOperationException($"no CUDA device found: {ex.GetType().Name}: {ex.Message}", ex);
        }
    }

    private static GpuDevice CreateCpu(GpuDeviceOptions options)
    {
        var cpu = new CPUDevice(options.CpuThreadsPerWarp, options.CpuWarpsPerMultiprocessor, numMultiprocessors: 1);
        var context = Context.Create(b => b.CPU(cpu).EnableAlgorithms());
        try
        {
            var accelerator = context.GetCPUDevice(0).CreateCPUAccelerator(context, CPUAcceleratorMode.Parallel);
            return new GpuDevice(GpuBackend.IlgpuCpu, context, accelerator);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>The kernel set <typeparamref name="T"/> of this device, loaded (compiled) on first use only.</summary>
    public T Kernels<T>() where T : class, IGpuKernelSet<T>
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_kernelSets.TryGetValue(typeof(T), out var set)) return (T)set;
        lock (_kernelSets)
        {
            if (_kernelSets.TryGetValue(typeof(T), out set)) return (T)set;
            var loaded = T.Load(this);
            _kernelSets[typeof(T)] = loaded;
            KernelSetLoads++;
            return loaded;
        }
    }

    /// <summary>
    /// The device-side error flag: int[4] = {raised, code-specific a, b, c}. Kernels raise it with
    /// <c>Atomic.CompareExchange(ref flag[0], 0, 1)</c> (the first raiser writes the details); host methods clear it
    /// before a launch and read it after.
    /// </summary>
    internal ArrayView<int> ErrorFlag => (_errorFlag ??= Accelerator.Allocate1D<int>(4)).View;

    internal void ClearErrorFlag() => ErrorFlag.MemSetToZero(Stream);

    /// <summary>Waits for the stream and returns the error flag's four ints.</summary>
    internal int[] ReadErrorFlag()
    {
        Stream.Synchronize();
        var host = new int[4];
        ErrorFlag.CopyToCPU(Stream, host);
        Stream.Synchronize();
        return host;
    }

    /// <summary>Blocks until every launched kernel has finished.</summary>
    public void Synchronize() => Stream.Synchronize();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Accelerator.Synchronize();
        foreach (var set in _kernelSets.Values) (set as IDisposable)?.Dispose(); // e.g. a cuBLAS handle
        _kernelSets.Clear();
        Pool.Dispose();
        _errorFlag?.Dispose();
        Accelerator.Dispose();
        Context.Dispose();
    }

    public override string ToString() => $"{Backend}: {Accelerator.Name}";
}

using ILGPU;
using ILGPU.Runtime;

namespace Recsys.Kernels.Gpu;

/// <summary>
/// Device buffers recycled by size class (powers of two, at least 256 elements), so a training step does not allocate
/// device memory per op. <see cref="Rent{T}"/> hands out a buffer whose <see cref="GpuRental{T}.View"/> has exactly the
/// requested length and whose contents are undefined; disposing the rental returns the buffer. Not thread-safe.
/// </summary>
public sealed class GpuBufferPool : IDisposable
{
    private const int MinClassLog2 = 8;
    private readonly Accelerator _accelerator;
    private readonly Dictionary<(Type, int), Stack<MemoryBuffer>> _free = new();
    private readonly List<MemoryBuffer> _all = new();
    private bool _disposed;

    internal GpuBufferPool(Accelerator accelerator) => _accelerator = accelerator;

    /// <summary>Device buffers created so far (free and rented); stops growing once a step's working set is pooled.</summary>
    public int Allocations => _all.Count;

    /// <summary>Total bytes of device memory held by the pool.</summary>
    public long BytesHeld { get; private set; }

    public GpuRental<T> Rent<T>(long length) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, $"GpuBufferPool.Rent: length must be >= 0, got {length}.");
        int cls = SizeClass(length);
        var key = (typeof(T), cls);
        if (_free.TryGetValue(key, out var stack) && stack.Count > 0)
            return new GpuRental<T>(this, (MemoryBuffer1D<T, Stride1D.Dense>)stack.Pop(), length, cls);
        var buffer = _accelerator.Allocate1D<T>(1L << cls);
        _all.Add(buffer);
        BytesHeld += buffer.LengthInBytes;
        return new GpuRental<T>(this, buffer, length, cls);
    }

    internal void Return<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, int cls) where T : unmanaged
    {
        if (_disposed) return;
        var key = (typeof(T), cls);
        if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<MemoryBuffer>();
        stack.Push(buffer);
    }

    private static int SizeClass(long length)
    {
        int cls = MinClassLog2;
        while ((1L << cls) < length) cls++;
        return cls;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var b in _all) b.Dispose();
        _all.Clear();
        _free.Clear();
        BytesHeld = 0;
    }
}

/// <summary>A rented device buffer; dispose it to give it back to its pool.</summary>
public readonly struct GpuRental<T> : IDisposable where T : unmanaged
{
    private readonly GpuBufferPool _pool;
    private readonly int _sizeClass;

    internal GpuRental(GpuBufferPool pool, MemoryBuffer1D<T, Stride1D.Dense> buffer, long length, int sizeClass)
    {
        _pool = pool;
        Buffer = buffer;
        Length = length;
        _sizeClass = sizeClass;
    }

    /// <summary>The underlying buffer (its capacity is the size class, at least <see cref="Length"/>).</summary>
    public MemoryBuffer1D<T, Stride1D.Dense> Buffer { get; }

    public long Length { get; }

    /// <summary>The first <see cref="Length"/> elements.</summary>
    public ArrayView<T> View => Buffer.View.SubView(0, Length);

    public void Dispose() => _pool?.Return(Buffer, _sizeClass);
}

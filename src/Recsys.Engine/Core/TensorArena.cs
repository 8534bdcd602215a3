using ILGPU;
using Recsys.Kernels.Common;
namespace Recsys.Engine.Core;

/// <summary>
/// Per-step bump allocator for tensors. <see cref="Reset"/> recycles every tensor and its storage at
/// once instead of leaving them to the GC. When a step needs more than the current block, an extra
/// block is taken; at the next reset the blocks are merged into one block of the total size, so after
/// the first few steps training allocates nothing here.
/// <para>
/// On a GPU device (<see cref="TensorArena(Device, int)"/>) tensors are bump-allocated out of large device slabs
/// instead: a step that outgrows them adds a slab (never a per-op device allocation), and <see cref="Reset"/> rewinds to
/// the first slab, so steady-state steps allocate no device memory. Slabs belong to the device and are freed with it.
/// </para>
/// </summary>
public sealed class TensorArena
{
    private const int Alignment = 16; // floats: 64 bytes, one cache line, one Vector512
    private float[] _block;
    private int _base; // index of the block's first float on a 64-byte boundary: every tensor starts on one
    private int _used;
    private readonly List<float[]> _overflow = new();
    private long _overflowTotal;
    private readonly List<Tensor> _tensors = new();
    private int _tensorsUsed;

    private readonly Device? _device;
    private readonly DeviceSlabs<float>? _floatSlabs;
    private readonly DeviceSlabs<int>? _intSlabs;

    public TensorArena(int initialFloats = 1 << 16)
    {
        _block = NewBlock(Math.Max(initialFloats, Alignment), out _base);
    }

    /// <summary>
    /// A pinned block whose data from <paramref name="start"/> on begins on a 64-byte boundary. Unaligned tensors made
    /// every Vector512 load and store of an activation straddle two cache lines (a managed array's data is only 8- or
    /// 16-byte aligned).
    /// </summary>
    private static float[] NewBlock(int floats, out int start) => LargeBuffers.AlignedFloats(floats, out start, pinSmall: true);

    /// <summary>An arena on <paramref name="device"/>: host blocks for the CPU device, device slabs for a GPU device.</summary>
    public TensorArena(Device device, int initialFloats = 1 << 16)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!device.IsGpu)
        {
            _block = NewBlock(Math.Max(initialFloats, Alignment), out _base);
            return;
        }
        _block = Array.Empty<float>();
        _device = device;
        _floatSlabs = new DeviceSlabs<float>(device, Math.Max(initialFloats, Alignment));
        _intSlabs = new DeviceSlabs<int>(device, Math.Max(initialFloats / 4, Alignment));
    }

    /// <summary>The device the arena's tensors live on.</summary>
    public Device Device => _device ?? Device.Cpu;

    /// <summary>Device slabs taken so far (0 on the host); stops growing once a step's working set fits.</summary>
    public int DeviceSlabCount => (_floatSlabs?.Count ?? 0) + (_intSlabs?.Count ?? 0);

    /// <summary>Floats handed out since the last reset.</summary>
    public long FloatsInUse => _used + _overflowTotal;

    /// <summary>Capacity of the main block, in floats.</summary>
    public long Capacity => _block.Length - _base;

    /// <summary>A tensor of <paramref name="shape"/> whose contents are undefined (the caller overwrites all of it).</summary>
    public Tensor Allocate(Shape shape)
    {
        if (_device is not null)
        {
            var dt = NextTensor();
            dt.RebindDevice(_device, _floatSlabs!.Take(shape.Size), shape);
            return dt;
        }
        int size = shape.Size;
        int padded = (size + Alignment - 1) / Alignment * Alignment;
        float[] buffer;
        int offset;
        if ((long)_base + _used + padded <= _block.Length)
        {
            buffer = _block;
            offset = _base + _used;
            _used += padded;
        }
        else
        {
            buffer = NewBlock(Math.Max(padded, Alignment), out offset);
            _overflow.Add(buffer);
            _overflowTotal += padded;
        }
        var t = NextTensor();
        t.Rebind(buffer, offset, shape);
        return t;
    }

    /// <summary>A zero-filled tensor of <paramref name="shape"/>.</summary>
    public Tensor Zeros(Shape shape)
    {
        var t = Allocate(shape);
        if (_device is not null) t.Clear();
        else t.Span.Clear();
        return t;
    }

    /// <summary>Device ints for the step (uploaded ids and offsets); contents undefined. GPU arenas only.</summary>
    internal ArrayView<int> AllocateInts(int length)
    {
        if (_intSlabs is null) throw new InvalidOperationException("TensorArena.AllocateInts: device ints need a GPU arena, this arena is on the host.");
        return _intSlabs.Take(length);
    }

    /// <summary>A tensor object with no storage, for views (reshape) of arena or parameter storage.</summary>
    internal Tensor AllocateHeader() => NextTensor();

    private Tensor NextTensor()
    {
        if (_tensorsUsed == _tensors.Count) _tensors.Add(new Tensor());
        return _tensors[_tensorsUsed++];
    }

    /// <summary>Recycles every tensor handed out since the last reset. Tensors from before must not be used after this.</summary>
    public void Reset()
    {
        _floatSlabs?.Rewind();
        _intSlabs?.Rewind();
        if (_overflow.Count > 0)
        {
            long need = _used + _overflowTotal;
            _block = NewBlock(checked((int)Math.Min(int.MaxValue - 64, need + need / 4)), out _base);
            _overflow.Clear();
            _overflowTotal = 0;
        }
        _used = 0;
        for (int i = 0; i < _tensorsUsed; i++) _tensors[i].Recycle();
        _tensorsUsed = 0;
    }
}

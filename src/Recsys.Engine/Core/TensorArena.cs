using Recsys.Kernels.Common;
namespace Recsys.Engine.Core;

/// <summary>
/// Per-step bump allocator for tensors. <see cref="Reset"/> recycles every tensor and its storage at
/// once instead of leaving them to the GC. When a step needs more than the current block, an extra
/// block is taken; at the next reset the blocks are merged into one block of the total size, so after
/// the first few steps training allocates nothing here.
/// </summary>
public sealed class TensorArena
{
    private const int Alignment = 16; // floats: 64 bytes, one cache line, one Vector512
    private float[] _block;
    private int _used;
    private readonly List<float[]> _overflow = new();
    private long _overflowTotal;
    private readonly List<Tensor> _tensors = new();
    private int _tensorsUsed;

    public TensorArena(int initialFloats = 1 << 16)
    {
        _block = LargeBuffers.Floats(Math.Max(initialFloats, Alignment));
    }

    /// <summary>Floats handed out since the last reset.</summary>
    public long FloatsInUse => _used + _overflowTotal;

    /// <summary>Capacity of the main block, in floats.</summary>
    public long Capacity => _block.Length;

    /// <summary>A tensor of <paramref name="shape"/> whose contents are undefined (the caller overwrites all of it).</summary>
    public Tensor Allocate(Shape shape)
    {
        int size = shape.Size;
        int padded = (size + Alignment - 1) / Alignment * Alignment;
        float[] buffer;
        int offset;
        if (_used + padded <= _block.Length)
        {
            buffer = _block;
            offset = _used;
            _used += padded;
        }
        else
        {
            buffer = new float[Math.Max(padded, Alignment)];
            offset = 0;
            _overflow.Add(buffer);
            _overflowTotal += buffer.Length;
        }
        var t = NextTensor();
        t.Rebind(buffer, offset, shape);
        return t;
    }

    /// <summary>A zero-filled tensor of <paramref name="shape"/>.</summary>
    public Tensor Zeros(Shape shape)
    {
        var t = Allocate(shape);
        t.Span.Clear();
        return t;
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
        if (_overflow.Count > 0)
        {
            long need = _used + _overflowTotal;
            _block = LargeBuffers.Floats(checked((int)Math.Min(int.MaxValue - 64, need + need / 4)));
            _overflow.Clear();
            _overflowTotal = 0;
        }
        _used = 0;
        for (int i = 0; i < _tensorsUsed; i++) _tensors[i].Rebind(Array.Empty<float>(), 0, Shape.Scalar);
        _tensorsUsed = 0;
    }
}

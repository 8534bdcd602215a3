using ILGPU;
using ILGPU.Runtime;

namespace Recsys.Engine.Core;

/// <summary>
/// A dense float32 tensor: a shape over a slice of a float array. Tensors made during a step come
/// from the step's <see cref="TensorArena"/> and are recycled when it is reset; parameters own
/// their storage. A tensor has at most one gradient, of the same shape, set by the tape
/// (intermediates) or owned by its <see cref="Parameter"/>.
/// <para>
/// A tensor lives on the host (a float[] slice) or on a GPU <see cref="Core.Device"/> (a slice of a device buffer,
/// <see cref="View"/>). Host accessors (<see cref="Span"/>, the indexer) throw on a device tensor; <see cref="ToArray"/>,
/// <see cref="CopyTo"/> and <see cref="CopyFrom"/> work on both.
/// </para>
/// </summary>
public sealed class Tensor
{
    private float[] _buffer;
    private int _offset;
    // Null for a host tensor; otherwise the device holding _view (the tensor's own elements, exactly Length).
    private Device? _device;
    private ArrayView<float> _view;

    public Shape Shape { get; private set; }

    /// <summary>Number of elements.</summary>
    public int Length { get; private set; }

    /// <summary>True when backward must produce a gradient for this tensor.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>Gradient of the loss with respect to this tensor, same shape; null until backward writes one.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>
    /// True while <see cref="Grad"/> is a caller's tensor lent by <see cref="Tape.Backward"/> (a seed): the tape copies it
    /// before anything would write into it.
    /// </summary>
    internal bool GradIsLent { get; set; }

    /// <summary>The parameter that owns this tensor, if any (used to mark parameters touched by a step).</summary>
    public Parameter? Owner { get; internal set; }

    public string? Name { get; set; }

    /// <summary>A zero-filled tensor on <paramref name="device"/> (host storage for the CPU device).</summary>
    public Tensor(Shape shape, Device device, bool requiresGrad = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        Shape = shape;
        Length = shape.Size;
        RequiresGrad = requiresGrad;
        if (device.IsGpu)
        {
            _buffer = Array.Empty<float>();
            _device = device;
            _view = device.AllocatePersistent<float>(Length);
        }
        else
        {
            _buffer = new float[Length];
        }
    }

    public Tensor(Shape shape, bool requiresGrad = false)
    {
        Shape = shape;
        Length = shape.Size;
        _buffer = new float[Length];
        RequiresGrad = requiresGrad;
    }

    /// <summary>Wraps <paramref name="data"/> (not copied). Its length must equal the shape's size.</summary>
    public Tensor(Shape shape, float[] data, bool requiresGrad = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length != shape.Size)
            throw new ArgumentException($"Tensor data length {data.Length} does not match shape {shape} (size {shape.Size}).", nameof(data));
        Shape = shape;
        Length = data.Length;
        _buffer = data;
        RequiresGrad = requiresGrad;
    }

    /// <summary>Wraps <paramref name="data"/>[<paramref name="offset"/> .. offset + shape.Size) (not copied).</summary>
    public Tensor(Shape shape, float[] data, int offset, bool requiresGrad = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (offset < 0 || (long)offset + shape.Size > data.Length)
            throw new ArgumentException($"Tensor: offset {offset} + shape {shape} (size {shape.Size}) exceeds the {data.Length} elements of its data.", nameof(offset));
        Shape = shape;
        Length = shape.Size;
        _buffer = data;
        _offset = offset;
        RequiresGrad = requiresGrad;
    }

    internal Tensor() { _buffer = Array.Empty<float>(); }

    public static Tensor FromArray(float[] data, params int[] dims) => new(Core.Shape.Of(dims), data);

    /// <summary>True once the arena that handed this tensor out has been reset: its storage now belongs to later tensors.</summary>
    internal bool Recycled { get; private set; }

    /// <summary>
    /// Detaches this arena tensor from its storage at the arena's reset; any use of its elements after that throws. The
    /// shape stays, so an op's shape checks pass and the use fails with what really went wrong.
    /// </summary>
    internal void Recycle()
    {
        Reset(Array.Empty<float>(), 0, null, default, Shape);
        Recycled = true;
    }

    /// <summary>Points this (arena-owned) tensor at a new slice; clears gradient state.</summary>
    internal void Rebind(float[] buffer, int offset, Shape shape) => Reset(buffer, offset, null, default, shape);

    /// <summary>Points this (arena-owned) tensor at a slice of device memory; clears gradient state.</summary>
    internal void RebindDevice(Device device, ArrayView<float> view, Shape shape) => Reset(Array.Empty<float>(), 0, device, view, shape);

    private void Reset(float[] buffer, int offset, Device? device, ArrayView<float> view, Shape shape)
    {
        _buffer = buffer;
        _offset = offset;
        _device = device;
        _view = view;
        Shape = shape;
        Length = shape.Size;
        RequiresGrad = false;
        Grad = null;
        GradIsLent = false;
        Owner = null;
        Name = null;
        Recycled = false;
    }

    /// <summary>The device holding the elements: <see cref="Core.Device.Cpu"/> for host tensors.</summary>
    public Device Device => _device ?? Device.Cpu;

    /// <summary>True when the elements live in device memory (host accessors then throw).</summary>
    public bool IsOnDevice => _device is not null;

    /// <summary>The elements in device memory; throws on a host tensor.</summary>
    public ArrayView<float> View => _device is not null ? _view : throw (Recycled ? RecycledError(nameof(View)) : NotOn("View", "a GPU device", "the host (use Span)"));

    public Span<float> Span => _device is null && !Recycled ? _buffer.AsSpan(_offset, Length) : throw NotHere(nameof(Span));
    public ReadOnlySpan<float> ReadOnlySpan => _device is null && !Recycled ? _buffer.AsSpan(_offset, Length) : throw NotHere(nameof(ReadOnlySpan));
    public Memory<float> Memory => _device is null && !Recycled ? _buffer.AsMemory(_offset, Length) : throw NotHere(nameof(Memory));

    private InvalidOperationException NotHere(string accessor) => Recycled ? RecycledError(accessor) : HostOnly(accessor);

    private static InvalidOperationException RecycledError(string accessor) =>
        new($"Tensor.{accessor}: this tensor was made during a step, and the tape (its arena) has been reset since, so its " +
            "storage now belongs to later tensors. Copy what must outlive the step (ToArray or CopyTo) before the reset " +
            "(gradients too: the reset clears those the tape gave out).");

    private InvalidOperationException HostOnly(string accessor) =>
        NotOn(accessor, "the host", $"device '{_device!.Name}' (use ToArray or CopyTo to read it back)");

    private InvalidOperationException NotOn(string accessor, string expected, string actual) =>
        new($"Tensor{(Name is null ? "" : $" '{Name}'")} {Shape}: {accessor} needs the tensor on {expected}, but it lives on {actual}.");

    /// <summary>Size of dimension <paramref name="axis"/> (negative counts from the end).</summary>
    public int Dim(int axis) => Shape[axis];
    public int Rank => Shape.Rank;

    public float this[int i]
    {
        get => Span[i];
        set => Span[i] = value;
    }

    /// <summary>
    /// A tensor over the same storage with another shape of the same size. Not recorded on a tape:
    /// the gradient of the view is a view of the gradient, which <see cref="Operations.Ops.Reshape"/> handles.
    /// </summary>
    internal Tensor ViewAs(Tensor target, Shape shape)
    {
        if (Recycled) throw RecycledError(nameof(ViewAs));
        if (shape.Size != Length)
            throw new ArgumentException($"Cannot view a tensor of shape {Shape} ({Length} elements) as {shape} ({shape.Size} elements).");
        if (_device is not null) target.RebindDevice(_device, _view, shape);
        else target.Rebind(_buffer, _offset, shape);
        return target;
    }

    /// <summary>A host copy of the elements (waits for the device when the tensor lives there).</summary>
    public float[] ToArray()
    {
        if (_device is null) return ReadOnlySpan.ToArray();
        var host = new float[Length];
        CopyTo(host);
        return host;
    }

    /// <summary>Copies the elements into <paramref name="destination"/> (at least <see cref="Length"/> long), from the host or the device.</summary>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length < Length)
            throw new ArgumentException($"Tensor{(Name is null ? "" : $" '{Name}'")} {Shape}.CopyTo: destination needs {Length} elements, got {destination.Length}.", nameof(destination));
        if (_device is null)
        {
            ReadOnlySpan.CopyTo(destination);
            return;
        }
        if (Length == 0) return;
        var gpu = _device.Gpu;
        gpu.Synchronize();
        Dense(_view).CopyToCPU(gpu.Stream, destination.Slice(0, Length));
        gpu.Synchronize();
    }

    /// <summary>Overwrites the elements with <paramref name="source"/> (exactly <see cref="Length"/> long), on the host or the device.</summary>
    public void CopyFrom(ReadOnlySpan<float> source)
    {
        if (source.Length != Length)
            throw new ArgumentException($"Tensor{(Name is null ? "" : $" '{Name}'")} {Shape}.CopyFrom: expected {Length} elements, got {source.Length}.", nameof(source));
        if (_device is null)
        {
            source.CopyTo(Span);
            return;
        }
        if (Length == 0) return;
        var gpu = _device.Gpu;
        Dense(_view).CopyFromCPU(gpu.Stream, source);
        // The copy may read the source after this returns on an asynchronous stream: wait, so the caller may reuse it.
        gpu.Synchronize();
    }

    private static ArrayView1D<float, Stride1D.Dense> Dense(ArrayView<float> view) => view;

    /// <summary>Sets every element to zero (a memset on the device's stream for a device tensor).</summary>
    public void Clear()
    {
        if (_device is null) Span.Clear();
        else if (Length > 0) _view.MemSetToZero(_device.Gpu.Stream);
    }

    /// <summary>
    /// Moves the elements to <paramref name="device"/> in place: this tensor object keeps its identity (modules and
    /// optimizers that hold it see the move) and its contents; only the storage changes.
    /// </summary>
    internal void MoveTo(Device device) => MoveTo(device, null);

    /// <summary>
    /// <see cref="MoveTo(Device)"/> into caller-provided device storage of exactly <see cref="Length"/> elements (e.g. a
    /// table's rows inside one stacked buffer); null allocates.
    /// </summary>
    internal void MoveTo(Device device, ArrayView<float>? storage)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (ReferenceEquals(Device, device)) return;
        if (device.IsGpu)
        {
            if (_device is not null)
                throw new NotSupportedException($"Tensor '{Name}': moving between two GPU devices ('{_device.Name}' to '{device.Name}') is not supported; move to the CPU first.");
            if (storage is { } s && s.Length != Length)
                throw new ArgumentException($"Tensor '{Name}' {Shape}.MoveTo: storage needs {Length} elements, got {s.Length}.", nameof(storage));
            var view = storage ?? device.AllocatePersistent<float>(Length);
            if (Length > 0)
            {
                Dense(view).CopyFromCPU(device.Gpu.Stream, ReadOnlySpan);
                device.Gpu.Synchronize();
            }
            _buffer = Array.Empty<float>();
            _offset = 0;
            _device = device;
            _view = view;
        }
        else
        {
            var host = ToArray();
            _device = null;
            _view = default;
            _buffer = host;
            _offset = 0;
        }
    }

    /// <summary>Throws unless the shape is exactly <paramref name="expected"/>; <paramref name="what"/> names the tensor in the message.</summary>
    public void ExpectShape(Shape expected, string what)
    {
        if (Shape != expected)
            throw new ArgumentException($"{what}: expected shape {expected}, got {Shape}.");
    }

    /// <summary>Throws unless the rank is <paramref name="rank"/>.</summary>
    public void ExpectRank(int rank, string what)
    {
        if (Rank != rank)
            throw new ArgumentException($"{what}: expected a rank-{rank} tensor, got shape {Shape} (rank {Rank}).");
    }

    public override string ToString() => $"Tensor{(Name is null ? "" : " " + Name)} {Shape}";
}

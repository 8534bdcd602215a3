namespace Recsys.Engine.Core;

/// <summary>
/// A dense float32 tensor: a shape over a slice of a float array. Tensors made during a step come
/// from the step's <see cref="TensorArena"/> and are recycled when it is reset; parameters own
/// their storage. A tensor has at most one gradient, of the same shape, set by the tape
/// (intermediates) or owned by its <see cref="Parameter"/>.
/// </summary>
public sealed class Tensor
{
    private float[] _buffer;
    private int _offset;

    public Shape Shape { get; private set; }

    /// <summary>Number of elements.</summary>
    public int Length { get; private set; }

    /// <summary>True when backward must produce a gradient for this tensor.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>Gradient of the loss with respect to this tensor, same shape; null until backward writes one.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The parameter that owns this tensor, if any (used to mark parameters touched by a step).</summary>
    public Parameter? Owner { get; internal set; }

    public string? Name { get; set; }

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

    /// <summary>Points this (arena-owned) tensor at a new slice; clears gradient state.</summary>
    internal void Rebind(float[] buffer, int offset, Shape shape)
    {
        _buffer = buffer;
        _offset = offset;
        Shape = shape;
        Length = shape.Size;
        RequiresGrad = false;
        Grad = null;
        Owner = null;
        Name = null;
    }

    public Span<float> Span => _buffer.AsSpan(_offset, Length);
    public ReadOnlySpan<float> ReadOnlySpan => _buffer.AsSpan(_offset, Length);
    public Memory<float> Memory => _buffer.AsMemory(_offset, Length);

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
        if (shape.Size != Length)
            throw new ArgumentException($"Cannot view a tensor of shape {Shape} ({Length} elements) as {shape} ({shape.Size} elements).");
        target.Rebind(_buffer, _offset, shape);
        return target;
    }

    public float[] ToArray() => ReadOnlySpan.ToArray();

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

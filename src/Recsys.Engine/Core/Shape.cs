namespace Recsys.Engine.Core;

/// <summary>
/// A tensor shape of rank 0..4, stored inline (a value type, so creating one allocates nothing).
/// Row-major: the last dimension is contiguous.
/// </summary>
public readonly struct Shape : IEquatable<Shape>
{
    public const int MaxRank = 4;
    private readonly int _d0, _d1, _d2, _d3;

    public int Rank { get; }

    public Shape(int d0) : this(1, d0, 0, 0, 0) { }
    public Shape(int d0, int d1) : this(2, d0, d1, 0, 0) { }
    public Shape(int d0, int d1, int d2) : this(3, d0, d1, d2, 0) { }
    public Shape(int d0, int d1, int d2, int d3) : this(4, d0, d1, d2, d3) { }

    private Shape(int rank, int d0, int d1, int d2, int d3)
    {
        if (d0 < 0 || d1 < 0 || d2 < 0 || d3 < 0)
            throw new ArgumentException($"Shape dimensions must be >= 0, got [{d0}, {d1}, {d2}, {d3}] (rank {rank}).");
        Rank = rank; _d0 = d0; _d1 = d1; _d2 = d2; _d3 = d3;
    }

    public static Shape Scalar => default;

    public static Shape Of(ReadOnlySpan<int> dims) => dims.Length switch
    {
        0 => Scalar,
        1 => new Shape(dims[0]),
        2 => new Shape(dims[0], dims[1]),
        3 => new Shape(dims[0], dims[1], dims[2]),
        4 => new Shape(dims[0], dims[1], dims[2], dims[3]),
        _ => throw new ArgumentException($"Shape rank must be <= {MaxRank}, got {dims.Length}."),
    };

    public int this[int axis]
    {
        get
        {
            if (axis < 0) axis += Rank;
            if ((uint)axis >= (uint)Rank)
                throw new ArgumentOutOfRangeException(nameof(axis), axis, $"Axis out of range for shape {this}.");
            return axis switch { 0 => _d0, 1 => _d1, 2 => _d2, _ => _d3 };
        }
    }

    /// <summary>Number of elements (1 for a scalar).</summary>
    public int Size
    {
        get
        {
            long s = 1;
            for (int i = 0; i < Rank; i++) s *= this[i];
            if (s > int.MaxValue) throw new OverflowException($"Shape {this} has {s} elements, more than {int.MaxValue}.");
            return (int)s;
        }
    }

    public int[] ToArray()
    {
        var a = new int[Rank];
        for (int i = 0; i < Rank; i++) a[i] = this[i];
        return a;
    }

    public bool Equals(Shape other) =>
        Rank == other.Rank && _d0 == other._d0 && _d1 == other._d1 && _d2 == other._d2 && _d3 == other._d3;
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);
    public override int GetHashCode() => HashCode.Combine(Rank, _d0, _d1, _d2, _d3);
    public static bool operator ==(Shape a, Shape b) => a.Equals(b);
    public static bool operator !=(Shape a, Shape b) => !a.Equals(b);

    public override string ToString()
    {
        return Rank switch
        {
            0 => "[]",
            1 => $"[{_d0}]",
            2 => $"[{_d0}, {_d1}]",
            3 => $"[{_d0}, {_d1}, {_d2}]",
            _ => $"[{_d0}, {_d1}, {_d2}, {_d3}]",
        };
    }
}

using Recsys.Kernels.Common;
using Recsys.Engine.Core;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Engine.Nn;

/// <summary>Configuration of one embedding table: plain data, as in TorchRec's EmbeddingBagConfig.</summary>
public sealed record EmbeddingTableConfig(string Name, int Rows, int Dim);

/// <summary>
/// One embedding table: weight [Rows, Dim] plus the optimizer state of its sparse updates, allocated
/// on first use (row-wise Adagrad: one float per row; Adam: m and v, [Rows, Dim] each). The weight is
/// updated inside backward, touched rows only, so it is not a dense <see cref="Parameter"/>.
/// </summary>
public sealed class EmbeddingTable
{
    public string Name { get; }
    public int Rows { get; }
    public int Dim { get; }

    /// <summary>Weight [Rows, Dim]. Does not require grad: its gradient is sparse and consumed inside backward.</summary>
    public Tensor Weight { get; }

    internal float[] WeightData { get; private set; }

    /// <summary>Index of row 0 inside <see cref="WeightData"/>.</summary>
    internal int WeightStart { get; private set; }

    /// <summary>Row-wise Adagrad accumulator [Rows], or Adam's first moment m [Rows, Dim]; null until an optimizer needs it.</summary>
    public float[]? State1 { get; private set; }

    /// <summary>Adam's second moment v [Rows, Dim]; null otherwise.</summary>
    public float[]? State2 { get; private set; }

    private SparseUpdateKind _stateKind;

    /// <summary>A table initialised U(−√(1/rows), +√(1/rows)), the DLRM reference initialisation.</summary>
    public EmbeddingTable(string name, int rows, int dim, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(rng);
        if (rows <= 0) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"EmbeddingTable '{name}': rows must be > 0, got {rows}.");
        if (dim <= 0) throw new ArgumentOutOfRangeException(nameof(dim), dim, $"EmbeddingTable '{name}': dim must be > 0, got {dim}.");
        if ((long)rows * dim > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"EmbeddingTable '{name}': rows {rows} x dim {dim} exceeds the largest array ({Array.MaxLength}).");
        Name = name;
        Rows = rows;
        Dim = dim;
        // Random row gathers: huge pages where the OS allows, and the table starting on a 256-byte boundary, so a
        // 256-byte row is exactly 4 lines in two whole 128-byte pairs (a misaligned Vector512 load touches two lines).
        WeightData = LargeBuffers.AlignedFloats(rows * dim, out int start, pinSmall: false, LargeBuffers.EmbeddingTableAlignmentBytes);
        WeightStart = start;
        Weight = new Tensor(new Shape(rows, dim), WeightData, start) { Name = name + ".weight" };
        double bound = Math.Sqrt(1.0 / rows);
        rng.FillUniform(Weight.Span, -bound, bound);
    }

    public EmbeddingTable(EmbeddingTableConfig config, Rng rng)
        : this((config ?? throw new ArgumentNullException(nameof(config))).Name, config.Rows, config.Dim, rng) { }

    /// <summary>Allocates (zeroed) the state <paramref name="kind"/> needs; a change of optimizer kind starts from fresh state.</summary>
    internal void EnsureState(SparseUpdateKind kind)
    {
        if (kind is SparseUpdateKind.Collect or SparseUpdateKind.Sgd) return;
        if (_stateKind == kind && State1 is not null) return;
        _stateKind = kind;
        State1 = kind == SparseUpdateKind.RowwiseAdagrad ? new float[Rows] : LargeBuffers.Floats(Rows * Dim);
        State2 = kind == SparseUpdateKind.Adam ? LargeBuffers.Floats(Rows * Dim) : null;
    }

    /// <summary>The kind of the host optimizer state in <see cref="State1"/>/<see cref="State2"/> (Collect when none).</summary>
    internal SparseUpdateKind StateKind => State1 is null ? SparseUpdateKind.Collect : _stateKind;

    /// <summary>
    /// Drops the host copies once the weight and the state live on a device (the weight tensor itself was moved); the
    /// host kernels are never called on a device table.
    /// </summary>
    internal void ReleaseHost()
    {
        WeightData = Array.Empty<float>();
        WeightStart = 0;
        State1 = null;
        State2 = null;
    }

    public override string ToString() => $"EmbeddingTable {Name} [{Rows}, {Dim}]";
}

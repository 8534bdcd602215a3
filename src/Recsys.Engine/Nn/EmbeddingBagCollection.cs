using Recsys.Engine.Operations;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Nn;

/// <summary>
/// The sparse arch of DLRM: F embedding tables, one per sparse feature, pooled per sample (TorchRec's
/// EmbeddingBagCollection). <see cref="Forward(Tape, KeyedJagged)"/> gives [B, F, D] in one parallel
/// region over all tables. Its backward computes the gradient of the touched rows only and, when
/// <see cref="Optimizer"/> is set, applies the update right there (fused); otherwise the coalesced
/// gradients are left in <see cref="LastSparseGradients"/>.
/// </summary>
public sealed partial class EmbeddingBagCollection : Module
{
    private readonly EmbeddingTable[] _tables;
    private readonly float[][] _weights;
    private readonly int[] _weightStarts;
    private readonly int[] _rows;
    private readonly float[]?[] _state1;
    private readonly float[]?[] _state2;
    private readonly SparseGradient[] _grads;
    private readonly EmbeddingBagWorkspace _workspace = new();

    /// <param name="tables">Table configs, in feature order (feature f of the input is looked up in table f).</param>
    /// <param name="pooling">Sum or Mean pooling of each bag.</param>
    /// <param name="rng">Initialisation: each table U(±√(1/rows)), tables drawn in order.</param>
    public EmbeddingBagCollection(IReadOnlyList<EmbeddingTableConfig> tables, PoolingMode pooling, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(tables);
        ArgumentNullException.ThrowIfNull(rng);
        if (tables.Count == 0) throw new ArgumentException("EmbeddingBagCollection: needs at least one table.", nameof(tables));
        var names = new HashSet<string>();
        _tables = new EmbeddingTable[tables.Count];
        for (int f = 0; f < tables.Count; f++)
        {
            if (!names.Add(tables[f].Name))
                throw new ArgumentException($"EmbeddingBagCollection: table name '{tables[f].Name}' is used twice (feature {f}).", nameof(tables));
            _tables[f] = new EmbeddingTable(tables[f], rng);
        }
        Pooling = pooling;
        _weights = _tables.Select(t => t.WeightData).ToArray();
        _weightStarts = _tables.Select(t => t.WeightStart).ToArray();
        _rows = _tables.Select(t => t.Rows).ToArray();
        _state1 = new float[]?[_tables.Length];
        _state2 = new float[]?[_tables.Length];
        _grads = _tables.Select(t => new SparseGradient(t.Name, t.Dim)).ToArray();
    }

    public IReadOnlyList<EmbeddingTable> Tables => _tables;

    public PoolingMode Pooling { get; }

    /// <summary>Applied inside backward to touched rows; null keeps the gradients in <see cref="LastSparseGradients"/> instead.</summary>
    public SparseOptimizer? Optimizer { get; set; }

    /// <summary>Per table, the coalesced gradient of the last backward that ran without an optimizer.</summary>
    public IReadOnlyList<SparseGradient> LastSparseGradients => _grads;

    /// <summary>The shared embedding dimension D; throws when the tables differ.</summary>
    public int Dim
    {
        get
        {
            int d = _tables[0].Dim;
            for (int f = 1; f < _tables.Length; f++)
                if (_tables[f].Dim != d)
                    throw new InvalidOperationException(
                        $"EmbeddingBagCollection: a [B, F, D] output needs one D for all tables, but '{_tables[0].Name}' has {d} and '{_tables[f].Name}' has {_tables[f].Dim}.");
            return d;
        }
    }

    /// <summary>Pooled embeddings [B, F, D] of <paramref name="ids"/> (F features = one per table). Records the fused sparse backward.</summary>
    public Tensor Forward(Tape tape, KeyedJagged ids) => Ops.EmbeddingBags(tape, this, ids);

    /// <summary>Each table's weight as <c>{name}.weight</c>.</summary>
    public override IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (var t in _tables) yield return new(t.Name + ".weight", t.Weight);
    }

    internal void CheckIds(KeyedJagged ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Features != _tables.Length)
            throw new ArgumentException($"EmbeddingBagCollection: ids have {ids.Features} features but the collection has {_tables.Length} tables.", nameof(ids));
    }

    /// <summary>Writes the pooled bags into <paramref name="output"/> [B, F, D].</summary>
    internal void ForwardInto(KeyedJagged ids, Span<float> output)
    {
        int dim = Dim;
        int b = ids.BatchSize;
        try
        {
            EmbeddingBagKernels.ForwardTables(_weights, _rows, dim, b, ids.Values, BagOffsets(ids), PerIdWeights(ids), Pooling, output, _tables.Length * dim, 0, _weightStarts);
        }
        catch (EmbeddingIndexOutOfRangeException e)
        {
            throw Named(e);
        }
    }

    /// <summary>
    /// Inference only: the pooled bags of <paramref name="ids"/> go straight into the dot interaction with
    /// <paramref name="dense"/> [B, D], written to <paramref name="output"/> [B, D + (F+1)F/2], without a [B, F, D] buffer.
    /// </summary>
    internal void ForwardDotInteractionInto(KeyedJagged ids, ReadOnlySpan<float> dense, Span<float> output)
    {
        try
        {
            DotInteractionKernels.ForwardFromTables(dense, _weights, _rows, Dim, ids.BatchSize, ids.Values, BagOffsets(ids), PerIdWeights(ids), Pooling, output, _weightStarts);
        }
        catch (EmbeddingIndexOutOfRangeException e)
        {
            throw Named(e);
        }
    }

    /// <summary>Backward of <see cref="ForwardInto"/> given dOutput [B, F, D]: fused update, or collect into <see cref="LastSparseGradients"/>.</summary>
    internal void Backward(KeyedJagged ids, ReadOnlySpan<float> dOutput) => RunBackward(ids, dOutput, PrepareBackward());

    /// <summary>
    /// The first half of a backward, on the calling thread: advances the optimizer's step (so a group of backwards draws
    /// its steps in the order they would run one by one) and makes any optimizer state the tables still lack.
    /// </summary>
    internal SparseUpdate PrepareBackward()
    {
        var update = Optimizer is { } opt ? opt.NextStep() : SparseUpdate.Collect;
        for (int f = 0; f < _tables.Length; f++)
        {
            _tables[f].EnsureState(update.Kind);
            _state1[f] = _tables[f].State1;
            _state2[f] = _tables[f].State2;
        }
        return update;
    }

    /// <summary>The second half: the kernel, which touches this collection's tables, state and workspace only.</summary>
    internal void RunBackward(KeyedJagged ids, ReadOnlySpan<float> dOutput, in SparseUpdate update)
    {
        try
        {
            EmbeddingBagKernels.BackwardTables(_weights, _rows, Dim, ids.BatchSize, ids.Values, BagOffsets(ids), PerIdWeights(ids), Pooling, dOutput,
                _tables.Length * Dim, 0, update, _state1, _state2, _workspace, _weightStarts);
        }
        catch (EmbeddingIndexOutOfRangeException e)
        {
            throw Named(e);
        }
        if (update.Kind == SparseUpdateKind.Collect)
            for (int f = 0; f < _tables.Length; f++) _grads[f].Set(_workspace.UniqueIds(f), _workspace.RowGradients(f));
    }

    /// <summary>The F·B + 1 bag offsets of <paramref name="ids"/> (its offsets array may be longer).</summary>
    private ReadOnlySpan<int> BagOffsets(KeyedJagged ids) => ids.Offsets.AsSpan(0, _tables.Length * ids.BatchSize + 1);

    /// <summary>One weight per id, or empty when the bags are unweighted.</summary>
    private static ReadOnlySpan<float> PerIdWeights(KeyedJagged ids) => ids.Weights is null ? default : ids.Weights.AsSpan(0, ids.ValueCount);

    private EmbeddingIndexOutOfRangeException Named(EmbeddingIndexOutOfRangeException e) =>
        new(e.Table, e.Position, e.Id, e.Rows, _tables[e.Table].Name);
}

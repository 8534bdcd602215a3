using Recsys.Engine.Core;

namespace Recsys.Engine.Data;

/// <summary>
/// A whole dataset in memory, row-major: Dense [N, DenseFeatures], Ids [N, SparseFeatures] (one id
/// per field, already in [0, TableRows[f])), Labels [N]. Rows keep file order; splits and
/// shuffles are <see cref="DataView"/>s (row index lists), never copies.
/// </summary>
public sealed class InMemoryDataset
{
    public int Count { get; }
    public int DenseFeatures { get; }
    public int SparseFeatures { get; }

    /// <summary>[Count, DenseFeatures], row-major.</summary>
    public float[] Dense { get; }

    /// <summary>[Count, SparseFeatures], sample-major.</summary>
    public int[] Ids { get; }

    /// <summary>[Count].</summary>
    public float[] Labels { get; }

    /// <summary>[SparseFeatures]: rows of each embedding table; every id of field f is below TableRows[f].</summary>
    public int[] TableRows { get; }

    /// <summary>Malformed lines dropped while loading (0 for generated data).</summary>
    public long SkippedLines { get; init; }

    /// <summary>Per categorical column, the sorted distinct hashed values whose ranks are the ids (vocabulary encoding); null otherwise.</summary>
    public IReadOnlyList<int[]>? Vocabularies { get; init; }

    /// <summary>Categorical values absent from a fixed vocabulary (encoded like a missing value).</summary>
    public long UnseenCategoricalValues { get; init; }

    /// <summary>1-based numbers of the first skipped lines.</summary>
    public IReadOnlyList<long> FirstSkippedLineNumbers { get; init; } = Array.Empty<long>();

    public InMemoryDataset(int count, int denseFeatures, int sparseFeatures, float[] dense, int[] ids, float[] labels, int[] tableRows)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "must be >= 0");
        if (dense.Length != (long)count * denseFeatures)
            throw new ArgumentException($"InMemoryDataset: dense has {dense.Length} values, expected {count} x {denseFeatures}.", nameof(dense));
        if (ids.Length != (long)count * sparseFeatures)
            throw new ArgumentException($"InMemoryDataset: ids has {ids.Length} values, expected {count} x {sparseFeatures}.", nameof(ids));
        if (labels.Length != count)
            throw new ArgumentException($"InMemoryDataset: labels has {labels.Length} values, expected {count}.", nameof(labels));
        if (tableRows.Length != sparseFeatures)
            throw new ArgumentException($"InMemoryDataset: tableRows has {tableRows.Length} entries, expected {sparseFeatures}.", nameof(tableRows));
        for (int i = 0; i < ids.Length; i++)
        {
            int f = i % sparseFeatures;
            if ((uint)ids[i] >= (uint)tableRows[f])
                throw new ArgumentException($"InMemoryDataset: id {ids[i]} of row {i / sparseFeatures}, field {f} is outside table {f} (rows {tableRows[f]}).", nameof(ids));
        }
        Count = count;
        DenseFeatures = denseFeatures;
        SparseFeatures = sparseFeatures;
        Dense = dense;
        Ids = ids;
        Labels = labels;
        TableRows = tableRows;
    }

    /// <summary>Mean label (the positive rate for 0/1 labels); NaN when empty.</summary>
    public double PositiveRate => Count == 0 ? double.NaN : Labels.Sum(x => (double)x) / Count;

    /// <summary>All rows in file order.</summary>
    public DataView All => Slice(0, Count);

    /// <summary>Rows [start, start + count) in file order.</summary>
    public DataView Slice(int start, int count)
    {
        if (start < 0 || count < 0 || (long)start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice [{start}, {start}+{count}) is outside the dataset's {Count} rows.");
        var rows = new int[count];
        for (int i = 0; i < count; i++) rows[i] = start + i;
        return new DataView(this, rows);
    }

    /// <summary>Train = the first floor(trainFraction * N) rows in file order, test = the rest (the peer's split).</summary>
    public (DataView Train, DataView Test) SplitTrainTest(double trainFraction = 0.9)
    {
        if (!(trainFraction >= 0 && trainFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "train fraction must be in [0, 1]");
        int nTrain = (int)Math.Floor(trainFraction * Count);
        return (Slice(0, nTrain), Slice(nTrain, Count - nTrain));
    }

    /// <summary>
    /// K contiguous folds in file order: fold k tests rows [k*N/K, (k+1)*N/K) and trains on all
    /// other rows (file order kept on both sides).
    /// </summary>
    public IReadOnlyList<(DataView Train, DataView Test)> KFold(int k)
    {
        if (k < 2 || k > Count)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"K-fold needs 2 <= k <= rows ({Count}).");
        var folds = new List<(DataView, DataView)>(k);
        for (int f = 0; f < k; f++)
        {
            int lo = (int)((long)f * Count / k), hi = (int)((long)(f + 1) * Count / k);
            var train = new int[Count - (hi - lo)];
            int t = 0;
            for (int i = 0; i < lo; i++) train[t++] = i;
            for (int i = hi; i < Count; i++) train[t++] = i;
            folds.Add((new DataView(this, train), Slice(lo, hi - lo)));
        }
        return folds;
    }

    /// <summary>
    /// Fills <paramref name="batch"/> with the given rows (Dense [B, D], Ids [B, S], Labels [B], then
    /// the sparse view); B = rows.Length. Reuses the batch's buffers.
    /// </summary>
    public void FillBatch(Batch batch, ReadOnlySpan<int> rows)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int d = DenseFeatures, s = SparseFeatures;
        batch.Resize(rows.Length, d, s);
        for (int b = 0; b < rows.Length; b++)
        {
            int r = rows[b];
            if ((uint)r >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(rows), $"FillBatch: row index {r} at position {b} is outside the dataset's {Count} rows.");
            Dense.AsSpan(r * d, d).CopyTo(batch.Dense.AsSpan(b * d, d));
            Ids.AsSpan(r * s, s).CopyTo(batch.Ids.AsSpan(b * s, s));
            batch.Labels[b] = Labels[r];
        }
        batch.BuildSparseFromIds();
    }

    /// <summary>Fills <paramref name="batch"/> with the contiguous rows [start, start + count).</summary>
    public void FillBatch(Batch batch, int start, int count)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (start < 0 || count < 0 || (long)start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"FillBatch: rows [{start}, {start}+{count}) are outside the dataset's {Count} rows.");
        int d = DenseFeatures, s = SparseFeatures;
        batch.Resize(count, d, s);
        Dense.AsSpan(start * d, count * d).CopyTo(batch.Dense);
        Ids.AsSpan(start * s, count * s).CopyTo(batch.Ids);
        Labels.AsSpan(start, count).CopyTo(batch.Labels);
        batch.BuildSparseFromIds();
    }
}

/// <summary>An ordered list of row indices into an <see cref="InMemoryDataset"/> (a split, a fold, a shuffle).</summary>
public sealed class DataView
{
    private readonly int[] _rows;

    public InMemoryDataset Source { get; }
    public int Count => _rows.Length;
    public ReadOnlySpan<int> Rows => _rows;

    public DataView(InMemoryDataset source, int[] rows)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(rows);
        foreach (int r in rows)
            if ((uint)r >= (uint)source.Count)
                throw new ArgumentOutOfRangeException(nameof(rows), $"DataView: row index {r} is outside the dataset's {source.Count} rows.");
        Source = source;
        _rows = rows;
    }

    /// <summary>The same rows in a seeded random order (Fisher-Yates with <see cref="Rng"/>).</summary>
    public DataView Shuffled(ulong seed)
    {
        var rows = (int[])_rows.Clone();
        var rng = new Rng(seed);
        for (int i = rows.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (rows[i], rows[j]) = (rows[j], rows[i]);
        }
        return new DataView(Source, rows);
    }

    /// <summary>Number of batches of <paramref name="batchSize"/> (the last may be smaller).</summary>
    public int BatchCount(int batchSize) => (Count + batchSize - 1) / batchSize;

    /// <summary>Fills <paramref name="batch"/> with view positions [start, start + count).</summary>
    public void FillBatch(Batch batch, int start, int count)
    {
        if (start < 0 || count < 0 || (long)start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"DataView.FillBatch: positions [{start}, {start}+{count}) are outside the view's {Count} rows.");
        Source.FillBatch(batch, _rows.AsSpan(start, count));
    }

    /// <summary>
    /// Batches in view order, the last possibly smaller. The SAME <see cref="Batch"/> object is yielded
    /// every time, refilled in place.
    /// </summary>
    public IEnumerable<Batch> Batches(int batchSize, Batch? reuse = null)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be > 0");
        return Iterate(batchSize, reuse ?? new Batch());
    }

    private IEnumerable<Batch> Iterate(int batchSize, Batch batch)
    {
        for (int start = 0; start < Count; start += batchSize)
        {
            FillBatch(batch, start, Math.Min(batchSize, Count - start));
            yield return batch;
        }
    }

    /// <summary>Labels of the view's rows, in view order [Count].</summary>
    public float[] Labels()
    {
        var y = new float[Count];
        for (int i = 0; i < y.Length; i++) y[i] = Source.Labels[_rows[i]];
        return y;
    }
}

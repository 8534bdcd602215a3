namespace Recsys.Engine.Data;

/// <summary>
/// One mini-batch of a ranking dataset: dense features [B, DenseFeatures] (row-major), sparse
/// features as <see cref="KeyedJagged"/> ids, and labels [B] (0/1, or soft targets in [0, 1]).
/// Readers fill a batch in place and reuse it, so reading allocates nothing per batch.
/// </summary>
public sealed class Batch
{
    public int Size { get; private set; }
    public int DenseFeatures { get; private set; }
    public int SparseFeatures { get; private set; }

    /// <summary>[Size, DenseFeatures], row-major; valid prefix only.</summary>
    public float[] Dense { get; private set; } = Array.Empty<float>();

    /// <summary>[Size]; valid prefix only.</summary>
    public float[] Labels { get; private set; } = Array.Empty<float>();

    public KeyedJagged Sparse { get; } = new();

    /// <summary>Sample-major one-id-per-feature ids [Size, SparseFeatures] (the layout readers produce; Criteo has one id per field).</summary>
    public int[] Ids { get; private set; } = Array.Empty<int>();

    /// <summary>Resizes buffers (keeping capacity) for a batch of <paramref name="size"/> samples.</summary>
    public void Resize(int size, int denseFeatures, int sparseFeatures)
    {
        Size = size;
        DenseFeatures = denseFeatures;
        SparseFeatures = sparseFeatures;
        if (Dense.Length < size * denseFeatures) Dense = new float[size * denseFeatures];
        if (Labels.Length < size) Labels = new float[size];
        if (Ids.Length < size * sparseFeatures) Ids = new int[size * sparseFeatures];
    }

    /// <summary>Rebuilds <see cref="Sparse"/> from <see cref="Ids"/> (one id per bag).</summary>
    public void BuildSparseFromIds() => Sparse.SetOneHot(Ids, Size, SparseFeatures);

    public ReadOnlySpan<float> DenseSpan => Dense.AsSpan(0, Size * DenseFeatures);
    public ReadOnlySpan<float> LabelSpan => Labels.AsSpan(0, Size);
    public ReadOnlySpan<int> IdSpan => Ids.AsSpan(0, Size * SparseFeatures);
}

namespace Recsys.Engine.Data;

/// <summary>
/// Sparse features of a batch as jagged id lists (TorchRec's KeyedJaggedTensor): for feature f and
/// sample b, the bag is <c>Values[Offsets[f*B + b] .. Offsets[f*B + b + 1])</c> — feature-major
/// ("table-major") order, which keeps one table's lookups together. <see cref="Weights"/>, when
/// present, holds one weight per value (weighted pooling). Buffers are reused across batches:
/// <see cref="Reset"/> keeps their capacity.
/// </summary>
public sealed class KeyedJagged
{
    public int Features { get; private set; }
    public int BatchSize { get; private set; }

    /// <summary>Ids; only the first <see cref="ValueCount"/> are valid.</summary>
    public int[] Values { get; private set; } = Array.Empty<int>();

    /// <summary>Length Features*BatchSize + 1; Offsets[0] = 0, last = ValueCount.</summary>
    public int[] Offsets { get; private set; } = Array.Empty<int>();

    /// <summary>Per-value weights, or null for unweighted pooling.</summary>
    public float[]? Weights { get; private set; }

    public int ValueCount => Offsets.Length == 0 ? 0 : Offsets[Features * BatchSize];

    public KeyedJagged() { }

    public KeyedJagged(int features, int batchSize, int[] values, int[] offsets, float[]? weights = null)
    {
        if (offsets.Length < features * batchSize + 1)
            throw new ArgumentException($"KeyedJagged: offsets needs {features * batchSize + 1} entries (features {features} x batch {batchSize} + 1), got {offsets.Length}.");
        Features = features;
        BatchSize = batchSize;
        Values = values;
        Offsets = offsets;
        Weights = weights;
        Validate();
    }

    /// <summary>Resizes for a new batch, reusing buffers when big enough. Offsets are left for the caller to fill.</summary>
    public void Reset(int features, int batchSize, int valueCapacity, bool weighted)
    {
        Features = features;
        BatchSize = batchSize;
        if (Offsets.Length < features * batchSize + 1) Offsets = new int[features * batchSize + 1];
        if (Values.Length < valueCapacity) Values = new int[valueCapacity];
        if (weighted && (Weights is null || Weights.Length < valueCapacity)) Weights = new float[valueCapacity];
        if (!weighted) Weights = null;
    }

    /// <summary>Builds the one-id-per-bag layout of Criteo-like data from sample-major ids [B, F].</summary>
    public void SetOneHot(ReadOnlySpan<int> idsSampleMajor, int batchSize, int features)
    {
        if (idsSampleMajor.Length < batchSize * features)
            throw new ArgumentException($"KeyedJagged.SetOneHot: ids needs {batchSize * features} entries (batch {batchSize} x features {features}), got {idsSampleMajor.Length}.");
        Reset(features, batchSize, batchSize * features, weighted: false);
        var values = Values;
        var offsets = Offsets;
        for (int f = 0; f < features; f++)
            for (int b = 0; b < batchSize; b++)
                values[f * batchSize + b] = idsSampleMajor[b * features + f];
        for (int i = 0; i <= features * batchSize; i++) offsets[i] = i;
    }

    /// <summary>Checks offsets are monotone and in range; throws naming the first bad position.</summary>
    public void Validate()
    {
        int n = Features * BatchSize;
        if (Offsets[0] != 0) throw new ArgumentException($"KeyedJagged: Offsets[0] must be 0, got {Offsets[0]}.");
        for (int i = 0; i < n; i++)
            if (Offsets[i + 1] < Offsets[i])
                throw new ArgumentException($"KeyedJagged: offsets must be non-decreasing; Offsets[{i + 1}] = {Offsets[i + 1]} < Offsets[{i}] = {Offsets[i]} (feature {i / Math.Max(1, BatchSize)}, sample {i % Math.Max(1, BatchSize)}).");
        if (Offsets[n] > Values.Length)
            throw new ArgumentException($"KeyedJagged: last offset {Offsets[n]} exceeds the {Values.Length} values.");
        if (Weights is not null && Weights.Length < Offsets[n])
            throw new ArgumentException($"KeyedJagged: {Offsets[n]} values but only {Weights.Length} weights.");
    }
}

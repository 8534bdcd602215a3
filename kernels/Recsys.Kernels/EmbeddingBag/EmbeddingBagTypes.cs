namespace Recsys.Kernels.EmbeddingBag;

/// <summary>How the rows of one bag are pooled into one vector.</summary>
public enum PoolingMode
{
    /// <summary>out = Σ_j w_j · row(id_j)   (w_j = 1 when unweighted).</summary>
    Sum = 0,

    /// <summary>out = (1/len) · Σ_j w_j · row(id_j); an empty bag gives zeros.</summary>
    Mean = 1,
}

/// <summary>What the fused backward does with the coalesced gradient of each touched row.</summary>
public enum SparseUpdateKind
{
    /// <summary>No update: the coalesced (unique id, row gradient) pairs are left in the workspace.</summary>
    Collect = 0,

    /// <summary>w -= lr · g.</summary>
    Sgd = 1,

    /// <summary>Row-wise Adagrad (FBGEMM/TorchRec): s += mean_j(g_j²); w -= lr · g / (√s + eps). State1 = s [rows].</summary>
    RowwiseAdagrad = 2,

    /// <summary>
    /// PyTorch SparseAdam on touched rows only: m += (1-β1)(g - m); v += (1-β2)(g² - v);
    /// w -= lr·√(1-β2^t)/(1-β1^t) · m / (√v + eps). State1 = m, State2 = v, both [rows, dim].
    /// </summary>
    Adam = 3,
}

/// <summary>Hyper-parameters of one fused sparse update (a value, so a step allocates nothing).</summary>
public readonly struct SparseUpdate
{
    public SparseUpdateKind Kind { get; init; }
    public float LearningRate { get; init; }
    public float Eps { get; init; }
    public float Beta1 { get; init; }
    public float Beta2 { get; init; }

    /// <summary>Adam's step count t (1 on the first step), used for bias correction.</summary>
    public long Step { get; init; }

    public static SparseUpdate Collect => default;

    public static SparseUpdate Sgd(float learningRate) => new() { Kind = SparseUpdateKind.Sgd, LearningRate = learningRate };

    public static SparseUpdate RowwiseAdagrad(float learningRate, float eps) =>
        new() { Kind = SparseUpdateKind.RowwiseAdagrad, LearningRate = learningRate, Eps = eps };

    public static SparseUpdate Adam(float learningRate, float beta1, float beta2, float eps, long step) =>
        new() { Kind = SparseUpdateKind.Adam, LearningRate = learningRate, Beta1 = beta1, Beta2 = beta2, Eps = eps, Step = step };
}

/// <summary>An id outside its embedding table. Carries the table index, the position in the id list, the id and the table's row count.</summary>
public sealed class EmbeddingIndexOutOfRangeException : ArgumentOutOfRangeException
{
    public int Table { get; }
    public int Position { get; }
    public int Id { get; }
    public int Rows { get; }

    public EmbeddingIndexOutOfRangeException(int table, int position, int id, int rows, string? tableName = null)
        : base("indices", id,
            $"EmbeddingBag: id {id} at position {position} of table {(tableName is null ? table.ToString() : $"'{tableName}' (#{table})")} is outside the table's {rows} rows (valid ids 0..{rows - 1}).")
    {
        Table = table;
        Position = position;
        Id = id;
        Rows = rows;
    }
}

namespace Recsys.Engine.Nn;

/// <summary>
/// The coalesced gradient of one embedding table from one backward: distinct touched ids in ascending
/// order and their gradient rows [Count, Dim]. Rows not listed have a zero gradient. Buffers are reused
/// by the next backward.
/// </summary>
public sealed class SparseGradient
{
    private int[] _ids = Array.Empty<int>();
    private float[] _values = Array.Empty<float>();

    public string Table { get; }
    public int Dim { get; }
    public int Count { get; private set; }

    public SparseGradient(string table, int dim)
    {
        Table = table;
        Dim = dim;
    }

    public ReadOnlySpan<int> Ids => _ids.AsSpan(0, Count);

    /// <summary>[Count, Dim]: row i is the gradient of row <c>Ids[i]</c>.</summary>
    public ReadOnlySpan<float> Values => _values.AsSpan(0, Count * Dim);

    /// <summary>Gradient row of <paramref name="id"/>, or an empty span when the id was not touched.</summary>
    public ReadOnlySpan<float> RowOf(int id)
    {
        int i = Ids.BinarySearch(id);
        return i < 0 ? ReadOnlySpan<float>.Empty : Values.Slice(i * Dim, Dim);
    }

    internal void Set(ReadOnlySpan<int> ids, ReadOnlySpan<float> values)
    {
        if (_ids.Length < ids.Length) _ids = new int[ids.Length];
        if (_values.Length < values.Length) _values = new float[values.Length];
        ids.CopyTo(_ids);
        values.CopyTo(_values);
        Count = ids.Length;
    }

    internal void Clear() => Count = 0;
}

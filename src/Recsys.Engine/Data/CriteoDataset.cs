namespace Recsys.Engine.Data;

/// <summary>Loads a whole Criteo TSV (plain or gzip) into an <see cref="InMemoryDataset"/>.</summary>
public static class CriteoDataset
{
    /// <summary>
    /// Reads every good row (up to <see cref="CriteoOptions.MaxRows"/>) of <paramref name="path"/>.
    /// Hash encoding: table rows = TableSize for every field. Vocabulary encoding (the peer's recipe):
    /// per column, distinct hashed values are ranked ascending over ALL rows loaded and ids become ranks;
    /// memory is the dataset itself (N x (13 floats + 26 ints + 1 float) = 160 bytes per row) plus, per
    /// column in turn, a TableSize-entry map (for TableSize up to 2^24) or an N-entry sorted copy.
    /// </summary>
    public static InMemoryDataset Load(string path, CriteoOptions? options = null)
    {
        options ??= new CriteoOptions();
        const int D = CriteoFormat.DenseCount, S = CriteoFormat.SparseCount;
        using var reader = new CriteoReader(path, options);
        int capacity = 1024;
        var dense = new float[capacity * D];
        var ids = new int[capacity * S];
        var labels = new float[capacity];
        int n = 0;
        while (true)
        {
            if (n == capacity)
            {
                if (capacity >= Array.MaxLength / S)
                    throw new InvalidOperationException($"CriteoDataset.Load: {path} has more than {n} rows, too many for one in-memory dataset; set CriteoOptions.MaxRows or stream it with CriteoReader.");
                capacity = (int)Math.Min((long)capacity * 2, Array.MaxLength / S);
                Array.Resize(ref dense, capacity * D);
                Array.Resize(ref ids, capacity * S);
                Array.Resize(ref labels, capacity);
            }
            if (!reader.ReadRow(out float label, dense.AsSpan(n * D, D), ids.AsSpan(n * S, S))) break;
            labels[n] = label;
            n++;
        }
        Array.Resize(ref dense, n * D);
        Array.Resize(ref ids, n * S);
        Array.Resize(ref labels, n);

        var tableRows = new int[S];
        int[][]? vocabularies = null;
        long unseen = 0;
        if (options.Encoding == CategoricalEncoding.Vocabulary && options.FixedVocabularies is { } fixedVocab)
        {
            if (fixedVocab.Count != S)
                throw new ArgumentException($"CriteoOptions.FixedVocabularies: expected {S} vocabularies (one per categorical column), got {fixedVocab.Count}.");
            vocabularies = fixedVocab.ToArray();
            for (int f = 0; f < S; f++)
            {
                unseen += ApplyVocabulary(ids, n, S, f, vocabularies[f]);
                tableRows[f] = Math.Max(1, vocabularies[f].Length);
            }
        }
        else if (options.Encoding == CategoricalEncoding.Vocabulary)
        {
            vocabularies = new int[S][];
            for (int f = 0; f < S; f++) (tableRows[f], vocabularies[f]) = RankColumn(ids, n, S, f, options.TableSize);
        }
        else
            Array.Fill(tableRows, options.TableSize);

        return new InMemoryDataset(n, D, S, dense, ids, labels, tableRows)
        {
            SkippedLines = reader.Stats.SkippedLines,
            FirstSkippedLineNumbers = reader.Stats.FirstSkippedLineNumbers.ToArray(),
            Vocabularies = vocabularies,
            UnseenCategoricalValues = unseen,
        };
    }

    /// <summary>
    /// Replaces column <paramref name="f"/> of ids [n, stride] by the rank of its hashed value in the
    /// sorted <paramref name="vocabulary"/> (one saved at training time). A value the vocabulary does not
    /// hold is treated like a missing value (hashed value 0, i.e. rank 0); returns how many there were.
    /// </summary>
    internal static long ApplyVocabulary(int[] ids, int n, int stride, int f, int[] vocabulary)
    {
        long unseen = 0;
        for (int i = 0; i < n; i++)
        {
            int r = Array.BinarySearch(vocabulary, ids[i * stride + f]);
            if (r < 0) { unseen++; r = 0; }
            ids[i * stride + f] = r;
        }
        return unseen;
    }

    /// <summary>
    /// Replaces column <paramref name="f"/> of ids [n, stride] by the ascending rank of its value among the
    /// column's distinct values; returns the distinct count and the sorted distinct values (the vocabulary).
    /// </summary>
    internal static (int Count, int[] Vocabulary) RankColumn(int[] ids, int n, int stride, int f, int tableSize)
    {
        if (tableSize <= 1 << 24)
        {
            // Dense map over [0, tableSize): two passes, no sort.
            var map = new int[tableSize];
            for (int i = 0; i < n; i++) map[ids[i * stride + f]] = 1;
            int c = 0;
            for (int v = 0; v < tableSize; v++) map[v] = map[v] != 0 ? c++ : -1;
            for (int i = 0; i < n; i++) ids[i * stride + f] = map[ids[i * stride + f]];
            var vocab = new int[c];
            for (int v = 0, j = 0; v < tableSize; v++) if (map[v] >= 0) vocab[j++] = v;
            return (c, vocab);
        }
        var sorted = new int[n];
        for (int i = 0; i < n; i++) sorted[i] = ids[i * stride + f];
        Array.Sort(sorted);
        int u = 0;
        for (int i = 0; i < n; i++) if (i == 0 || sorted[i] != sorted[u - 1]) sorted[u++] = sorted[i];
        for (int i = 0; i < n; i++) ids[i * stride + f] = Array.BinarySearch(sorted, 0, u, ids[i * stride + f]);
        return (u, sorted.AsSpan(0, u).ToArray());
    }
}

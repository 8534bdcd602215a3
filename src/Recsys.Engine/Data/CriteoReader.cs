namespace Recsys.Engine.Data;

/// <summary>
/// Streaming reader of a Criteo TSV (plain or gzip): one row at a time into caller spans, or whole
/// batches into a reused <see cref="Batch"/>. Memory is one line buffer whatever the file size.
/// Ids are hashed (<see cref="CategoricalEncoding.Hash"/>); the vocabulary encoding needs all rows and
/// lives in <see cref="CriteoDataset.Load"/>.
/// </summary>
public sealed class CriteoReader : IDisposable
{
    private readonly LineReader _lines;
    private readonly CriteoOptions _options;

    public CriteoReadStats Stats { get; } = new();

    public CriteoReader(string path, CriteoOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        _options = options ?? new CriteoOptions();
        _options.Validate();
        _lines = new LineReader(path);
    }

    /// <summary>
    /// Reads the next good row: dense [13] (log(1+x) transformed), ids [26] (hash mod TableSize).
    /// Malformed lines are skipped or thrown on per <see cref="CriteoOptions.Malformed"/>. False at the
    /// end of the file or after <see cref="CriteoOptions.MaxRows"/> rows.
    /// </summary>
    public bool ReadRow(out float label, Span<float> dense, Span<int> ids)
    {
        if (dense.Length < CriteoFormat.DenseCount || ids.Length < CriteoFormat.SparseCount)
            throw new ArgumentException($"CriteoReader.ReadRow: dense needs {CriteoFormat.DenseCount} and ids {CriteoFormat.SparseCount} entries, got {dense.Length} and {ids.Length}.");
        label = 0;
        if (_options.MaxRows > 0 && Stats.Rows >= _options.MaxRows) return false;
        while (_lines.TryReadLine(out var line))
        {
            if (CriteoFormat.TryParseLine(line, _options.TableSize, out label, dense, ids, out var column, out var expected, out var actual))
            {
                Stats.Rows++;
                return true;
            }
            var ex = new DataFormatException(_lines.Path, _lines.LineNumber, column, expected, actual);
            if (_options.Malformed == MalformedPolicy.Fail) throw ex;
            Stats.RecordSkip(_lines.LineNumber, ex.Message, _options.ReportedLineNumbers);
        }
        return false;
    }

    /// <summary>
    /// Fills <paramref name="batch"/> with up to <paramref name="batchSize"/> rows (Dense [B,13],
    /// Labels [B], Ids [B,26], then the sparse view). Returns the rows read; 0 at the end.
    /// </summary>
    public int ReadBatch(Batch batch, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be > 0");
        const int D = CriteoFormat.DenseCount, S = CriteoFormat.SparseCount;
        batch.Resize(batchSize, D, S);
        int n = 0;
        while (n < batchSize && ReadRow(out float label, batch.Dense.AsSpan(n * D, D), batch.Ids.AsSpan(n * S, S)))
        {
            batch.Labels[n] = label;
            n++;
        }
        batch.Resize(n, D, S);
        if (n > 0) batch.BuildSparseFromIds();
        return n;
    }

    /// <summary>
    /// Streams <paramref name="path"/> as batches of <paramref name="batchSize"/> rows (the last may be
    /// smaller). The SAME <see cref="Batch"/> object is yielded every time, refilled in place: copy what
    /// must outlive the iteration. <paramref name="stats"/>, when given, receives the counts as the read goes.
    /// Hash encoding only (the vocabulary encoding needs <see cref="CriteoDataset.Load"/>).
    /// </summary>
    public static IEnumerable<Batch> ReadBatches(string path, CriteoOptions? options, int batchSize, CriteoReadStats? stats = null)
    {
        options ??= new CriteoOptions();
        if (options.Encoding != CategoricalEncoding.Hash)
            throw new ArgumentException($"CriteoReader.ReadBatches streams with the Hash encoding only, got {options.Encoding}; load the file with CriteoDataset.Load for the Vocabulary encoding.", nameof(options));
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be > 0");
        return Iterate(path, options, batchSize, stats);
    }

    private static IEnumerable<Batch> Iterate(string path, CriteoOptions options, int batchSize, CriteoReadStats? stats)
    {
        using var reader = new CriteoReader(path, options);
        var batch = new Batch();
        while (true)
        {
            int n = reader.ReadBatch(batch, batchSize);
            stats?.CopyFrom(reader.Stats);
            if (n == 0) yield break;
            yield return batch;
        }
    }

    public void Dispose() => _lines.Dispose();
}

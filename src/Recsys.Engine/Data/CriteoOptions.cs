namespace Recsys.Engine.Data;

/// <summary>How categorical values become embedding-table rows.</summary>
public enum CategoricalEncoding
{
    /// <summary>id = hashed value mod <see cref="CriteoOptions.TableSize"/>; every table has TableSize rows. One pass, streams.</summary>
    Hash,

    /// <summary>
    /// Per column, the distinct hashed values over all rows loaded are ranked ascending and replaced by
    /// their rank; table t has exactly (distinct values of column t) rows. This is the reference
    /// recipe of the libtorch peer. Needs every row in memory before ids are final (in-memory path only).
    /// </summary>
    Vocabulary,
}

/// <summary>What a reader does with a line that breaks the format.</summary>
public enum MalformedPolicy
{
    /// <summary>Throw a <see cref="DataFormatException"/> at the first malformed line.</summary>
    Fail,

    /// <summary>Drop the line, count it, and remember the first few line numbers.</summary>
    Skip,
}

/// <summary>Options of the Criteo TSV readers. Defaults follow the peer's Q1 recipe.</summary>
public sealed record CriteoOptions
{
    /// <summary>Hashed categorical values are taken mod this (100,000 in the peer's recipe).</summary>
    public int TableSize { get; init; } = 100_000;

    public CategoricalEncoding Encoding { get; init; } = CategoricalEncoding.Hash;

    public MalformedPolicy Malformed { get; init; } = MalformedPolicy.Fail;

    /// <summary>Stop after this many good rows; 0 = all.</summary>
    public long MaxRows { get; init; }

    /// <summary>
    /// Vocabulary encoding with vocabularies fixed in advance (sorted distinct hashed values per
    /// categorical column, as saved at training time) instead of built from this file: ids are ranks in
    /// them, and a value they do not hold is treated like a missing value. Null builds them from the data.
    /// </summary>
    public IReadOnlyList<int[]>? FixedVocabularies { get; init; }

    /// <summary>How many skipped line numbers to keep for the report.</summary>
    public int ReportedLineNumbers { get; init; } = 10;

    internal void Validate()
    {
        if (TableSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(TableSize), TableSize, "CriteoOptions.TableSize must be > 0.");
        if (MaxRows < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxRows), MaxRows, "CriteoOptions.MaxRows must be >= 0 (0 = all rows).");
        if (ReportedLineNumbers < 0)
            throw new ArgumentOutOfRangeException(nameof(ReportedLineNumbers), ReportedLineNumbers, "must be >= 0.");
    }
}

/// <summary>Counts of a read: good rows, skipped (malformed) lines and the first skipped line numbers.</summary>
public sealed class CriteoReadStats
{
    private readonly List<long> _skippedLines = new();

    public long Rows { get; internal set; }
    public long SkippedLines { get; internal set; }

    /// <summary>1-based numbers of the first skipped lines (at most <see cref="CriteoOptions.ReportedLineNumbers"/>).</summary>
    public IReadOnlyList<long> FirstSkippedLineNumbers => _skippedLines;

    /// <summary>Message of the first skipped line, or null.</summary>
    public string? FirstSkipReason { get; private set; }

    internal void CopyFrom(CriteoReadStats other)
    {
        Rows = other.Rows;
        SkippedLines = other.SkippedLines;
        FirstSkipReason = other.FirstSkipReason;
        _skippedLines.Clear();
        _skippedLines.AddRange(other._skippedLines);
    }

    internal void RecordSkip(long line, string reason, int keep)
    {
        SkippedLines++;
        if (_skippedLines.Count < keep) _skippedLines.Add(line);
        FirstSkipReason ??= reason;
    }

    public override string ToString() =>
        SkippedLines == 0
            ? $"{Rows} rows, no malformed lines"
            : $"{Rows} rows, {SkippedLines} malformed lines skipped (first at lines {string.Join(", ", _skippedLines)}; first reason: {FirstSkipReason})";
}

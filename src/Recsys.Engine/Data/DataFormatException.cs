namespace Recsys.Engine.Data;

/// <summary>
/// A data file that does not follow its format: names the file, the 1-based line, the column
/// (when one is to blame), what was expected and what was found.
/// </summary>
public sealed class DataFormatException : Exception
{
    public string File { get; }

    /// <summary>1-based line number.</summary>
    public long Line { get; }

    /// <summary>Column name such as "I5" or "C12", or null when the whole line is wrong (field count).</summary>
    public string? Column { get; }

    public string Expected { get; }
    public string Actual { get; }

    public DataFormatException(string file, long line, string? column, string expected, string actual)
        : base(Format(file, line, column, expected, actual))
    {
        File = file;
        Line = line;
        Column = column;
        Expected = expected;
        Actual = actual;
    }

    private static string Format(string file, long line, string? column, string expected, string actual) =>
        column is null
            ? $"{file}: line {line}: expected {expected}, got {actual}."
            : $"{file}: line {line}, column {column}: expected {expected}, got {actual}.";
}

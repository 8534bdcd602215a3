namespace Recsys.Cli;

/// <summary>
/// Checks a results file option before the command's work starts: a bench or an evaluation can take many minutes, and
/// its results must not be lost to a path that could not be written at the end.
/// </summary>
public static class OutputFile
{
    /// <summary>
    /// Throws when <paramref name="path"/> (the value of <paramref name="option"/>) is empty, an existing directory, or
    /// in a directory that cannot be created; creates that directory otherwise.
    /// </summary>
    public static void Check(string option, string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException($"{option}: expected a file path, got an empty string.");
        if (Directory.Exists(path)) throw new ArgumentException($"{option} {path}: is a directory; expected a file path.");
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent is null) return;
        try
        {
            Directory.CreateDirectory(parent);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{option} {path}: cannot create its directory {parent} ({e.Message}).");
        }
    }
}

namespace Recsys.Engine.Checkpoints;

/// <summary>
/// Writes a file so that readers see either the old complete file or the new complete file, never a
/// partial one: write to <c>&lt;name&gt;.tmp-&lt;random&gt;</c> in the same directory (same file system, so
/// the rename is atomic), flush to disk (fsync), then rename over the target. If writing throws, the
/// temporary file is deleted and the target is untouched.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes UTF-8 text to <paramref name="path"/> through a temporary file and a rename.</summary>
    public static void WriteAllText(string path, string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        Write(path, s => s.Write(bytes));
    }

    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $"{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { /* best effort; the original exception matters */ }
            throw;
        }
    }
}

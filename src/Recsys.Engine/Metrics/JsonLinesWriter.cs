using System.Text;
using System.Text.Json;

namespace Recsys.Engine.Metrics;

/// <summary>
/// Appends one JSON object per line (JSON Lines) and flushes after every line, so a crash loses at
/// most the line being written and another process can tail the file while training runs.
/// </summary>
public sealed class JsonLinesWriter : IDisposable
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = false,
        // A metric can be NaN (e.g. AUC of a one-class set): written as the string "NaN" instead of failing.
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    private readonly StreamWriter _writer;

    public string Path { get; }

    public JsonLinesWriter(string path, bool append = true)
    {
        ArgumentNullException.ThrowIfNull(path);
        Path = path;
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        var fs = new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read);
        _writer = new StreamWriter(fs, new UTF8Encoding(false)) { NewLine = "\n" };
    }

    /// <summary>Serializes <paramref name="record"/> (an anonymous object, a record, a JsonObject, a dictionary) as one line.</summary>
    public void Write(object record)
    {
        ArgumentNullException.ThrowIfNull(record);
        string json = JsonSerializer.Serialize(record, record.GetType(), Options);
        if (!json.StartsWith('{'))
            throw new ArgumentException($"JsonLinesWriter: each line must be a JSON object, got {json[..Math.Min(40, json.Length)]} ({record.GetType().Name}).", nameof(record));
        _writer.WriteLine(json);
        _writer.Flush();
    }

    public void Dispose() => _writer.Dispose();
}

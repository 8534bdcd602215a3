using System.IO.Compression;

namespace Recsys.Engine.Data;

/// <summary>
/// Reads a text file line by line as UTF-8 byte spans from one reusable buffer, so memory stays
/// bounded whatever the file size and no string is made per line. Gzip is detected by its magic
/// bytes (1F 8B), not by the file name. LF and CRLF line ends are accepted; a last line without a
/// newline is still a line.
/// </summary>
internal sealed class LineReader : IDisposable
{
    /// <summary>Longest accepted line; a longer one means the file is not line-oriented text.</summary>
    public const int MaxLineBytes = 64 << 20;

    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start, _end;
    private bool _eof;

    public string Path { get; }

    /// <summary>1-based number of the line last returned by <see cref="TryReadLine"/>.</summary>
    public long LineNumber { get; private set; }

    public LineReader(string path, int bufferBytes = 1 << 20)
    {
        Path = path;
        _stream = OpenMaybeGzip(path);
        _buffer = new byte[bufferBytes];
    }

    /// <summary>Opens <paramref name="path"/>, wrapping it in a GZipStream when it starts with the gzip magic.</summary>
    public static Stream OpenMaybeGzip(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Data file not found: {path}", path);
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> magic = stackalloc byte[2];
        int n = fs.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
        fs.Position = 0;
        if (n == 2 && magic[0] == 0x1F && magic[1] == 0x8B)
            return new GZipStream(fs, CompressionMode.Decompress);
        return fs;
    }

    /// <summary>Next line without its line end, valid until the next call; false at end of file.</summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            int nl = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                line = Trim(_buffer.AsSpan(_start, nl));
                _start += nl + 1;
                LineNumber++;
                return true;
            }
            if (_eof)
            {
                if (_start < _end)
                {
                    line = Trim(_buffer.AsSpan(_start, _end - _start));
                    _start = _end;
                    LineNumber++;
                    return true;
                }
                line = default;
                return false;
            }
            Fill();
        }
    }

    private static ReadOnlySpan<byte> Trim(Span<byte> s) => s.Length > 0 && s[^1] == (byte)'\r' ? s[..^1] : s;

    private void Fill()
    {
        // Move the partial line to the front; grow only when one line fills the whole buffer.
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            if (_buffer.Length >= MaxLineBytes)
                throw new DataFormatException(Path, LineNumber + 1, null, $"a line of at most {MaxLineBytes} bytes", "a longer line (not a line-oriented text file?)");
            Array.Resize(ref _buffer, Math.Min(MaxLineBytes, _buffer.Length * 2));
        }
        int read = _stream.Read(_buffer, _end, _buffer.Length - _end);
        if (read == 0) _eof = true;
        _end += read;
    }

    public void Dispose() => _stream.Dispose();
}

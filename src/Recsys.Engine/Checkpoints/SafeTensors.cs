using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Recsys.Engine.Core;

namespace Recsys.Engine.Checkpoints;

/// <summary>One tensor read from a safetensors file. Exactly one data array is set, per <see cref="DType"/>.</summary>
public sealed record SafeTensor(string DType, int[] Dims, float[]? Float32 = null, int[]? Int32 = null, long[]? Int64 = null)
{
    /// <summary>Shape (rank &lt;= 4, as the engine's <see cref="Core.Shape"/> allows).</summary>
    public Shape Shape => Shape.Of(Dims);

    /// <summary>The float32 data; throws if the tensor is of another dtype.</summary>
    public float[] Floats => Float32 ?? throw new InvalidOperationException($"Tensor has dtype {DType}, not F32.");
}

/// <summary>Contents of a safetensors file: tensors by name plus the string metadata.</summary>
public sealed record SafeTensorsFile(IReadOnlyDictionary<string, SafeTensor> Tensors, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// The safetensors format (readable by PyTorch, JAX, candle, ...): an 8-byte little-endian u64
/// header length N, N bytes of UTF-8 JSON
/// <c>{"__metadata__": {..}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..}</c>
/// padded with spaces to a multiple of 8, then the raw little-endian data (offsets relative to the
/// data section). Tensors are laid out sorted by name, as the reference writer does for one dtype.
/// </summary>
public static class SafeTensors
{
    /// <summary>Largest header accepted on read (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Writes float32 tensors atomically (temporary file, fsync, rename). Names must be unique and non-empty.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        // The enumeration happens inside the atomic write, so a failing producer leaves no file behind.
        AtomicFile.Write(path, stream => WriteTo(stream, tensors, metadata));
    }

    /// <summary>Writes the safetensors bytes to <paramref name="stream"/>.</summary>
    public static void WriteTo(Stream stream, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = new List<KeyValuePair<string, Tensor>>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var kv in tensors)
        {
            if (string.IsNullOrEmpty(kv.Key) || kv.Key == "__metadata__")
                throw new ArgumentException($"SafeTensors.Write: invalid tensor name \"{kv.Key}\".");
            ArgumentNullException.ThrowIfNull(kv.Value, kv.Key);
            if (!names.Add(kv.Key)) throw new ArgumentException($"SafeTensors.Write: duplicate tensor name \"{kv.Key}\".");
            list.Add(kv);
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));

        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata.OrderBy(k => k.Key, StringComparer.Ordinal)) w.WriteString(kv.Key, kv.Value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                for (int i = 0; i < t.Rank; i++) w.WriteNumberValue(t.Shape[i]);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                offset += 4L * t.Length;
                w.WriteNumberValue(offset);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - json.Length % 8) % 8);
        for (int i = 0; i < pad; i++) json.WriteByte((byte)' ');

        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        stream.Write(len);
        json.Position = 0;
        json.CopyTo(stream);
        Span<byte> b = stackalloc byte[4];
        foreach (var (_, t) in list)
        {
            // A device tensor is copied to the host first (one tensor at a time, so the host copy stays small).
            ReadOnlySpan<float> data = t.IsOnDevice ? t.ToArray() : t.ReadOnlySpan;
            if (BitConverter.IsLittleEndian) stream.Write(MemoryMarshal.AsBytes(data));
            else
                foreach (float v in data) { BinaryPrimitives.WriteSingleLittleEndian(b, v); stream.Write(b); }
        }
    }

    /// <summary>
    /// Reads and validates a safetensors file (F32, I32, I64). Checks: header length against the file
    /// size, well-formed JSON, known dtypes, shape sizes matching offsets, offsets contiguous from 0 and
    /// non-overlapping, and the data section ending exactly at the end of the file. Any violation is a
    /// <see cref="CheckpointException"/> naming the file and the problem.
    /// </summary>
    public static SafeTensorsFile Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new CheckpointException(path, "file not found.");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new CheckpointException(path, $"cannot read: {e.Message}", e); }
        return Parse(path, bytes);
    }

    private static SafeTensorsFile Parse(string path, byte[] bytes)
    {
        long fileLen = bytes.Length;
        if (fileLen < 8) throw new CheckpointException(path, $"truncated: {fileLen} bytes, fewer than the 8-byte header length.");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > (ulong)MaxHeaderBytes)
            throw new CheckpointException(path, $"corrupted header: header length {n} exceeds the limit of {MaxHeaderBytes} bytes (not a safetensors file?).");
        if (8 + (long)n > fileLen)
            throw new CheckpointException(path, $"truncated: header says the header ends at byte {8 + (long)n}, file has {fileLen} bytes.");
        long dataStart = 8 + (long)n, dataLen = fileLen - dataStart;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n)); }
        catch (JsonException e) { throw new CheckpointException(path, $"corrupted header: not valid JSON ({e.Message}).", e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new CheckpointException(path, $"corrupted header: expected a JSON object, got {doc.RootElement.ValueKind}.");

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<(string Name, string DType, int[] Dims, long Begin, long End)>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__")
            {
                if (p.Value.ValueKind != JsonValueKind.Object)
                    throw new CheckpointException(path, "corrupted header: __metadata__ must be an object of strings.");
                foreach (var m in p.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String)
                        throw new CheckpointException(path, $"corrupted header: __metadata__ value \"{m.Name}\" must be a string, got {m.Value.ValueKind}.");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            entries.Add(ParseEntry(path, p));
        }

        // Offsets must tile [0, dataLen) exactly: sorted by begin, each begins where the previous ended.
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expect = 0;
        foreach (var e in entries)
        {
            if (e.Begin != expect)
                throw new CheckpointException(path, e.Begin < expect
                    ? $"corrupted header: tensor \"{e.Name}\" data [{e.Begin}, {e.End}) overlaps the previous tensor (ends at {expect})."
                    : $"corrupted header: gap in the data section: tensor \"{e.Name}\" begins at {e.Begin}, expected {expect}.");
            expect = e.End;
        }
        if (expect > dataLen)
            throw new CheckpointException(path, $"truncated: header says data ends at byte {dataStart + expect}, file has {fileLen} bytes.");
        if (expect < dataLen)
            throw new CheckpointException(path, $"corrupted: {dataLen - expect} unexpected trailing bytes after the data section (data ends at byte {dataStart + expect}, file has {fileLen} bytes).");

        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            var src = bytes.AsSpan((int)(dataStart + e.Begin), (int)(e.End - e.Begin));
            tensors[e.Name] = e.DType switch
            {
                "F32" => new SafeTensor("F32", e.Dims, Float32: ReadLe<float>(src)),
                "I32" => new SafeTensor("I32", e.Dims, Int32: ReadLe<int>(src)),
                _ => new SafeTensor("I64", e.Dims, Int64: ReadLe<long>(src)),
            };
        }
        return new SafeTensorsFile(tensors, metadata);
    }

    private static (string, string, int[], long, long) ParseEntry(string path, JsonProperty p)
    {
        var v = p.Value;
        if (v.ValueKind != JsonValueKind.Object
            || !v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new CheckpointException(path, $"corrupted header: tensor \"{p.Name}\" needs dtype (string), shape (array) and data_offsets ([begin, end]); got {v.GetRawText()}.");
        string dtype = dt.GetString()!;
        int elem = dtype switch { "F32" => 4, "I32" => 4, "I64" => 8, _ => 0 };
        if (elem == 0) throw new CheckpointException(path, $"tensor \"{p.Name}\": unsupported dtype {dtype} (expected F32, I32 or I64).");
        var dims = new int[sh.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out dims[i]) || dims[i] < 0)
                throw new CheckpointException(path, $"corrupted header: tensor \"{p.Name}\" has a bad shape {sh.GetRawText()}.");
            count *= dims[i++];
        }
        if (dims.Length > Shape.MaxRank)
            throw new CheckpointException(path, $"tensor \"{p.Name}\" has rank {dims.Length}; the engine supports rank <= {Shape.MaxRank}.");
        long begin = -1, end = -1;
        var o = off.EnumerateArray().ToArray();
        if (!o[0].TryGetInt64(out begin) || !o[1].TryGetInt64(out end) || begin < 0 || end < begin)
            throw new CheckpointException(path, $"corrupted header: tensor \"{p.Name}\" has bad data_offsets {off.GetRawText()}.");
        if (end - begin != count * elem)
            throw new CheckpointException(path, $"corrupted header: tensor \"{p.Name}\" of shape {sh.GetRawText()} and dtype {dtype} needs {count * elem} bytes, data_offsets span {end - begin}.");
        return (p.Name, dtype, dims, begin, end);
    }

    private static T[] ReadLe<T>(ReadOnlySpan<byte> src) where T : unmanaged
    {
        var a = MemoryMarshal.Cast<byte, T>(src).ToArray();
        if (!BitConverter.IsLittleEndian)
        {
            var bytes = MemoryMarshal.AsBytes(a.AsSpan());
            int size = bytes.Length / Math.Max(1, a.Length);
            for (int i = 0; i < bytes.Length; i += size) bytes.Slice(i, size).Reverse();
        }
        return a;
    }
}

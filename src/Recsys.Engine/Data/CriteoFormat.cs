using System.Buffers.Text;
using System.Globalization;

namespace Recsys.Engine.Data;

/// <summary>
/// The Criteo TSV format: <c>label \t I1..I13 \t C1..C26</c>, 40 tab-separated fields, empty = missing,
/// and the value transforms of the reference recipe (dense log(1+x), categorical hex/FNV hashing).
/// </summary>
public static class CriteoFormat
{
    public const int DenseCount = 13;
    public const int SparseCount = 26;
    public const int FieldCount = 1 + DenseCount + SparseCount;

    private static readonly string[] Names = BuildNames();

    private static string[] BuildNames()
    {
        var n = new string[FieldCount];
        n[0] = "label";
        for (int i = 0; i < DenseCount; i++) n[1 + i] = "I" + (i + 1).ToString(CultureInfo.InvariantCulture);
        for (int i = 0; i < SparseCount; i++) n[1 + DenseCount + i] = "C" + (i + 1).ToString(CultureInfo.InvariantCulture);
        return n;
    }

    /// <summary>Name of field <paramref name="field"/> (0 = "label", 1 = "I1", 14 = "C1").</summary>
    public static string ColumnName(int field) => Names[field];

    /// <summary>Dense transform: x -> log(1 + x) for x &gt; 0, else 0 (missing is 0 too).</summary>
    public static float DenseTransform(double x) => x > 0 ? (float)Math.Log(1.0 + x) : 0f;

    /// <summary>
    /// Categorical hash before the table modulus: empty -> 0; up to 16 hex digits -> their unsigned
    /// value; anything else -> FNV-1a-64 of the UTF-8 bytes.
    /// </summary>
    public static ulong HashCategorical(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length == 0) return 0;
        if (utf8.Length <= 16 && ulong.TryParse(utf8, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v))
            return v;
        return Fnv1a64(utf8);
    }

    /// <summary>String overload of <see cref="HashCategorical(ReadOnlySpan{byte})"/>.</summary>
    public static ulong HashCategorical(string value) => HashCategorical(System.Text.Encoding.UTF8.GetBytes(value));

    /// <summary>FNV-1a, 64-bit: h = (h ^ byte) * 1099511628211 from offset basis 14695981039346656037.</summary>
    public static ulong Fnv1a64(ReadOnlySpan<byte> bytes)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in bytes) { h ^= b; h *= 1099511628211UL; }
        return h;
    }

    /// <summary>
    /// Parses one line. On success fills label, dense [13] (transformed) and hashed [26] (hash mod
    /// <paramref name="tableSize"/>). On failure returns false and describes the problem (allocates
    /// only then).
    /// </summary>
    internal static bool TryParseLine(ReadOnlySpan<byte> line, int tableSize, out float label, Span<float> dense, Span<int> hashed,
        out string? column, out string expected, out string actual)
    {
        label = 0;
        column = null;
        expected = actual = "";
        int tabs = line.Count((byte)'\t');
        if (tabs != FieldCount - 1)
        {
            expected = $"{FieldCount} tab-separated fields";
            actual = (tabs + 1).ToString(CultureInfo.InvariantCulture);
            return false;
        }
        int field = 0;
        var rest = line;
        while (true)
        {
            int t = rest.IndexOf((byte)'\t');
            var f = t < 0 ? rest : rest[..t];
            if (field == 0)
            {
                if (f.Length == 1 && (f[0] == (byte)'0' || f[0] == (byte)'1')) label = f[0] - (byte)'0';
                else return Fail(0, "label 0 or 1", f, out column, out expected, out actual);
            }
            else if (field <= DenseCount)
            {
                double x = 0;
                if (f.Length > 0 && !TryParseNumber(f, out x))
                    return Fail(field, "an integer or empty", f, out column, out expected, out actual);
                dense[field - 1] = DenseTransform(x);
            }
            else
            {
                hashed[field - 1 - DenseCount] = (int)(HashCategorical(f) % (ulong)tableSize);
            }
            if (t < 0) break;
            rest = rest[(t + 1)..];
            field++;
        }
        return true;
    }

    // Integers are the format; decimals are accepted too (the peer's parser does), non-finite values are not.
    private static bool TryParseNumber(ReadOnlySpan<byte> f, out double x)
    {
        if (Utf8Parser.TryParse(f, out long l, out int used) && used == f.Length) { x = l; return true; }
        if (Utf8Parser.TryParse(f, out x, out used) && used == f.Length && double.IsFinite(x)) return true;
        x = 0;
        return false;
    }

    private static bool Fail(int field, string exp, ReadOnlySpan<byte> f, out string? column, out string expected, out string actual)
    {
        column = ColumnName(field);
        expected = exp;
        const int Max = 40;
        string text = System.Text.Encoding.UTF8.GetString(f.Length > Max ? f[..Max] : f);
        actual = f.Length == 0 ? "an empty field" : $"\"{text}{(f.Length > Max ? "..." : "")}\"";
        return false;
    }
}

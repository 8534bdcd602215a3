namespace Recsys.Engine.Core;

/// <summary>
/// Seeded random numbers for initialisation and data generation (xoshiro256**: fast, and the same
/// sequence on every platform and runtime version, unlike System.Random's unseeded algorithm choice).
/// </summary>
public sealed class Rng
{
    private ulong _s0, _s1, _s2, _s3;
    private double? _spareNormal;

    public Rng(ulong seed)
    {
        // SplitMix64 expands the seed into the 256-bit state.
        ulong x = seed;
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextULong()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [lo, hi).</summary>
    public double Uniform(double lo, double hi) => lo + (hi - lo) * NextDouble();

    /// <summary>Uniform integer in [0, maxExclusive).</summary>
    public int NextInt(int maxExclusive)
    {
        if (maxExclusive <= 0) throw new ArgumentOutOfRangeException(nameof(maxExclusive), maxExclusive, "must be > 0");
        return (int)((NextULong() >> 32) * (ulong)maxExclusive >> 32);
    }

    /// <summary>Standard normal (Box–Muller, the spare value kept for the next call).</summary>
    public double Normal()
    {
        if (_spareNormal is { } s) { _spareNormal = null; return s; }
        double u1, u2;
        do u1 = NextDouble(); while (u1 <= double.Epsilon);
        u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        _spareNormal = r * Math.Sin(2 * Math.PI * u2);
        return r * Math.Cos(2 * Math.PI * u2);
    }

    public double Normal(double mean, double std) => mean + std * Normal();

    public void FillNormal(Span<float> dst, double mean, double std)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = (float)Normal(mean, std);
    }

    public void FillUniform(Span<float> dst, double lo, double hi)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = (float)Uniform(lo, hi);
    }

    /// <summary>An independent generator derived from this one (for per-worker or per-table streams).</summary>
    public Rng Fork() => new(NextULong());
}

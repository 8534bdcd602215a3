using Recsys.Engine.Core;

namespace Recsys.Tests.Support;

/// <summary>Random, never-zero test data with fixed seeds.</summary>
public static class TestData
{
    /// <summary>Uniform values in ±[lo, hi] (both signs, magnitude at least <paramref name="lo"/> so ReLU kinks are avoided).</summary>
    public static float[] Floats(int n, int seed, float lo = 0.05f, float hi = 1f)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            float mag = lo + (hi - lo) * (float)r.NextDouble();
            a[i] = r.Next(2) == 0 ? -mag : mag;
        }
        return a;
    }

    public static Tensor Tensor(Shape shape, int seed, bool requiresGrad = true, float lo = 0.05f, float hi = 1f)
        => new(shape, Floats(shape.Size, seed, lo, hi), requiresGrad);

    public static Parameter Parameter(string name, Shape shape, int seed, float lo = 0.05f, float hi = 1f)
        => new(name, new Tensor(shape, Floats(shape.Size, seed, lo, hi)));

    public static int[] Ints(int n, int maxExclusive, int seed)
    {
        var r = new Random(seed);
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = r.Next(maxExclusive);
        return a;
    }

    /// <summary>Sizes 0..67 (every SIMD tail of Vector128/256/512 and a few full vectors) plus some larger odd ones.</summary>
    public static IEnumerable<int> TailSizes()
    {
        for (int i = 0; i <= 67; i++) yield return i;
        yield return 127;
        yield return 129;
        yield return 255;
        yield return 1031;
    }

    /// <summary>Max |a-b| / (atol + rtol |b|) over all elements; &lt;= 1 means within tolerance.</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double rtol, double atol, string what)
    {
        if (actual.Length != expected.Length)
            throw new NUnit.Framework.AssertionException($"{what}: length {actual.Length} != expected {expected.Length}");
        for (int i = 0; i < actual.Length; i++)
        {
            double diff = Math.Abs(actual[i] - expected[i]);
            if (!(diff <= atol + rtol * Math.Abs(expected[i])))
                throw new NUnit.Framework.AssertionException(
                    $"{what}: element {i} = {actual[i]:R}, expected {expected[i]:R} (|diff| {diff:E3} > atol {atol:E1} + rtol {rtol:E1}·|expected|)");
        }
    }

    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double rtol, double atol, string what)
    {
        var e = new double[expected.Length];
        for (int i = 0; i < e.Length; i++) e[i] = expected[i];
        AssertClose(actual, e, rtol, atol, what);
    }
}

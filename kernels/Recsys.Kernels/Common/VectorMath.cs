using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Recsys.Kernels.Common;

/// <summary>Vectorised transcendental functions the kernels need in their inner loops.</summary>
internal static class VectorMath
{
    /// <summary>
    /// e^x per lane for x ≤ 0 (softmax after subtracting the row max), ~2 ulp: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split
    /// in a high and a low part so r is exact), e^r by a degree-6 polynomial, 2^n put straight into the exponent bits.
    /// Lanes below −87.3 (including −∞) give exactly 0. The runtime's Vector512.Exp has no hardware-accelerated
    /// float path (~90 ns a call).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpNonPositive(Vector512<float> x)
    {
        var underflow = Vector512.LessThan(x, Vector512.Create(-87.3f));
        x = Vector512.Max(x, Vector512.Create(-87.3f));
        var n = Vector512.Round(x * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var poly = Vector512.Create(1.9875691500e-4f);
        poly = Vector512.FusedMultiplyAdd(poly, r, Vector512.Create(1.3981999507e-3f));
        poly = Vector512.FusedMultiplyAdd(poly, r, Vector512.Create(8.3334519073e-3f));
        poly = Vector512.FusedMultiplyAdd(poly, r, Vector512.Create(4.1665795894e-2f));
        poly = Vector512.FusedMultiplyAdd(poly, r, Vector512.Create(1.6666665459e-1f));
        poly = Vector512.FusedMultiplyAdd(poly, r, Vector512.Create(5.0000001201e-1f));
        poly = Vector512.FusedMultiplyAdd(poly, r * r, r + Vector512<float>.One);
        var pow2n = (Vector512.ConvertToInt32(n) + Vector512.Create(127)) << 23;
        var result = poly * pow2n.AsSingle();
        return Vector512.ConditionalSelect(underflow.AsInt32(), Vector512<int>.Zero, result.AsInt32()).AsSingle();
    }

    /// <summary>
    /// 1 / (1 + e^−x) per lane, stable for any x: with e = e^−|x| ∈ (0, 1], σ = 1/(1+e) for x ≥ 0 and e/(1+e) for x &lt; 0,
    /// so the exponential never overflows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sigmoid(Vector512<float> x)
    {
        var e = ExpNonPositive(-Vector512.Abs(x));
        var inv = Vector512<float>.One / (Vector512<float>.One + e);
        return Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, Vector512<float>.Zero), inv, e * inv);
    }
}

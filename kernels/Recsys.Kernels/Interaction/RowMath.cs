using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Recsys.Kernels.Interaction;

/// <summary>
/// Small-row SIMD building blocks shared by the interaction and normalization kernels. Each goes
/// widest vector first (Vector512 → 256 → 128), then a scalar tail. Every tier is a loop, not a
/// single step, so the result is right whichever widths the machine (or a test run with SIMD
/// disabled) accelerates. Pointers, because callers run inside parallel struct bodies that cannot
/// hold spans; the callers pin and bounds-check at their public entry points.
/// </summary>
internal static unsafe class RowMath
{
    /// <summary>Σ_i a[i]·b[i] over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            // Two accumulators hide the FMA latency for the common D = 32 / 64 rows.
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
            }
            for (; i + 16 <= n; i += 16)
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
            sum += Vector512.Sum(acc0 + acc1);
        }
        if (Vector256.IsHardwareAccelerated && n - i >= 8)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
            }
            for (; i + 8 <= n; i += 8)
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
            sum += Vector256.Sum(acc0 + acc1);
        }
        if (Vector128.IsHardwareAccelerated && n - i >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4)
                acc = Vector128.FusedMultiplyAdd(Vector128.Load(a + i), Vector128.Load(b + i), acc);
            sum += Vector128.Sum(acc);
        }
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>
    /// dst[0..n) (+)= Σ_k w[k·wStride] · rows[k·rowStride + 0..n): a weighted sum of <paramref name="count"/>
    /// rows. Accumulates in registers over k and touches dst once, so the rows are the only stream.
    /// </summary>
    public static void WeightedRowSum(float* w, int wStride, float* rows, int rowStride, int count, float* dst, int n, bool accumulate)
    {
        int d = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            // Four independent chains of FMAs (64 floats) per pass over the rows.
            for (; d + 64 <= n; d += 64)
            {
                var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero;
                var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
                float* r = rows + d;
                for (int k = 0; k < count; k++, r += rowStride)
                {
                    var wk = Vector512.Create(w[k * wStride]);
                    a0 = Vector512.FusedMultiplyAdd(wk, Vector512.Load(r), a0);
                    a1 = Vector512.FusedMultiplyAdd(wk, Vector512.Load(r + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(wk, Vector512.Load(r + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(wk, Vector512.Load(r + 48), a3);
                }
                if (accumulate)
                {
                    a0 += Vector512.Load(dst + d); a1 += Vector512.Load(dst + d + 16);
                    a2 += Vector512.Load(dst + d + 32); a3 += Vector512.Load(dst + d + 48);
                }
                a0.Store(dst + d); a1.Store(dst + d + 16); a2.Store(dst + d + 32); a3.Store(dst + d + 48);
            }
            for (; d + 32 <= n; d += 32)
            {
                var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero;
                float* r = rows + d;
                for (int k = 0; k < count; k++, r += rowStride)
                {
                    var wk = Vector512.Create(w[k * wStride]);
                    a0 = Vector512.FusedMultiplyAdd(wk, Vector512.Load(r), a0);
                    a1 = Vector512.FusedMultiplyAdd(wk, Vector512.Load(r + 16), a1);
                }
                if (accumulate) { a0 += Vector512.Load(dst + d); a1 += Vector512.Load(dst + d + 16); }
                a0.Store(dst + d); a1.Store(dst + d + 16);
            }
            for (; d + 16 <= n; d += 16)
            {
                var a0 = Vector512<float>.Zero;
                float* r = rows + d;
                for (int k = 0; k < count; k++, r += rowStride)
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(w[k * wStride]), Vector512.Load(r), a0);
                if (accumulate) a0 += Vector512.Load(dst + d);
                a0.Store(dst + d);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; d + 32 <= n; d += 32)
            {
                var a0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero;
                var a2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero;
                float* r = rows + d;
                for (int k = 0; k < count; k++, r += rowStride)
                {
                    var wk = Vector256.Create(w[k * wStride]);
                    a0 = Vector256.FusedMultiplyAdd(wk, Vector256.Load(r), a0);
                    a1 = Vector256.FusedMultiplyAdd(wk, Vector256.Load(r + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(wk, Vector256.Load(r + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(wk, Vector256.Load(r + 24), a3);
                }
                if (accumulate)
                {
                    a0 += Vector256.Load(dst + d); a1 += Vector256.Load(dst + d + 8);
                    a2 += Vector256.Load(dst + d + 16); a3 += Vector256.Load(dst + d + 24);
                }
                a0.Store(dst + d); a1.Store(dst + d + 8); a2.Store(dst + d + 16); a3.Store(dst + d + 24);
            }
            for (; d + 8 <= n; d += 8)
            {
                var a0 = Vector256<float>.Zero;
                float* r = rows + d;
                for (int k = 0; k < count; k++, r += rowStride)
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[k * wStride]), Vector256.Load(r), a0);
                if (accumulate) a0 += Vector256.Load(dst + d);
                a0.Store(dst + d);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; d + 4 <= n; d += 4)
            {
                var a0 = Vector128<float>.Zero;
                float* r = rows + d;
                for (int k = 0; k < count; k++, r += rowStride)
                    a0 = Vector128.FusedMultiplyAdd(Vector128.Create(w[k * wStride]), Vector128.Load(r), a0);
                if (accumulate) a0 += Vector128.Load(dst + d);
                a0.Store(dst + d);
            }
        }
        for (; d < n; d++)
        {
            float s = 0f;
            float* r = rows + d;
            for (int k = 0; k < count; k++, r += rowStride) s += w[k * wStride] * *r;
            dst[d] = accumulate ? dst[d] + s : s;
        }
    }

    /// <summary>
    /// Several weighted row sums sharing their rows — a small matrix product:
    /// <c>dst[r·dstStride + 0..n) (+)= Σ_k w[r·wRowStride + k·wColStride] · rows[k·rowStride + 0..n)</c> for r in
    /// [0, outRows). Four output rows at a time share each loaded row (4 × 2 Vector512 accumulators: enough
    /// independent FMA chains to hide their latency, which one row of 32 columns cannot); strides let the same
    /// loop read w transposed (wRowStride 1, wColStride = its row length).
    /// </summary>
    public static void WeightedRowSums(float* w, int wRowStride, int wColStride, int outRows, float* rows, int rowStride, int count,
        float* dst, int dstStride, int n, bool accumulate)
    {
        int r = 0;
        if (Vector512.IsHardwareAccelerated && n >= 32)
        {
            int n32 = n & ~31;
            for (; r + 4 <= outRows; r += 4)
            {
                float* w0 = w + (long)r * wRowStride, w1 = w0 + wRowStride, w2 = w1 + wRowStride, w3 = w2 + wRowStride;
                float* d0 = dst + (long)r * dstStride, d1 = d0 + dstStride, d2 = d1 + dstStride, d3 = d2 + dstStride;
                for (int c = 0; c < n32; c += 32)
                {
                    var a00 = Vector512<float>.Zero; var a01 = a00; var a10 = a00; var a11 = a00;
                    var a20 = a00; var a21 = a00; var a30 = a00; var a31 = a00;
                    float* src = rows + c;
                    long wk = 0;
                    for (int k = 0; k < count; k++, src += rowStride, wk += wColStride)
                    {
                        var x0 = Vector512.Load(src);
                        var x1 = Vector512.Load(src + 16);
                        var s0 = Vector512.Create(w0[wk]);
                        a00 = Vector512.FusedMultiplyAdd(s0, x0, a00); a01 = Vector512.FusedMultiplyAdd(s0, x1, a01);
                        var s1 = Vector512.Create(w1[wk]);
                        a10 = Vector512.FusedMultiplyAdd(s1, x0, a10); a11 = Vector512.FusedMultiplyAdd(s1, x1, a11);
                        var s2 = Vector512.Create(w2[wk]);
                        a20 = Vector512.FusedMultiplyAdd(s2, x0, a20); a21 = Vector512.FusedMultiplyAdd(s2, x1, a21);
                        var s3 = Vector512.Create(w3[wk]);
                        a30 = Vector512.FusedMultiplyAdd(s3, x0, a30); a31 = Vector512.FusedMultiplyAdd(s3, x1, a31);
                    }
                    Store2(d0 + c, a00, a01, accumulate); Store2(d1 + c, a10, a11, accumulate);
                    Store2(d2 + c, a20, a21, accumulate); Store2(d3 + c, a30, a31, accumulate);
                }
                if (n32 < n)
                {
                    WeightedRowSum(w0, wColStride, rows + n32, rowStride, count, d0 + n32, n - n32, accumulate);
                    WeightedRowSum(w1, wColStride, rows + n32, rowStride, count, d1 + n32, n - n32, accumulate);
                    WeightedRowSum(w2, wColStride, rows + n32, rowStride, count, d2 + n32, n - n32, accumulate);
                    WeightedRowSum(w3, wColStride, rows + n32, rowStride, count, d3 + n32, n - n32, accumulate);
                }
            }
        }
        for (; r < outRows; r++)
            WeightedRowSum(w + (long)r * wRowStride, wColStride, rows, rowStride, count, dst + (long)r * dstStride, n, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store2(float* dst, Vector512<float> a0, Vector512<float> a1, bool accumulate)
    {
        if (accumulate) { a0 += Vector512.Load(dst); a1 += Vector512.Load(dst + 16); }
        a0.Store(dst); a1.Store(dst + 16);
    }

    /// <summary>dst[i] += src[i].</summary>
    public static void AddInPlace(float* src, float* dst, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16) (Vector512.Load(dst + i) + Vector512.Load(src + i)).Store(dst + i);
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8) (Vector256.Load(dst + i) + Vector256.Load(src + i)).Store(dst + i);
        if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4) (Vector128.Load(dst + i) + Vector128.Load(src + i)).Store(dst + i);
        for (; i < n; i++) dst[i] += src[i];
    }

    /// <summary>dst[i] = src[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(float* src, float* dst, int n) =>
        Buffer.MemoryCopy(src, dst, (long)n * sizeof(float), (long)n * sizeof(float));

    /// <summary>
    /// dst[c·dstStride + r] = src[r·srcStride + c] for r &lt; rows, c &lt; cols. Whole 8 x 8 blocks are transposed in
    /// registers (24 shuffles per 64 elements); a scalar loop with scattered stores cost as much as the small products
    /// these transposes feed (attention heads, the dot interaction's Tᵀ).
    /// </summary>
    public static void Transpose(float* src, long srcStride, int rows, int cols, float* dst, long dstStride)
    {
        int r = 0;
        if (Avx.IsSupported && cols % 8 == 0)
        {
            for (; r + 8 <= rows; r += 8)
                for (int c = 0; c < cols; c += 8)
                    Transpose8x8(src + r * srcStride + c, srcStride, dst + c * dstStride + r, dstStride);
        }
        for (int c = 0; c < cols; c++)
        {
            float* col = src + c;
            float* d = dst + c * dstStride;
            for (int i = r; i < rows; i++) d[i] = col[i * srcStride];
        }
    }

    /// <summary>dst[c·dstStride + r] = src[r·srcStride + c] for an 8 x 8 block (unpack, shuffle, 128-bit lane permute).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, long srcStride, float* dst, long dstStride)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + 2 * srcStride); var r3 = Avx.LoadVector256(src + 3 * srcStride);
        var r4 = Avx.LoadVector256(src + 4 * srcStride); var r5 = Avx.LoadVector256(src + 5 * srcStride);
        var r6 = Avx.LoadVector256(src + 6 * srcStride); var r7 = Avx.LoadVector256(src + 7 * srcStride);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(u3, u7, 0x31));
    }
}

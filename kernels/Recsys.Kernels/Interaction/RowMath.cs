using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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

    /// <summary>Column sums over a row-major [rows, cols] block, for the column range [c0, c1): dst[c] (+)= Σ_r x[r, c].</summary>
    public static void ColumnSum(float* x, int rows, int cols, int c0, int c1, float* dst, bool accumulate)
    {
        if (!accumulate) new Span<float>(dst + c0, c1 - c0).Clear();
        for (int r = 0; r < rows; r++)
            AddInPlace(x + (long)r * cols + c0, dst + c0, c1 - c0);
    }
}

using Recsys.Kernels.Common;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Recsys.Kernels.Gemm;

// Register-tiled micro-kernels: C[MR, NR] (+)= Apanel[kc, MR]ᵀ · Bpanel[kc, NR] over packed, unit-stride panels.
// Each output element is one FMA chain in k order, so the result does not depend on how the caller tiles.
public static partial class GemmKernels
{
    /// <summary>8×32 tile over packed panels (A steps 8, B steps 32).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void Kernel8x32(int kc, float* a, float* b, float* c, long ldc, bool add) =>
        Kernel8x32Core(kc, a, 1, 8, b, 32, c, ldc, add, null, Activation.None);

    /// <summary>
    /// 8×32 tile reading A unpacked from a row-major matrix (row stride <paramref name="lda"/>): eight
    /// sequential streams that the prefetchers follow, which saves the k-major repacking of A. With
    /// <paramref name="bias"/> / <paramref name="act"/> it is the last k block of a Linear (see <see cref="Store512"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void Kernel8x32RowMajorA(int kc, float* a, long lda, float* b, float* c, long ldc, bool add,
        float* bias, Activation act) =>
        Kernel8x32Core(kc, a, lda, 1, b, 32, c, ldc, add, bias, act);

    /// <summary>8×32 tile reading A and B rows in place with run-time steps (the long-k Aᵀ·B path).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void Kernel8x32Strided(int kc, float* a, long aStep, float* b, long bStep, float* c, long ldc, bool add) =>
        Kernel8x32Core(kc, a, 1, aStep, b, bStep, c, ldc, add, null, Activation.None);

    /// <summary>
    /// The 8×32 micro-kernel: 16 Vector512 accumulators; per k step 2 loads of B, 8 broadcasts of A, 16 FMAs. Row r of
    /// A at step p is a[r·aRow + p·aStep] (packed panel: 1, 8; row-major A: lda, 1; Aᵀ in place: 1, lda), B's 32
    /// values of step p are at b[p·bStep]. Each entry point above inlines it with its own strides, so each is its own
    /// compiled loop with constants folded (one shared body inlined straight into the long-k loop ran ~40 % slower).
    /// Every element is one FMA chain in k order whichever entry point computes it: the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Kernel8x32Core(int kc, float* a, long aRow, long aStep, float* b, long bStep, float* c, long ldc, bool add,
        float* bias, Activation act)
    {
        // A tile that adds to C reads C at the end: ask for its rows now (three lines each, as a row of 32 floats at any
        // offset spans three), so the loads do not wait on memory after the k loop. DCNv2's dX += dPre·W at W4's shape
        // (C 4096 × 429, 7 MB, last written by another op): 4.15–4.44 → 3.93–4.09 ms, the backward of a layer 9.8–10.1 →
        // 9.4–9.6 ms (two threads, calls interleaved).
        if (add && Sse.IsSupported)
        {
            for (int r = 0; r < 8; r++)
            {
                float* row = c + r * ldc;
                Sse.Prefetch1(row);
                Sse.Prefetch1(row + 16);
                Sse.Prefetch1(row + 31);
            }
        }
        float* aHi = a + 4 * aRow;
        long aRow2 = 2 * aRow, aRow3 = 3 * aRow;
        Vector512<float> c00 = default, c01 = default;
        Vector512<float> c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default;
        Vector512<float> c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default;
        Vector512<float> c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[aRow]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[aRow2]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[aRow3]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(aHi[0]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(aHi[aRow]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            var a6 = Vector512.Create(aHi[aRow2]);
            c60 = Vector512.FusedMultiplyAdd(a6, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            var a7 = Vector512.Create(aHi[aRow3]);
            c70 = Vector512.FusedMultiplyAdd(a7, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            a += aStep;
            aHi += aStep;
            b += bStep;
        }
        Store512(c + 0 * ldc, c00, c01, add, bias, act);
        Store512(c + 1 * ldc, c10, c11, add, bias, act);
        Store512(c + 2 * ldc, c20, c21, add, bias, act);
        Store512(c + 3 * ldc, c30, c31, add, bias, act);
        Store512(c + 4 * ldc, c40, c41, add, bias, act);
        Store512(c + 5 * ldc, c50, c51, add, bias, act);
        Store512(c + 6 * ldc, c60, c61, add, bias, act);
        Store512(c + 7 * ldc, c70, c71, add, bias, act);
    }

    /// <summary>
    /// The left 16 columns of an 8×32 tile (an edge panel at most 16 wide: d = 429's last 13 columns), from the same
    /// 32-wide packed B panel, with half the FMAs: c[r·ldc + 0..16) = Σ_p A(r, p)·B(p, 0..16), stored into an edge tile's
    /// scratch. The same FMA chain per element as the 32-wide kernel, so the same bits. Packed A.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void Kernel8x16(int kc, float* a, float* b, float* c, long ldc) =>
        Kernel8x16Core(kc, a, 1, 8, b, c, ldc);

    /// <summary><see cref="Kernel8x16"/> reading A unpacked from a row-major matrix (row stride <paramref name="lda"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void Kernel8x16RowMajorA(int kc, float* a, long lda, float* b, float* c, long ldc) =>
        Kernel8x16Core(kc, a, lda, 1, b, c, ldc);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Kernel8x16Core(int kc, float* a, long aRow, long aStep, float* b, float* c, long ldc)
    {
        float* aHi = a + 4 * aRow;
        long aRow2 = 2 * aRow, aRow3 = 3 * aRow;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a[aRow]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a[aRow2]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a[aRow3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(aHi[0]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(aHi[aRow]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(aHi[aRow2]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(aHi[aRow3]), b0, c7);
            a += aStep;
            aHi += aStep;
            b += 32;
        }
        c0.Store(c); c1.Store(c + ldc); c2.Store(c + 2 * ldc); c3.Store(c + 3 * ldc);
        c4.Store(c + 4 * ldc); c5.Store(c + 5 * ldc); c6.Store(c + 6 * ldc); c7.Store(c + 7 * ldc);
    }

    /// <summary>
    /// Stores one row of an 8×32 tile: c = x (+ c), then, for the last k block of a Linear, act(c + bias) in the same
    /// registers — the operation order of the separate epilogue pass, so the bits are the same, without reloading the
    /// tile (with k = 64 that reload and second store cost ~40 % of a token projection).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store512(float* c, Vector512<float> x0, Vector512<float> x1, bool add, float* bias, Activation act)
    {
        Store16(c, x0, add, bias, act);
        Store16(c + 16, x1, add, bias == null ? null : bias + 16, act);
    }

    /// <summary>Stores 16 finished sums: c = x (+ c), then act(c + bias) in the same register (see <see cref="Store512"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store16(float* c, Vector512<float> x, bool add, float* bias, Activation act)
    {
        if (add) x += Vector512.Load(c);
        if (bias != null) x += Vector512.Load(bias);
        if (act == Activation.Relu) x = Vector512.Max(x, Vector512<float>.Zero);
        else if (act == Activation.Sigmoid) x = VectorMath.Sigmoid(x);
        x.Store(c);
    }

    /// <summary>6×16 tile, 12 Vector256 accumulators (fits the 16 registers of SSE/AVX2 with B and one broadcast).</summary>
    private static unsafe void Kernel6x16(int kc, float* a, float* b, float* c, long ldc, bool add)
    {
        Vector256<float> c00 = default, c01 = default;
        Vector256<float> c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default;
        Vector256<float> c40 = default, c41 = default;
        Vector256<float> c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            a += 6;
            b += 16;
        }
        Store256(c + 0 * ldc, c00, c01, add);
        Store256(c + 1 * ldc, c10, c11, add);
        Store256(c + 2 * ldc, c20, c21, add);
        Store256(c + 3 * ldc, c30, c31, add);
        Store256(c + 4 * ldc, c40, c41, add);
        Store256(c + 5 * ldc, c50, c51, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store256(float* c, Vector256<float> x0, Vector256<float> x1, bool add)
    {
        if (add) { x0 += Vector256.Load(c); x1 += Vector256.Load(c + 8); }
        x0.Store(c);
        x1.Store(c + 8);
    }

    /// <summary>6×8 tile, 12 Vector128 accumulators (fits the 16 registers of SSE/AVX2 with B and one broadcast).</summary>
    private static unsafe void Kernel6x8(int kc, float* a, float* b, float* c, long ldc, bool add)
    {
        Vector128<float> c00 = default, c01 = default;
        Vector128<float> c10 = default, c11 = default;
        Vector128<float> c20 = default, c21 = default;
        Vector128<float> c30 = default, c31 = default;
        Vector128<float> c40 = default, c41 = default;
        Vector128<float> c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var a0 = Vector128.Create(a[0]);
            c00 = Vector128.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector128.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector128.Create(a[1]);
            c10 = Vector128.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector128.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector128.Create(a[2]);
            c20 = Vector128.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector128.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector128.Create(a[3]);
            c30 = Vector128.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector128.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector128.Create(a[4]);
            c40 = Vector128.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector128.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector128.Create(a[5]);
            c50 = Vector128.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector128.FusedMultiplyAdd(a5, b1, c51);
            a += 6;
            b += 8;
        }
        Store128(c + 0 * ldc, c00, c01, add);
        Store128(c + 1 * ldc, c10, c11, add);
        Store128(c + 2 * ldc, c20, c21, add);
        Store128(c + 3 * ldc, c30, c31, add);
        Store128(c + 4 * ldc, c40, c41, add);
        Store128(c + 5 * ldc, c50, c51, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store128(float* c, Vector128<float> x0, Vector128<float> x1, bool add)
    {
        if (add) { x0 += Vector128.Load(c); x1 += Vector128.Load(c + 4); }
        x0.Store(c);
        x1.Store(c + 4);
    }

    /// <summary>4×4 tile of scalar accumulators: the path when the JIT reports no SIMD at all.</summary>
    private static unsafe void Kernel4x4(int kc, float* a, float* b, float* c, long ldc, bool add)
    {
        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
        float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f;
        float c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;
        for (int p = 0; p < kc; p++)
        {
            float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            float a0 = a[0];
            c00 = MathF.FusedMultiplyAdd(a0, b0, c00); c01 = MathF.FusedMultiplyAdd(a0, b1, c01); c02 = MathF.FusedMultiplyAdd(a0, b2, c02); c03 = MathF.FusedMultiplyAdd(a0, b3, c03);
            float a1 = a[1];
            c10 = MathF.FusedMultiplyAdd(a1, b0, c10); c11 = MathF.FusedMultiplyAdd(a1, b1, c11); c12 = MathF.FusedMultiplyAdd(a1, b2, c12); c13 = MathF.FusedMultiplyAdd(a1, b3, c13);
            float a2 = a[2];
            c20 = MathF.FusedMultiplyAdd(a2, b0, c20); c21 = MathF.FusedMultiplyAdd(a2, b1, c21); c22 = MathF.FusedMultiplyAdd(a2, b2, c22); c23 = MathF.FusedMultiplyAdd(a2, b3, c23);
            float a3 = a[3];
            c30 = MathF.FusedMultiplyAdd(a3, b0, c30); c31 = MathF.FusedMultiplyAdd(a3, b1, c31); c32 = MathF.FusedMultiplyAdd(a3, b2, c32); c33 = MathF.FusedMultiplyAdd(a3, b3, c33);
            a += 4;
            b += 4;
        }
        StoreScalar(c + 0 * ldc, c00, c01, c02, c03, add);
        StoreScalar(c + 1 * ldc, c10, c11, c12, c13, add);
        StoreScalar(c + 2 * ldc, c20, c21, c22, c23, add);
        StoreScalar(c + 3 * ldc, c30, c31, c32, c33, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreScalar(float* c, float x0, float x1, float x2, float x3, bool add)
    {
        if (add) { x0 += c[0]; x1 += c[1]; x2 += c[2]; x3 += c[3]; }
        c[0] = x0; c[1] = x1; c[2] = x2; c[3] = x3;
    }
}

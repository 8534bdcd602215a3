using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Recsys.Kernels.Common;

/// <summary>Where the 16 source rows of a <see cref="Transpose16.Block{TRows}"/> start.</summary>
internal unsafe interface ITransposeRows
{
    /// <summary>Row <paramref name="i"/> (0..15) of the block; its 16 floats are read from there.</summary>
    float* Row(int i);
}

/// <summary>Rows of a row-major matrix: row i at <c>first + i·stride</c>.</summary>
internal readonly unsafe struct StridedRows : ITransposeRows
{
    private readonly float* _first;
    private readonly long _stride;

    public StridedRows(float* first, long stride)
    {
        _first = first;
        _stride = stride;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* Row(int i) => _first + i * _stride;
}

/// <summary>Rows anywhere: sixteen pointers (a table of them) plus a common column offset.</summary>
internal readonly unsafe struct PointerRows : ITransposeRows
{
    private readonly float** _rows;
    private readonly int _column;

    public PointerRows(float** rows, int column)
    {
        _rows = rows;
        _column = column;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* Row(int i) => _rows[i] + _column;
}

/// <summary>A 16×16 block of floats transposed through AVX-512 registers (callers check <c>Avx512F.IsSupported</c>).</summary>
internal static unsafe class Transpose16
{
    /// <summary>
    /// dst[c·<paramref name="dstStride"/> + i] = rows.Row(i)[c] for i, c &lt; 16. Three rounds of in-lane shuffles
    /// (pairs, quads, 128-bit lanes twice): rows 0–3 of each output column come together first, then rows 4–15. Used by
    /// the GEMM's packing of a transposed B and by the dot interaction's Tᵀ.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block<TRows>(in TRows rows, float* dst, long dstStride) where TRows : struct, ITransposeRows
    {
        // t: per 128-bit lane, (r[2i][c], r[2i+1][c]) pairs for columns c = 4L+0,1 (lo) and 4L+2,3 (hi).
        var r0 = Vector512.Load(rows.Row(0)); var r1 = Vector512.Load(rows.Row(1));
        var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
        var r2 = Vector512.Load(rows.Row(2)); var r3 = Vector512.Load(rows.Row(3));
        var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
        var r4 = Vector512.Load(rows.Row(4)); var r5 = Vector512.Load(rows.Row(5));
        var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
        var r6 = Vector512.Load(rows.Row(6)); var r7 = Vector512.Load(rows.Row(7));
        var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
        var r8 = Vector512.Load(rows.Row(8)); var r9 = Vector512.Load(rows.Row(9));
        var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
        var r10 = Vector512.Load(rows.Row(10)); var r11 = Vector512.Load(rows.Row(11));
        var t10 = Avx512F.UnpackLow(r10, r11); var t11 = Avx512F.UnpackHigh(r10, r11);
        var r12 = Vector512.Load(rows.Row(12)); var r13 = Vector512.Load(rows.Row(13));
        var t12 = Avx512F.UnpackLow(r12, r13); var t13 = Avx512F.UnpackHigh(r12, r13);
        var r14 = Vector512.Load(rows.Row(14)); var r15 = Vector512.Load(rows.Row(15));
        var t14 = Avx512F.UnpackLow(r14, r15); var t15 = Avx512F.UnpackHigh(r14, r15);
        // u[4q+s]: per lane L, column 4L+s of rows 4q..4q+3.
        var u0 = Avx512F.Shuffle(t0, t2, 0x44); var u1 = Avx512F.Shuffle(t0, t2, 0xEE);
        var u2 = Avx512F.Shuffle(t1, t3, 0x44); var u3 = Avx512F.Shuffle(t1, t3, 0xEE);
        var u4 = Avx512F.Shuffle(t4, t6, 0x44); var u5 = Avx512F.Shuffle(t4, t6, 0xEE);
        var u6 = Avx512F.Shuffle(t5, t7, 0x44); var u7 = Avx512F.Shuffle(t5, t7, 0xEE);
        var u8 = Avx512F.Shuffle(t8, t10, 0x44); var u9 = Avx512F.Shuffle(t8, t10, 0xEE);
        var u10 = Avx512F.Shuffle(t9, t11, 0x44); var u11 = Avx512F.Shuffle(t9, t11, 0xEE);
        var u12 = Avx512F.Shuffle(t12, t14, 0x44); var u13 = Avx512F.Shuffle(t12, t14, 0xEE);
        var u14 = Avx512F.Shuffle(t13, t15, 0x44); var u15 = Avx512F.Shuffle(t13, t15, 0xEE);
        // v: lanes (L0, L2) or (L1, L3) of rows 0–3 and 4–7 (v0..v7), of rows 8–11 and 12–15 (v8..v15).
        var v0 = Avx512F.Shuffle4x128(u0, u4, 0x88); var v1 = Avx512F.Shuffle4x128(u1, u5, 0x88);
        var v2 = Avx512F.Shuffle4x128(u2, u6, 0x88); var v3 = Avx512F.Shuffle4x128(u3, u7, 0x88);
        var v4 = Avx512F.Shuffle4x128(u0, u4, 0xDD); var v5 = Avx512F.Shuffle4x128(u1, u5, 0xDD);
        var v6 = Avx512F.Shuffle4x128(u2, u6, 0xDD); var v7 = Avx512F.Shuffle4x128(u3, u7, 0xDD);
        var v8 = Avx512F.Shuffle4x128(u8, u12, 0x88); var v9 = Avx512F.Shuffle4x128(u9, u13, 0x88);
        var v10 = Avx512F.Shuffle4x128(u10, u14, 0x88); var v11 = Avx512F.Shuffle4x128(u11, u15, 0x88);
        var v12 = Avx512F.Shuffle4x128(u8, u12, 0xDD); var v13 = Avx512F.Shuffle4x128(u9, u13, 0xDD);
        var v14 = Avx512F.Shuffle4x128(u10, u14, 0xDD); var v15 = Avx512F.Shuffle4x128(u11, u15, 0xDD);
        // Output column c: all 16 rows.
        Avx512F.Shuffle4x128(v0, v8, 0x88).Store(dst);
        Avx512F.Shuffle4x128(v1, v9, 0x88).Store(dst + dstStride);
        Avx512F.Shuffle4x128(v2, v10, 0x88).Store(dst + 2 * dstStride);
        Avx512F.Shuffle4x128(v3, v11, 0x88).Store(dst + 3 * dstStride);
        Avx512F.Shuffle4x128(v4, v12, 0x88).Store(dst + 4 * dstStride);
        Avx512F.Shuffle4x128(v5, v13, 0x88).Store(dst + 5 * dstStride);
        Avx512F.Shuffle4x128(v6, v14, 0x88).Store(dst + 6 * dstStride);
        Avx512F.Shuffle4x128(v7, v15, 0x88).Store(dst + 7 * dstStride);
        Avx512F.Shuffle4x128(v0, v8, 0xDD).Store(dst + 8 * dstStride);
        Avx512F.Shuffle4x128(v1, v9, 0xDD).Store(dst + 9 * dstStride);
        Avx512F.Shuffle4x128(v2, v10, 0xDD).Store(dst + 10 * dstStride);
        Avx512F.Shuffle4x128(v3, v11, 0xDD).Store(dst + 11 * dstStride);
        Avx512F.Shuffle4x128(v4, v12, 0xDD).Store(dst + 12 * dstStride);
        Avx512F.Shuffle4x128(v5, v13, 0xDD).Store(dst + 13 * dstStride);
        Avx512F.Shuffle4x128(v6, v14, 0xDD).Store(dst + 14 * dstStride);
        Avx512F.Shuffle4x128(v7, v15, 0xDD).Store(dst + 15 * dstStride);
    }
}

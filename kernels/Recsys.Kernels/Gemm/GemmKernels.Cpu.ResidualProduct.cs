using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Recsys.Kernels.Gemm;

public static partial class GemmKernels
{
    /// <summary>
    /// The residual product a block of output rows can get once it is final: Y = S ⊙ C + R, all [m, n] with C's row stride
    /// (DCNv2's y = x0 ⊙ (W·x_l + b) + x_l). Every element is one fused multiply-add, in vector and scalar code alike, so the
    /// bits do not depend on where a block's edge falls.
    /// </summary>
    internal unsafe struct ResidualProduct
    {
        public float* Scale, Shift, Output;

        /// <summary>Y = S ⊙ C + R over rows [i0, i1) × columns [j0, j1).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Apply(float* c, long ld, int i0, int i1, int j0, int j1)
        {
            for (int i = i0; i < i1; i++)
            {
                long o = i * ld;
                float* h = c + o, s = Scale + o, r = Shift + o, y = Output + o;
                int j = j0;
                if (Vector512.IsHardwareAccelerated)
                    for (; j + 16 <= j1; j += 16)
                        Vector512.FusedMultiplyAdd(Vector512.Load(s + j), Vector512.Load(h + j), Vector512.Load(r + j)).Store(y + j);
                if (Vector256.IsHardwareAccelerated)
                    for (; j + 8 <= j1; j += 8)
                        Vector256.FusedMultiplyAdd(Vector256.Load(s + j), Vector256.Load(h + j), Vector256.Load(r + j)).Store(y + j);
                for (; j < j1; j++) y[j] = MathF.FusedMultiplyAdd(s[j], h[j], r[j]);
            }
        }
    }
}

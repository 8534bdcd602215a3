using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Interaction;

public static unsafe partial class DotInteractionKernels
{
    /// <summary>Whether the backward takes <see cref="BackwardBody"/>'s blocked path: DLRM's shapes (F + 1 ≤ 32, D a multiple of 64) with AVX-512.</summary>
    private static bool BackwardBlocked(int n, int dim) => n <= 32 && dim % 64 == 0 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>
    /// Backward scratch: the general path's copy of T and its G [n × n], or the blocked path's G [32 × 32], a 16 × 16
    /// transpose block and one throw-away output row.
    /// </summary>
    private static int BackwardScratchFloats(int n, int dim) => Math.Max(n * dim + n * n, 32 * 32 + 256 + dim);

    /// <summary>
    /// Per sample b: G (symmetric, zero diagonal) from dOutput's pair gradients, then dT_i = Σ_j G_ij T_j for the dense
    /// row (plus dOutput's pass-through) and the F embedding rows. Every output element is one FMA chain over j in order,
    /// started from zero, then added to the old value when accumulating: the same bits on every path below.
    /// </summary>
    private struct BackwardBody : IScratchChunkBody
    {
        public float* Dense, Sparse, DOutput, DDense, DSparse;
        public int Batch, F, D;
        public bool AccumulateDense, AccumulateSparse;

        public readonly int ScratchFloats => BackwardScratchFloats(F + 1, D);

        public readonly void Run(int chunk, int chunks, float* scratch)
        {
            var (start, end) = KernelParallelism.Range(Batch, chunks, chunk);
            int n = F + 1;
            if (BackwardBlocked(n, D)) RowsBlocked(start, end, scratch);
            else Rows(start, end, scratch);
        }

        /// <summary>
        /// DLRM's shapes (F + 1 ≤ 32, D a multiple of 64) with AVX-512: G built by <see cref="BuildPairGradients32"/>, and
        /// the product three output rows × 64 columns at a time straight from x and the sample's embedding rows (no copy of
        /// T). Before, G was filled pair by pair (702 scalar stores a sample) and the product went four rows × 32 columns
        /// with the two rows left over (and the dense row) one at a time, latency-bound. Same bits. Batch 4096, F = 26, D = 64,
        /// 2 threads, the old and new builds alternated three times: inputs in cache (batch 128) 0.073–0.078 → 0.049–0.050 ms,
        /// from DRAM 4.4–4.8 → 2.7–3.8 ms (a slow memory hour). With the product this much faster, fetching the next sample's
        /// rows into L2 while one is worked on paid where it had not before: 2.69 → 2.50 and 2.85 → 2.64 ms (one, two or four
        /// samples ahead the same).
        /// </summary>
        private readonly void RowsBlocked(int start, int end, float* scratch)
        {
            int f = F, n = f + 1, d = D;
            int width = OutputDim(f, d);
            float* g = scratch, transposed = g + 32 * 32, spare = transposed + 256;
            bool accDense = AccumulateDense, accSparse = AccumulateSparse;
            for (int b = start; b < end; b++)
            {
                float* go = DOutput + (long)b * width;
                float* x = Dense + (long)b * d;
                float* e = Sparse + (long)b * f * d;
                float* dx = DDense + (long)b * d;
                float* de = DSparse + (long)b * f * d;
                if (b + 1 < end)
                {
                    // The next sample's rows and pair gradients into L2 (measured above).
                    CachePrefetch.IntoL2(e + f * d, (long)f * d);
                    CachePrefetch.IntoL2(x + d, d);
                    CachePrefetch.IntoL2(go + width, width);
                }
                BuildPairGradients32(go + d, n, g, transposed);
                for (int i = 0; i < n; i += 3)
                {
                    // Output row i is dx for i = 0, else embedding row i - 1; rows past the last go to the spare row.
                    int i1 = Math.Min(i + 1, n - 1), i2 = Math.Min(i + 2, n - 1);
                    float* o0 = i == 0 ? dx : de + (i - 1) * d;
                    float* o1 = i + 1 < n ? de + i * d : spare;
                    float* o2 = i + 2 < n ? de + (i + 1) * d : spare;
                    bool acc0 = i == 0 ? accDense : accSparse;
                    for (int c = 0; c < d; c += 64)
                        PairGradientRows3x64(g + i * 32, g + i1 * 32, g + i2 * 32, x + c, e + c, n, d,
                            o0 + c, o1 + c, o2 + c, acc0, accSparse && i + 1 < n, accSparse && i + 2 < n);
                }
                RowMath.AddInPlace(go, dx, d);
            }
        }

        /// <summary>
        /// G [32 × 32] for n = F + 1 ≤ 32 from one sample's pair gradients z (the strict lower triangle, row-major):
        /// first L, row i holding z's row i (contiguous, from i(i-1)/2) in columns 0..i-1 and zeros from the diagonal on
        /// (masked loads, which touch no memory past the triangle's end); then G = L | Lᵀ, bitwise, exact because one of
        /// each pair is +0. Rows and columns from n on hold garbage that nothing reads.
        /// </summary>
        private static void BuildPairGradients32(float* z, int n, float* g, float* transposed)
        {
            var lanes = Vector512<int>.Indices;
            for (int i = 0; i < n; i++)
            {
                float* zi = z + i * (i - 1) / 2;
                float* gi = g + i * 32;
                Avx512F.MaskLoad(zi, Vector512.LessThan(lanes, Vector512.Create(i)).AsSingle(), Vector512<float>.Zero).Store(gi);
                if (n > 16)
                    Avx512F.MaskLoad(zi + 16, Vector512.LessThan(lanes, Vector512.Create(i - 16)).AsSingle(), Vector512<float>.Zero).Store(gi + 16);
            }
            // Top-left block: L00 | L00ᵀ.
            Transpose16.Block(new StridedRows(g, 32), transposed, 16);
            OrRows(g, transposed);
            if (n <= 16) return;
            // Top-right: L01 is zero (columns past the diagonal), so G01 = L10ᵀ; bottom-left G10 = L10 as loaded.
            Transpose16.Block(new StridedRows(g + 16 * 32, 32), g + 16, 32);
            // Bottom-right: L11 | L11ᵀ.
            Transpose16.Block(new StridedRows(g + 16 * 32 + 16, 32), transposed, 16);
            OrRows(g + 16 * 32 + 16, transposed);
        }

        /// <summary>16 rows of 16 at stride 32 |= a packed 16 × 16 block.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void OrRows(float* dst, float* src)
        {
            for (int r = 0; r < 16; r++)
                (Vector512.Load(dst + r * 32) | Vector512.Load(src + r * 16)).Store(dst + r * 32);
        }

        /// <summary>
        /// Three output rows × 64 columns: o_r (+)= Σ_k G[r, k] T_k with T_0 = x and T_k = e + (k-1)·d. Twelve accumulators
        /// (enough FMA chains for both pipes); per k four row loads and three broadcasts feed twelve FMAs.
        /// </summary>
        private static void PairGradientRows3x64(float* g0, float* g1, float* g2, float* x, float* e, int n, int d,
            float* o0, float* o1, float* o2, bool acc0, bool acc1, bool acc2)
        {
            var zero = Vector512<float>.Zero;
            var t0 = Vector512.Load(x); var t1 = Vector512.Load(x + 16); var t2 = Vector512.Load(x + 32); var t3 = Vector512.Load(x + 48);
            var w = Vector512.Create(g0[0]);
            var a00 = Vector512.FusedMultiplyAdd(w, t0, zero); var a01 = Vector512.FusedMultiplyAdd(w, t1, zero);
            var a02 = Vector512.FusedMultiplyAdd(w, t2, zero); var a03 = Vector512.FusedMultiplyAdd(w, t3, zero);
            w = Vector512.Create(g1[0]);
            var a10 = Vector512.FusedMultiplyAdd(w, t0, zero); var a11 = Vector512.FusedMultiplyAdd(w, t1, zero);
            var a12 = Vector512.FusedMultiplyAdd(w, t2, zero); var a13 = Vector512.FusedMultiplyAdd(w, t3, zero);
            w = Vector512.Create(g2[0]);
            var a20 = Vector512.FusedMultiplyAdd(w, t0, zero); var a21 = Vector512.FusedMultiplyAdd(w, t1, zero);
            var a22 = Vector512.FusedMultiplyAdd(w, t2, zero); var a23 = Vector512.FusedMultiplyAdd(w, t3, zero);
            float* r = e;
            for (int k = 1; k < n; k++, r += d)
            {
                t0 = Vector512.Load(r); t1 = Vector512.Load(r + 16); t2 = Vector512.Load(r + 32); t3 = Vector512.Load(r + 48);
                w = Vector512.Create(g0[k]);
                a00 = Vector512.FusedMultiplyAdd(w, t0, a00); a01 = Vector512.FusedMultiplyAdd(w, t1, a01);
                a02 = Vector512.FusedMultiplyAdd(w, t2, a02); a03 = Vector512.FusedMultiplyAdd(w, t3, a03);
                w = Vector512.Create(g1[k]);
                a10 = Vector512.FusedMultiplyAdd(w, t0, a10); a11 = Vector512.FusedMultiplyAdd(w, t1, a11);
                a12 = Vector512.FusedMultiplyAdd(w, t2, a12); a13 = Vector512.FusedMultiplyAdd(w, t3, a13);
                w = Vector512.Create(g2[k]);
                a20 = Vector512.FusedMultiplyAdd(w, t0, a20); a21 = Vector512.FusedMultiplyAdd(w, t1, a21);
                a22 = Vector512.FusedMultiplyAdd(w, t2, a22); a23 = Vector512.FusedMultiplyAdd(w, t3, a23);
            }
            Store4(o0, a00, a01, a02, a03, acc0);
            Store4(o1, a10, a11, a12, a13, acc1);
            Store4(o2, a20, a21, a22, a23, acc2);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Store4(float* dst, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, bool accumulate)
        {
            if (accumulate)
            {
                a0 += Vector512.Load(dst); a1 += Vector512.Load(dst + 16);
                a2 += Vector512.Load(dst + 32); a3 += Vector512.Load(dst + 48);
            }
            a0.Store(dst); a1.Store(dst + 16); a2.Store(dst + 32); a3.Store(dst + 48);
        }

        /// <summary>Any shape: T copied into one block, G filled pair by pair, then the product.</summary>
        private readonly void Rows(int start, int end, float* t)
        {
            int n = F + 1, d = D;
            int width = OutputDim(F, d);
            float* g = t + n * d;
            for (int i = 0; i < n; i++) g[i * n + i] = 0f;
            for (int b = start; b < end; b++)
            {
                float* go = DOutput + (long)b * width;
                float* x = Dense + (long)b * d;
                float* e = Sparse + (long)b * F * d;
                RowMath.Copy(x, t, d);
                RowMath.Copy(e, t + d, F * d);
                // Both orders of a pair carry its gradient: ∂Z_ij/∂T_i = T_j and ∂Z_ij/∂T_j = T_i.
                float* z = go + d;
                for (int i = 1; i < n; i++)
                    for (int j = 0; j < i; j++)
                    {
                        float v = *z++;
                        g[i * n + j] = v;
                        g[j * n + i] = v;
                    }
                float* dx = DDense + (long)b * d;
                RowMath.WeightedRowSum(g, 1, t, d, n, dx, d, accumulate: AccumulateDense);
                RowMath.AddInPlace(go, dx, d);
                // dE_i (+)= Σ_j G_ij T_j for the F embedding rows: four output rows share each loaded row of T.
                RowMath.WeightedRowSums(g + n, n, 1, F, t, d, n, DSparse + (long)b * F * d, d, d, accumulate: AccumulateSparse);
            }
        }
    }
}

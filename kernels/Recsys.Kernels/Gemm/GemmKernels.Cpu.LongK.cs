using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Gemm;

// Aᵀ·B with a long k and a small output: the weight gradient of a token projection (dW[out, in] = Σ over B·T tokens of
// dY[t, out] ⊗ X[t, in], k = 27,648 in W5). The packed path copies all of B (k × n) and every thread's A panels once per
// call — as much memory traffic as the product itself at this shape. Here nothing is packed: at step p the 8 values of
// an 8×32 tile's A column are dY[p, i0..i0+8) and its 32 values of B are X[p, j0..j0+32), both contiguous, so the
// micro-kernel reads them in place with a row stride. The bias gradient (column sums of dY) can ride along: the tiles of
// the first column panel add up the dY columns they read.
public static partial class GemmKernels
{
    /// <summary>Takes the unpacked path when k is at least this many times the larger output dimension.</summary>
    private const int LongKRatio = 8;

    /// <summary>
    /// ... and the output has at most this many elements. Packing costs k·(m + n) copies against k·m·n multiply-adds, so
    /// it pays off on a larger output: 512×512×4096 packed 202–203 GFLOP/s against 169–183 unpacked, 256×512×4096
    /// 190–197 against 163–196, while 64×256×4096 stays at ~227 unpacked against ~88 packed (alternating builds).
    /// </summary>
    private const int LongKMaxOutput = 256 * 256;

    /// <summary>Largest k block of B (bytes) for which the long-k path walks its tiles row by row.</summary>
    private const long LongKRowOrderBBytes = 512 * 1024;

    /// <summary>
    /// True when C[m,n] (+)= Aᵀ·B (A stored [k, m], B stored [k, n], both row-major) runs unpacked: AVX-512, whole 8×32
    /// tiles, a long k, a small output, no epilogue.
    /// </summary>
    private static bool UseLongKTransposed(long ars, long acs, long bcs, int m, int n, int k, bool hasEpilogue) =>
        Selected == MicroKernel.V512x8x32 && ars == 1 && bcs == 1 && !hasEpilogue
        && m % 8 == 0 && n % 32 == 0 && k >= LongKRatio * Math.Max(m, n) && (long)m * n <= LongKMaxOutput;

    /// <param name="aColumnSums">Null, or [m]: also aColumnSums[i] += Σ_p A[p, i], from the A rows the tiles of the first
    /// column panel read (per k block, summed in row order, then added: the same bits for any thread count).</param>
    private static unsafe void RunLongKTransposed(float* a, long lda, float* b, long ldb, float* c, int m, int n, int k, bool accumulate,
        float* aColumnSums)
    {
        int tiles = m / 8 * (n / 32);
        var body = new LongKBody
        {
            A = a, Lda = lda, B = b, Ldb = ldb, C = c, N = n, K = k, Accumulate = accumulate, Tiles = tiles, ColumnSums = aColumnSums,
        };
        KernelParallelism.For(KernelParallelism.Chunks(tiles, 8L * 32 * k, 1 << 20), ref body);
    }

    /// <summary>sums[0..8) += Σ_p a[p·lda + 0..8) over <paramref name="rows"/> rows, summed in row order, then added.</summary>
    private static unsafe void AddColumnSums8(float* a, long lda, int rows, float* sums)
    {
        var s = Vector256<float>.Zero;
        for (int p = 0; p < rows; p++, a += lda) s += Vector256.Load(a);
        (Vector256.Load(sums) + s).Store(sums);
    }

    private unsafe struct LongKBody : IChunkBody
    {
        public float* A, B, C, ColumnSums;
        public long Lda, Ldb;
        public int N, K, Tiles;
        public bool Accumulate;

        public readonly void Run(int chunk, int chunks)
        {
            var (t0, t1) = KernelParallelism.Range(Tiles, chunks, chunk);
            int colTiles = N / 32, r0 = t0 / colTiles, rows = (t1 - 1) / colTiles - r0 + 1;
            // k in the packed path's KC blocks, so every element is summed in the same order (and to the same bits) as
            // there. Within a block, tiles go row by row (a tile row's 8 columns of A stay in L1 across B's panels) unless
            // the block's B is too large to stay in L2 across the rows (a 512-wide input: 1 MiB a block); then column
            // panel by column panel, so each 32-column panel of B is read once and the chunk's columns of A stay in L2.
            // Alternating builds, 2 threads: 4096×512×512 12.4–12.7 → 11.9–12.0 ms; 4096×256×512 the same within noise.
            bool byPanel = (long)KC * N * sizeof(float) > LongKRowOrderBBytes;
            for (int pc = 0; pc < K; pc += KC)
            {
                int kc = Math.Min(KC, K - pc);
                bool add = Accumulate || pc > 0;
                for (int t = 0; t < colTiles * rows; t++)
                {
                    int tile = byPanel ? (r0 + t % rows) * colTiles + t / rows : r0 * colTiles + t;
                    if (tile < t0 || tile >= t1) continue;
                    int i0 = tile / colTiles * 8, j0 = tile % colTiles * 32;
                    float* aBlock = A + pc * Lda + i0;
                    Kernel8x32Strided(kc, aBlock, Lda, B + pc * Ldb + j0, Ldb, C + (long)i0 * N + j0, N, add);
                    // The 8 columns of A this tile just read (still in L1): their sums over this k block.
                    if (ColumnSums != null && j0 == 0) AddColumnSums8(aBlock, Lda, kc, ColumnSums + i0);
                }
            }
        }
    }
}

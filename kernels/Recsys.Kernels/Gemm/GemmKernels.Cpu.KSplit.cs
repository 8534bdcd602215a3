using Recsys.Kernels.Common;

namespace Recsys.Kernels.Gemm;

// Aᵀ·B with a long k and an output too large for the unpacked long-k path: the weight gradient dW = dYᵀ·X of a layer at
// a large batch (k = 4096, dW 512 × 512 in W2 and W6). Split by rows of C, both threads need all of B and of A: B is
// packed once and shared, so each thread reads half of it from the other core, and each reads all the rows of dY and X,
// half of which the other core wrote in the step's previous ops. Here k is cut into a fixed number of ranges (set by k
// alone, so the bits do not depend on the thread count): each range's product goes into its own partial of C from the
// rows of dY and X in that range, packed privately, and the partials are added in range order at the end.
//
// Weight gradients at batch 4096, 2 threads, the two paths interleaved call by call (GFLOP/s): with fast core-to-core
// transfers the same within ~2 % (512 x 512: 205–210 rows split, 209–211 k split; 429 x 429: 189–204 against 198–204);
// with slow ones the row split fell to 155–184 while the k split held 196–203 (256 x 512: 155–157 against 196–200).
public static partial class GemmKernels
{
    /// <summary>Rows of k per range (and the least k that is split at all is twice this).</summary>
    private const int KSplitRangeK = 2048;

    private const int KSplitMaxRanges = 8;

    /// <summary>
    /// C sizes (elements) split this way: above the long-k path's largest output (smaller ones share little of B between
    /// the threads, and keep k summed in order, as the narrow and unpacked paths do), and at most 4 MiB, since each range
    /// holds a whole partial of C.
    /// </summary>
    private const long KSplitMinOutput = LongKMaxOutput + 1, KSplitMaxOutput = 1L << 20;

    /// <summary>True when C[m,n] (+)= Aᵀ·B (A stored [k, m], B stored [k, n], both row-major, no epilogue) is split by k.</summary>
    private static bool UseKSplitTransposed(long ars, long acs, long brs, long bcs, int m, int n, int k, bool hasEpilogue) =>
        ars == 1 && acs == m && brs == n && bcs == 1 && !hasEpilogue && k >= 2 * KSplitRangeK
        && (long)m * n >= KSplitMinOutput && (long)m * n <= KSplitMaxOutput;

    /// <summary>First k of range <paramref name="r"/> of <paramref name="ranges"/>: a multiple of KC, so each range is whole k blocks.</summary>
    private static int KSplitStart(int k, int ranges, int r) => r == ranges ? k : (int)((long)(k / KC) * r / ranges) * KC;

    private static unsafe void RunKSplitTransposed(float* a, float* b, float* c, int m, int n, int k, bool accumulate, float* aColumnSums)
    {
        int ranges = Math.Min(k / KSplitRangeK, KSplitMaxRanges);
        // Partials padded by a cache line each, so that they do not all start at one offset modulo 4 KiB.
        long stride = (long)m * n + 16, sumsStride = m + 16;
        long floats = ranges * (stride + (aColumnSums == null ? 0 : sumsStride)) + 16;
        // The calling thread's buffer, kept between calls (workers use it only during this call).
        float* partials = PinnedBuffer(ref t_kSplitPartials, checked((int)floats));
        var body = new KSplitBody
        {
            A = a, B = b, M = m, N = n, K = k, Ranges = ranges, Partials = partials, Stride = stride,
            Sums = aColumnSums == null ? null : partials + ranges * stride, SumsStride = sumsStride,
        };
        KernelParallelism.For(ranges, ref body);
        var reduce = new ReducePartialsBody { Partials = partials, Stride = stride, Count = ranges, Dst = c, Length = m * n, Accumulate = accumulate };
        KernelParallelism.For(KernelParallelism.Chunks(reduce.Length, ranges, 1 << 16), ref reduce);
        if (aColumnSums != null)
        {
            // Column sums always accumulate (they are a bias gradient).
            var reduceSums = new ReducePartialsBody
            {
                Partials = body.Sums, Stride = sumsStride, Count = ranges, Dst = aColumnSums, Length = m, Accumulate = true,
            };
            reduceSums.Run(0, 1);
        }
    }

    [ThreadStatic] private static float[]? t_kSplitPartials;

    /// <summary>Range r: partial r of C = A[k0..k1)ᵀ·B[k0..k1) (and of A's column sums), packed by this thread alone.</summary>
    private unsafe struct KSplitBody : IChunkBody
    {
        public float* A, B, Partials, Sums;
        public long Stride, SumsStride;
        public int M, N, K, Ranges;

        public readonly void Run(int chunk, int chunks)
        {
            int k0 = KSplitStart(K, Ranges, chunk), k1 = KSplitStart(K, Ranges, chunk + 1);
            float* sums = Sums == null ? null : Sums + chunk * SumsStride;
            if (sums != null) new Span<float>(sums, M).Clear();
            var g = new GemmBody
            {
                A = A + (long)k0 * M, Ars = 1, Acs = M,
                B = B + (long)k0 * N, Brs = N, Bcs = 1,
                C = Partials + chunk * Stride, M = M, N = N, K = k1 - k0,
                Accumulate = false, Activation = Activation.None, ColumnSums = sums,
            };
            Block(in g, 0, M, 0, N);
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Gemm;

// Skinny shapes (batch-1 inference, a one-logit output layer, its weight gradient) where packing would
// cost as much as the arithmetic: computed directly from the unpacked operands instead.
public static partial class GemmKernels
{
    /// <summary>At or below this many rows (or NT output columns) the direct paths beat packing.</summary>
    internal const int SkinnyLimit = 4;

    /// <summary>
    /// NT with few rows or few columns: every C[i,j] is one dot product of two contiguous rows,
    /// A[i,:] and B[j,:]. Threads split the longer of the two output dimensions.
    /// </summary>
    private static unsafe void RunDots(float* a, float* b, float* c, int m, int n, int k, bool accumulate, float* bias, Activation activation)
    {
        var body = new DotBody { A = a, B = b, C = c, M = m, N = n, K = k, Accumulate = accumulate, Bias = bias, Activation = activation };
        body.SplitRows = m >= n;
        int items = body.SplitRows ? m : n;
        long cost = (long)(body.SplitRows ? n : m) * Math.Max(k, 1);
        int chunks = KernelParallelism.Chunks(items, cost, 1 << 18);
        KernelParallelism.For(chunks, ref body);
    }

    private unsafe struct DotBody : IChunkBody
    {
        public float* A, B, C, Bias;
        public int M, N, K;
        public bool Accumulate, SplitRows;
        public Activation Activation;

        public void Run(int chunk, int chunks)
        {
            int i0 = 0, i1 = M, j0 = 0, j1 = N;
            if (SplitRows) (i0, i1) = KernelParallelism.Range(M, chunks, chunk);
            else (j0, j1) = KernelParallelism.Range(N, chunks, chunk);
            bool epilogue = Bias != null || Activation != Activation.None;
            for (int i = i0; i < i1; i++)
            {
                float* ai = A + (long)i * K;
                float* ci = C + (long)i * N;
                for (int j = j0; j < j1; j++)
                {
                    float s = Dot(ai, B + (long)j * K, K);
                    ci[j] = Accumulate ? ci[j] + s : s;
                }
                if (epilogue) Epilogue(ci + j0, j1 - j0, Bias == null ? null : Bias + j0, Activation);
            }
        }
    }

    /// <summary>
    /// NN / TN with few rows: C[i,:] (+)= Σ_p A(i,p)·B[p,:], a sequence of row AXPYs over contiguous
    /// rows of B. Threads split the columns of C.
    /// </summary>
    private static unsafe void RunAxpys(float* a, long ars, long acs, float* b, float* c, int m, int n, int k, bool accumulate)
    {
        var body = new AxpyBody { A = a, Ars = ars, Acs = acs, B = b, C = c, M = m, N = n, K = k, Accumulate = accumulate };
        // Chunks of whole 64-byte lines so two threads never write the same cache line.
        int lines = (n + 15) / 16;
        body.Lines = lines;
        int chunks = KernelParallelism.Chunks(lines, 16L * m * Math.Max(k, 1), 1 << 18);
        KernelParallelism.For(chunks, ref body);
    }

    private unsafe struct AxpyBody : IChunkBody
    {
        public float* A, B, C;
        public long Ars, Acs;
        public int M, N, K, Lines;
        public bool Accumulate;

        public void Run(int chunk, int chunks)
        {
            var (l0, l1) = KernelParallelism.Range(Lines, chunks, chunk);
            int j0 = l0 * 16, j1 = Math.Min(N, l1 * 16);
            int len = j1 - j0;
            for (int i = 0; i < M; i++)
            {
                float* ci = C + (long)i * N + j0;
                if (!Accumulate) new Span<float>(ci, len).Clear();
                for (int p = 0; p < K; p++)
                    Axpy(A[i * Ars + p * Acs], B + (long)p * N + j0, ci, len);
            }
        }
    }

    /// <summary>Σ_p x[p]·y[p] with a fixed summation order for a given length.</summary>
    private static unsafe float Dot(float* x, float* y, int len)
    {
        int p = 0;
        float s = 0f;
        if (Vector512.IsHardwareAccelerated && len >= 16)
        {
            // Four independent FMA chains hide the FMA latency.
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; p + 64 <= len; p += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(y + p), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 16), Vector512.Load(y + p + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 32), Vector512.Load(y + p + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p + 48), Vector512.Load(y + p + 48), s3);
            }
            for (; p + 16 <= len; p += 16)
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(y + p), s0);
            s = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector256.IsHardwareAccelerated && len >= 8)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; p + 32 <= len; p += 32)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p), Vector256.Load(y + p), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 8), Vector256.Load(y + p + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 16), Vector256.Load(y + p + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p + 24), Vector256.Load(y + p + 24), s3);
            }
            for (; p + 8 <= len; p += 8)
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + p), Vector256.Load(y + p), s0);
            s = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector128.IsHardwareAccelerated && len >= 4)
        {
            Vector128<float> s0 = default, s1 = default;
            for (; p + 8 <= len; p += 8)
            {
                s0 = Vector128.FusedMultiplyAdd(Vector128.Load(x + p), Vector128.Load(y + p), s0);
                s1 = Vector128.FusedMultiplyAdd(Vector128.Load(x + p + 4), Vector128.Load(y + p + 4), s1);
            }
            for (; p + 4 <= len; p += 4)
                s0 = Vector128.FusedMultiplyAdd(Vector128.Load(x + p), Vector128.Load(y + p), s0);
            s = Vector128.Sum(s0 + s1);
        }
        for (; p < len; p++) s = MathF.FusedMultiplyAdd(x[p], y[p], s);
        return s;
    }

    /// <summary>y[j] += alpha·x[j].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Axpy(float alpha, float* x, float* y, int len)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; j + 16 <= len; j += 16)
                Vector512.FusedMultiplyAdd(va, Vector512.Load(x + j), Vector512.Load(y + j)).Store(y + j);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; j + 8 <= len; j += 8)
                Vector256.FusedMultiplyAdd(va, Vector256.Load(x + j), Vector256.Load(y + j)).Store(y + j);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(alpha);
            for (; j + 4 <= len; j += 4)
                Vector128.FusedMultiplyAdd(va, Vector128.Load(x + j), Vector128.Load(y + j)).Store(y + j);
        }
        for (; j < len; j++) y[j] = MathF.FusedMultiplyAdd(alpha, x[j], y[j]);
    }
}

using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Gemm;

/// <summary>
/// GPU twins of <see cref="GemmKernels"/>, row-major float32:
/// <list type="bullet">
/// <item><c>MatMul</c>   C[m,n] (+)= Σ_k A[m,k]·B[k,n]</item>
/// <item><c>MatMulTN</c> C[m,n] (+)= Σ_k A[k,m]·B[k,n]   (A stored [k,m])</item>
/// <item><c>MatMulNT</c> C[m,n] (+)= Σ_k A[m,k]·B[n,k]   (B stored [n,k])</item>
/// <item><c>LinearForward</c> Y[m,n] = act(X[m,k]·W[n,k]ᵀ + bias[n])</item>
/// </list>
/// One tiled kernel serves every layout: a group computes a T×T tile of C, staging T×BK panels of A and B through
/// shared memory; each thread owns a 2×2 register block. T=32, BK=16 (256 threads) where the accelerator allows
/// groups of 256, else T=8, BK=8 (16 threads, ILGPU's CPU accelerator). Deterministic: no atomics.
/// </summary>
public static class GemmGpuKernels
{
    /// <summary>Uniform arguments of one GEMM launch.</summary>
    internal struct GemmArgs
    {
        public int M, N, K;
        public int TransA, TransB, Accumulate, Activation, HasBias;
    }

    public sealed class KernelSet : IGpuKernelSet<KernelSet>
    {
        internal Action<KernelConfig, GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Tiled = null!;
        internal Action<Index2D, GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Naive = null!;
        /// <summary>Output tile edge of the tiled kernel on this device (8 or 32).</summary>
        public int Tile { get; private init; }

        public static KernelSet Load(GpuDevice device)
        {
            var acc = device.Accelerator;
            bool large = acc.MaxNumThreadsPerGroup >= 256;
            return new KernelSet
            {
                Tile = large ? 32 : 8,
                Tiled = large
                    ? acc.LoadStreamKernel<GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Tiled32Kernel)
                    : acc.LoadStreamKernel<GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Tiled8Kernel),
                Naive = acc.LoadAutoGroupedStreamKernel<Index2D, GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(NaiveKernel),
            };
        }

        /// <summary>The launcher of the tiled kernel (exposed so tests can check it is loaded once).</summary>
        public Delegate TiledLauncher => Tiled;
    }

    public static void MatMul(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k, bool accumulate)
        => Launch(device, a, b, c, ArrayView<float>.Empty, m, n, k, transA: false, transB: false, accumulate, Activation.None, nameof(MatMul), naive: false);

    public static void MatMulTN(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k, bool accumulate)
        => Launch(device, a, b, c, ArrayView<float>.Empty, m, n, k, transA: true, transB: false, accumulate, Activation.None, nameof(MatMulTN), naive: false);

    public static void MatMulNT(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k, bool accumulate)
        => Launch(device, a, b, c, ArrayView<float>.Empty, m, n, k, transA: false, transB: true, accumulate, Activation.None, nameof(MatMulNT), naive: false);

    /// <summary>
    /// Y[m,n] = act(X[m,k]·W[n,k]ᵀ + bias[n]); W in PyTorch's [out, in] layout; an empty <paramref name="bias"/> means none.
    /// </summary>
    public static void LinearForward(GpuDevice device, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y,
        int m, int n, int k, Activation activation)
    {
        if (bias.Length > 0) GpuKernelUtil.AtLeast(bias, n, nameof(bias), nameof(LinearForward));
        Launch(device, x, w, y, bias, m, n, k, transA: false, transB: true, accumulate: false, activation, nameof(LinearForward), naive: false);
    }

    /// <summary>One thread per output element, no shared memory: the reference the tiled kernel is compared with.</summary>
    public static void MatMulNaive(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k,
        bool transA, bool transB, bool accumulate)
        => Launch(device, a, b, c, ArrayView<float>.Empty, m, n, k, transA, transB, accumulate, Activation.None, nameof(MatMulNaive), naive: true);

    private static void Launch(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias,
        int m, int n, int k, bool transA, bool transB, bool accumulate, Activation activation, string op, bool naive)
    {
        ArgumentNullException.ThrowIfNull(device);
        GpuKernelUtil.NonNegative(m, nameof(m), op);
        GpuKernelUtil.NonNegative(n, nameof(n), op);
        GpuKernelUtil.NonNegative(k, nameof(k), op);
        GpuKernelUtil.AtLeast(a, (long)m * k, nameof(a), op);
        GpuKernelUtil.AtLeast(b, (long)k * n, nameof(b), op);
        GpuKernelUtil.AtLeast(c, (long)m * n, nameof(c), op);
        if (m == 0 || n == 0) return;
        var args = new GemmArgs
        {
            M = m, N = n, K = k,
            TransA = transA ? 1 : 0, TransB = transB ? 1 : 0, Accumulate = accumulate ? 1 : 0,
            Activation = (int)activation, HasBias = bias.Length > 0 ? 1 : 0,
        };
        // Views must not be empty when handed to a kernel on every backend; a 1-element stand-in is never read.
        if (bias.Length == 0) bias = c;
        var set = device.Kernels<KernelSet>();
        if (naive)
        {
            set.Naive(new Index2D(n, m), args, a, b, c, bias);
            return;
        }
        int t = set.Tile;
        var grid = new Index2D(GpuKernelUtil.Blocks(n, t), GpuKernelUtil.Blocks(m, t));
        var group = new Index2D((t / 2) * (t / 2), 1);
        set.Tiled(new KernelConfig(grid, group), args, a, b, c, bias);
    }

    private static void NaiveKernel(Index2D idx, GemmArgs p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        int j = idx.X, i = idx.Y;
        float s = 0;
        for (int q = 0; q < p.K; q++)
        {
            float av = p.TransA != 0 ? a[(long)q * p.M + i] : a[(long)i * p.K + q];
            float bv = p.TransB != 0 ? b[(long)j * p.K + q] : b[(long)q * p.N + j];
            s += av * bv;
        }
        Store(p, c, bias, i, j, s);
    }

    private static void Tiled8Kernel(GemmArgs p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        var sa = SharedMemory.Allocate<float>(8 * 8);
        var sb = SharedMemory.Allocate<float>(8 * 8);
        TiledBody(sa, sb, 8, 8, p, a, b, c, bias);
    }

    private static void Tiled32Kernel(GemmArgs p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        var sa = SharedMemory.Allocate<float>(16 * 32);
        var sb = SharedMemory.Allocate<float>(16 * 32);
        TiledBody(sa, sb, 32, 16, p, a, b, c, bias);
    }

    /// <summary>
    /// Shared panels are k-major: sa[kk*T + i] = A(row0+i, k0+kk), sb[kk*T + j] = B(k0+kk, col0+j); out-of-range
    /// elements load as zero so edge tiles need no special path. Thread (tr, tc) computes rows row0+2tr..+1, cols col0+2tc..+1.
    /// </summary>
    private static void TiledBody(ArrayView<float> sa, ArrayView<float> sb, int t, int bk,
        GemmArgs p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        int tid = Group.IdxX;
        int threads = Group.DimX;
        int half = t / 2;
        int tr = tid / half, tc = tid % half;
        int row0 = Grid.IdxY * t, col0 = Grid.IdxX * t;
        float c00 = 0, c01 = 0, c10 = 0, c11 = 0;
        for (int k0 = 0; k0 < p.K; k0 += bk)
        {
            for (int e = tid; e < t * bk; e += threads)
            {
                // A panel: walk along k for row-major A (coalesced), along m for transposed A.
                int i, kk;
                if (p.TransA != 0) { kk = e / t; i = e % t; }
                else { i = e / bk; kk = e % bk; }
                int row = row0 + i, q = k0 + kk;
                float v = 0;
                if (row < p.M && q < p.K)
                    v = p.TransA != 0 ? a[(long)q * p.M + row] : a[(long)row * p.K + q];
                sa[kk * t + i] = v;

                int j;
                if (p.TransB != 0) { j = e / bk; kk = e % bk; }
                else { kk = e / t; j = e % t; }
                int col = col0 + j;
                q = k0 + kk;
                float w = 0;
                if (col < p.N && q < p.K)
                    w = p.TransB != 0 ? b[(long)col * p.K + q] : b[(long)q * p.N + col];
                sb[kk * t + j] = w;
            }
            Group.Barrier();
            for (int kk = 0; kk < bk; kk++)
            {
                float a0 = sa[kk * t + 2 * tr], a1 = sa[kk * t + 2 * tr + 1];
                float b0 = sb[kk * t + 2 * tc], b1 = sb[kk * t + 2 * tc + 1];
                c00 += a0 * b0; c01 += a0 * b1;
                c10 += a1 * b0; c11 += a1 * b1;
            }
            Group.Barrier();
        }
        int r = row0 + 2 * tr, cc = col0 + 2 * tc;
        if (r < p.M)
        {
            if (cc < p.N) Store(p, c, bias, r, cc, c00);
            if (cc + 1 < p.N) Store(p, c, bias, r, cc + 1, c01);
        }
        if (r + 1 < p.M)
        {
            if (cc < p.N) Store(p, c, bias, r + 1, cc, c10);
            if (cc + 1 < p.N) Store(p, c, bias, r + 1, cc + 1, c11);
        }
    }

    private static void Store(GemmArgs p, ArrayView<float> c, ArrayView<float> bias, int i, int j, float s)
    {
        long at = (long)i * p.N + j;
        if (p.Accumulate != 0) s += c[at];
        if (p.HasBias != 0) s += bias[j];
        c[at] = GpuKernelUtil.Activate(s, p.Activation);
    }
}

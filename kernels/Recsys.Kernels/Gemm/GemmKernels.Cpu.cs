using Recsys.Kernels.Common;

namespace Recsys.Kernels.Gemm;

/// <summary>
/// Single-precision GEMM in the three layouts an MLP's forward and backward need, row-major:
/// <list type="bullet">
/// <item><c>MatMul</c>   C[m,n] (+)= Σ_k A[m,k]·B[k,n]   (A·B)</item>
/// <item><c>MatMulTN</c> C[m,n] (+)= Σ_k A[k,m]·B[k,n]   (Aᵀ·B, A stored [k,m])</item>
/// <item><c>MatMulNT</c> C[m,n] (+)= Σ_k A[m,k]·B[n,k]   (A·Bᵀ, B stored [n,k])</item>
/// </list>
/// <c>accumulate</c> adds into C instead of overwriting it (backward's <c>+=</c> contract).
/// </summary>
public static partial class GemmKernels
{
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate)
    {
        CheckShapes(a.Length, b.Length, c.Length, m, n, k, nameof(MatMul));
        // Simple i-k-j loop (vectorisable inner j); replaced by the blocked kernel.
        for (int i = 0; i < m; i++)
        {
            var ci = c.Slice(i * n, n);
            if (!accumulate) ci.Clear();
            for (int p = 0; p < k; p++)
            {
                float av = a[i * k + p];
                var bp = b.Slice(p * n, n);
                for (int j = 0; j < n; j++) ci[j] += av * bp[j];
            }
        }
    }

    public static void MatMulTN(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate)
    {
        CheckShapes(a.Length, b.Length, c.Length, m, n, k, nameof(MatMulTN));
        if (!accumulate) c.Slice(0, m * n).Clear();
        for (int p = 0; p < k; p++)
        {
            var bp = b.Slice(p * n, n);
            for (int i = 0; i < m; i++)
            {
                float av = a[p * m + i];
                var ci = c.Slice(i * n, n);
                for (int j = 0; j < n; j++) ci[j] += av * bp[j];
            }
        }
    }

    public static void MatMulNT(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate)
    {
        CheckShapes(a.Length, b.Length, c.Length, m, n, k, nameof(MatMulNT));
        for (int i = 0; i < m; i++)
        {
            var ai = a.Slice(i * k, k);
            for (int j = 0; j < n; j++)
            {
                var bj = b.Slice(j * k, k);
                float s = 0;
                for (int p = 0; p < k; p++) s += ai[p] * bj[p];
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
        }
    }

    /// <summary>
    /// Linear layer forward with fused epilogue: Y[m,n] = act(X[m,k]·W[n,k]ᵀ + bias[n]).
    /// W uses PyTorch's [out, in] layout. <paramref name="bias"/> may be empty (no bias).
    /// </summary>
    public static void LinearForward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y,
        int m, int n, int k, Activation activation)
    {
        MatMulNT(x, w, y, m, n, k, accumulate: false);
        if (!bias.IsEmpty)
        {
            KernelGuard.AtLeast(bias, n, nameof(bias), nameof(LinearForward));
            for (int i = 0; i < m; i++)
            {
                var yi = y.Slice(i * n, n);
                for (int j = 0; j < n; j++) yi[j] += bias[j];
            }
        }
        var all = y.Slice(0, m * n);
        switch (activation)
        {
            case Activation.Relu:
                for (int i = 0; i < all.Length; i++) all[i] = MathF.Max(all[i], 0f);
                break;
            case Activation.Sigmoid:
                for (int i = 0; i < all.Length; i++) all[i] = 1f / (1f + MathF.Exp(-all[i]));
                break;
        }
    }

    private static void CheckShapes(int aLen, int bLen, int cLen, int m, int n, int k, string op)
    {
        KernelGuard.NonNegative(m, nameof(m), op);
        KernelGuard.NonNegative(n, nameof(n), op);
        KernelGuard.NonNegative(k, nameof(k), op);
        if (aLen < (long)m * k) throw new ArgumentException($"{op}: 'a' needs {(long)m * k} elements (m={m} x k={k}), got {aLen}.", "a");
        if (bLen < (long)k * n) throw new ArgumentException($"{op}: 'b' needs {(long)k * n} elements (k={k} x n={n}), got {bLen}.", "b");
        if (cLen < (long)m * n) throw new ArgumentException($"{op}: 'c' needs {(long)m * n} elements (m={m} x n={n}), got {cLen}.", "c");
    }
}

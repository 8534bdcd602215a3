using ILGPU.Runtime.Cuda;
using NUnit.Framework;
using Recsys.Kernels.Gemm;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Gemm;

/// <summary>
/// The mapping of a row-major GEMM onto one column-major cuBLAS sgemm, checked without a GPU: a plain
/// column-major sgemm with BLAS semantics (op, leading dimensions) executes the planned call on the row-major
/// buffers, and the result must equal the row-major product.
/// </summary>
[Category("Kernel")]
public class CuBlasGemmCallTests
{
    /// <summary>BLAS sgemm, column-major: C[M,N] = alpha·op(X)·op(Y) + beta·C, element (r, c) of a matrix at [r + c·ld].</summary>
    private static void ColumnMajorSgemm(CuBlasOperation opX, CuBlasOperation opY, int m, int n, int k, float alpha,
        float[] x, int ldx, float[] y, int ldy, float beta, float[] c, int ldc)
    {
        for (int col = 0; col < n; col++)
            for (int row = 0; row < m; row++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                {
                    float xv = opX == CuBlasOperation.NonTranspose ? x[row + p * ldx] : x[p + row * ldx];
                    float yv = opY == CuBlasOperation.NonTranspose ? y[p + col * ldy] : y[col + p * ldy];
                    s += (double)xv * yv;
                }
                c[row + col * ldc] = (float)(alpha * s + beta * c[row + col * ldc]);
            }
    }

    [Test]
    public void For_EveryLayoutOddSizes_ColumnMajorCallEqualsRowMajorProduct(
        [Values(GemmLayout.NN, GemmLayout.TN, GemmLayout.NT)] GemmLayout layout, [Values(false, true)] bool accumulate)
    {
        foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 17, 5), (17, 3, 1), (7, 7, 33), (1, 65, 3), (65, 2, 9) })
        {
            var a = TestData.Floats(m * k, 1 + m);
            var b = TestData.Floats(k * n, 2 + n);
            var c0 = TestData.Floats(m * n, 3 + k);
            var expected = new double[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = accumulate ? c0[i * n + j] : 0;
                    for (int p = 0; p < k; p++)
                    {
                        float av = layout == GemmLayout.TN ? a[p * m + i] : a[i * k + p];
                        float bv = layout == GemmLayout.NT ? b[j * k + p] : b[p * n + j];
                        s += (double)av * bv;
                    }
                    expected[i * n + j] = s;
                }

            var call = CuBlasGemmCall.For(layout, m, n, k);
            var c = (float[])c0.Clone();
            ColumnMajorSgemm(call.OpFirst, call.OpSecond, call.M, call.N, call.K, 1f, b, call.LdFirst, a, call.LdSecond,
                accumulate ? 1f : 0f, c, call.LdC);
            TestData.AssertClose(c, expected, rtol: 1e-5, atol: 1e-5, $"{layout} m {m} n {n} k {k} accumulate {accumulate}");
        }
    }

    [Test]
    public void For_UnknownLayout_ThrowsNamingIt()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => CuBlasGemmCall.For((GemmLayout)7, 1, 1, 1));
        Assert.That(ex!.Message, Does.Contain("unknown layout 7"));
    }
}

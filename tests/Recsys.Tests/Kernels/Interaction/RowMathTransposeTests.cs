using NUnit.Framework;
using Recsys.Kernels.Interaction;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Interaction;

[Category("Kernel")]
public class RowMathTransposeTests
{
    [Test]
    public unsafe void Transpose_OddSizesAndStrides_MatchesElementwise(
        [Values(1, 7, 8, 9, 17, 27, 40)] int rows, [Values(1, 3, 8, 16, 32, 33)] int cols)
    {
        // Whole 8 x 8 register blocks where rows and cols allow, scalar tails elsewhere; padded strides both sides.
        int srcStride = cols + 5, dstStride = rows + 3;
        var src = TestData.Floats(rows * srcStride, rows * 100 + cols);
        var dst = new float[cols * dstStride];
        Array.Fill(dst, float.NaN);
        fixed (float* s = src, d = dst)
            RowMath.Transpose(s, srcStride, rows, cols, d, dstStride);
        for (int c = 0; c < cols; c++)
            for (int r = 0; r < dstStride; r++)
            {
                float got = dst[c * dstStride + r];
                if (r < rows) Assert.That(got, Is.EqualTo(src[r * srcStride + c]), $"dst[{c}, {r}]");
                else Assert.That(float.IsNaN(got), $"padding dst[{c}, {r}] was written");
            }
    }
}

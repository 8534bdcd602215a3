using NUnit.Framework;
using Recsys.Kernels.Common;
using Recsys.Kernels.Reduce;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Reduce;

[Category("Kernel")]
public class ReduceKernelsTests
{
    [Test]
    public void ColumnSums_TailSizes_MatchesReference(
        [Values(0, 1, 2, 17, 67, 4096)] int rows, [Values(0, 1, 3, 15, 16, 17, 33, 65, 512)] int cols, [Values(false, true)] bool accumulate)
    {
        var x = TestData.Floats(rows * cols, rows * 1000 + cols);
        var sums = TestData.Floats(cols, 5);
        var expected = new double[cols];
        for (int j = 0; j < cols; j++)
        {
            double s = accumulate ? sums[j] : 0;
            for (int i = 0; i < rows; i++) s += x[i * cols + j];
            expected[j] = s;
        }
        ReduceKernels.ColumnSums(x, sums, rows, cols, accumulate);
        TestData.AssertClose(sums, expected, 1e-5, 1e-5 * (rows + 1), $"ColumnSums {rows}x{cols}");
    }

    /// <summary>Every width, narrow (a scalar loop) or not (a vector add per row): the float sums in row order, bit for bit.</summary>
    [Test]
    public void ColumnSums_AnyWidth_AreTheRowOrderFloatSums([Values(1, 3, 15, 16, 17, 40)] int cols)
    {
        const int rows = 1001;
        var x = TestData.Floats(rows * cols, 77 + cols);
        var sums = TestData.Floats(cols, 78);
        var expected = (float[])sums.Clone();
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) expected[j] += x[i * cols + j];
        ReduceKernels.ColumnSums(x, sums, rows, cols, accumulate: true);
        Assert.That(sums, Is.EqualTo(expected));
    }

    [Test]
    public void ColumnSums_OneVersusAllThreads_BitIdentical()
    {
        int rows = 4096, cols = 515;
        var x = TestData.Floats(rows * cols, 3);
        var s1 = new float[cols];
        var s2 = new float[cols];
        int many = Math.Max(2, KernelParallelism.MaxThreads);
        using (KernelThreads.Use(1)) ReduceKernels.ColumnSums(x, s1, rows, cols, false);
        using (KernelThreads.Use(many)) ReduceKernels.ColumnSums(x, s2, rows, cols, false);
        Assert.That(s2, Is.EqualTo(s1));
    }

    [Test]
    public void Sum_TailSizes_MatchesReference([ValueSource(typeof(TestData), nameof(TestData.TailSizes))] int n)
    {
        var x = TestData.Floats(n, n);
        double expected = x.Sum(v => (double)v);
        Assert.That(ReduceKernels.Sum(x), Is.EqualTo(expected).Within(1e-9));
    }
}

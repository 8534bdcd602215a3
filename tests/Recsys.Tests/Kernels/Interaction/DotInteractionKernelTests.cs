using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using NUnit.Framework;
using Recsys.Kernels.Interaction;
using Recsys.Tests.Support;

namespace Recsys.Tests.Kernels.Interaction;

[Category("Kernel")]
public class DotInteractionKernelTests
{
    /// <summary>
    /// F + 1 rows of T: the forward's eight-row blocks end full (26: rows 1–24, then a four-row tail), part-full (5, 7: one
    /// block of 5 or 7 rows; 46: a last block of 6 rows whose columns need 32 + 16 past the 48 padded ones) or not at all
    /// (1–3, 12: four-row blocks only after the first).
    /// </summary>
    private static readonly int[] Features = { 1, 2, 3, 5, 7, 12, 26, 46 };
    private static readonly int[] Batches = { 1, 3, 5 };

    /// <summary>T row i of sample b, in float64: row 0 is dense, rows 1..F are the embeddings.</summary>
    private static double T(float[] dense, float[] sparse, int b, int i, int k, int f, int d) =>
        i == 0 ? dense[b * d + k] : sparse[(b * f + i - 1) * d + k];

    private static double[] ReferenceForward(float[] dense, float[] sparse, int batch, int f, int d)
    {
        int width = d + (f + 1) * f / 2;
        var y = new double[batch * width];
        for (int b = 0; b < batch; b++)
        {
            for (int k = 0; k < d; k++) y[b * width + k] = dense[b * d + k];
            int p = d;
            for (int i = 1; i <= f; i++)
                for (int j = 0; j < i; j++)
                {
                    double s = 0;
                    for (int k = 0; k < d; k++) s += T(dense, sparse, b, i, k, f, d) * T(dense, sparse, b, j, k, f, d);
                    y[b * width + p++] = s;
                }
        }
        return y;
    }

    [TestCase(1), TestCase(3), TestCase(7), TestCase(15), TestCase(16), TestCase(17)]
    [TestCase(31), TestCase(33), TestCase(63), TestCase(64), TestCase(65), TestCase(67)]
    public void Forward_OddSizes_MatchesFloat64Reference(int d)
    {
        foreach (int f in Features)
            foreach (int batch in Batches)
            {
                var dense = TestData.Floats(batch * d, 1 + d);
                var sparse = TestData.Floats(batch * f * d, 2 + f);
                var y = new float[batch * DotInteractionKernels.OutputDim(f, d)];
                DotInteractionKernels.Forward(dense, sparse, y, batch, f, d);
                TestData.AssertClose(y, ReferenceForward(dense, sparse, batch, f, d), 1e-4, 1e-4, $"forward B={batch} F={f} D={d}");
            }
    }

    /// <summary>
    /// The triangle's rows are stored as whole vectors whose overhang is overwritten by the rows after them: nothing may
    /// land past a sample's own output (the next sample's, or past the buffer). Each sample is written alone into a buffer
    /// of sentinels, for F up to 40 (the overhang rule changes at F = 15).
    /// </summary>
    [Test]
    public void Forward_WritesNothingPastEachSamplesOutput([Values(1, 16, 64)] int d)
    {
        const float sentinel = 12345.5f;
        for (int f = 1; f <= 40; f++)
        {
            int width = DotInteractionKernels.OutputDim(f, d);
            var dense = TestData.Floats(d, 3 + f);
            var sparse = TestData.Floats(f * d, 4 + f);
            var y = new float[width + 64];
            Array.Fill(y, sentinel);
            DotInteractionKernels.Forward(dense, sparse, y.AsSpan(0, width), 1, f, d);
            for (int i = width; i < y.Length; i++)
                Assert.That(y[i], Is.EqualTo(sentinel), $"F={f} D={d}: element {i} past the output ({width} wide) was written");
            TestData.AssertClose(y.AsSpan(0, width).ToArray(), ReferenceForward(dense, sparse, 1, f, d), 1e-4, 1e-4, $"forward F={f} D={d}");
        }
    }

    /// <summary>Random backward inputs and starting gradients; the gradients' seeds follow dOutput's (seed + 1, seed + 2).</summary>
    private static (float[] Dense, float[] Sparse, float[] DOut, float[] DDense, float[] DSparse) BackwardInputs(int batch, int f, int d,
        int denseSeed, int sparseSeed, int dOutSeed) =>
        (TestData.Floats(batch * d, denseSeed), TestData.Floats(batch * f * d, sparseSeed),
         TestData.Floats(batch * DotInteractionKernels.OutputDim(f, d), dOutSeed),
         TestData.Floats(batch * d, dOutSeed + 1), TestData.Floats(batch * f * d, dOutSeed + 2));

    [TestCase(1), TestCase(3), TestCase(7), TestCase(15), TestCase(16), TestCase(17)]
    [TestCase(31), TestCase(33), TestCase(63), TestCase(64), TestCase(65), TestCase(67)]
    public void Backward_OddSizes_AccumulatesFloat64Reference(int d)
    {
        foreach (int f in Features)
            foreach (int batch in Batches)
            {
                int width = DotInteractionKernels.OutputDim(f, d);
                var (dense, sparse, dOut, dDense, dSparse) = BackwardInputs(batch, f, d, 3 + d, 4 + f, 5);
                var expDense = dDense.Select(v => (double)v).ToArray();
                var expSparse = dSparse.Select(v => (double)v).ToArray();
                for (int b = 0; b < batch; b++)
                {
                    for (int k = 0; k < d; k++) expDense[b * d + k] += dOut[b * width + k];
                    int p = d;
                    for (int i = 1; i <= f; i++)
                        for (int j = 0; j < i; j++)
                        {
                            double g = dOut[b * width + p++];
                            for (int k = 0; k < d; k++)
                            {
                                double ti = T(dense, sparse, b, i, k, f, d), tj = T(dense, sparse, b, j, k, f, d);
                                expSparse[(b * f + i - 1) * d + k] += g * tj;
                                if (j == 0) expDense[b * d + k] += g * ti;
                                else expSparse[(b * f + j - 1) * d + k] += g * ti;
                            }
                        }
                }
                DotInteractionKernels.Backward(dense, sparse, dOut, dDense, dSparse, batch, f, d);
                TestData.AssertClose(dDense, expDense, 1e-4, 2e-4, $"dDense B={batch} F={f} D={d}");
                TestData.AssertClose(dSparse, expSparse, 1e-4, 2e-4, $"dSparse B={batch} F={f} D={d}");
            }
    }

    [Test]
    public void Backward_Overwrite_WritesEveryElement_SameAsAccumulatingIntoZeros([Values(1, 17, 64, 67)] int d,
        [Values(false, true)] bool accumulateDense, [Values(false, true)] bool accumulateSparse)
    {
        foreach (int f in Features)
        {
            const int batch = 5;
            var (dense, sparse, dOut, dDense, dSparse) = BackwardInputs(batch, f, d, 11 + d, 12 + f, 13);
            // Overwritten outputs start as garbage (NaN): every element must be written, none read.
            if (!accumulateDense) Array.Fill(dDense, float.NaN);
            if (!accumulateSparse) Array.Fill(dSparse, float.NaN);
            var refDense = accumulateDense ? (float[])dDense.Clone() : new float[batch * d];
            var refSparse = accumulateSparse ? (float[])dSparse.Clone() : new float[batch * f * d];
            DotInteractionKernels.Backward(dense, sparse, dOut, refDense, refSparse, batch, f, d);
            DotInteractionKernels.Backward(dense, sparse, dOut, dDense, dSparse, batch, f, d, accumulateDense, accumulateSparse);
            Assert.That(dDense, Is.EqualTo(refDense), $"dDense F={f} D={d}");
            Assert.That(dSparse, Is.EqualTo(refSparse), $"dSparse F={f} D={d}");
        }
    }

    /// <summary>
    /// Every gradient element is one float32 FMA chain over T's rows in order (G_ii = 0 included), started from zero, then
    /// added to the old value when accumulating; the dense row then gets dOutput's pass-through. Shapes for each path: the
    /// blocked AVX-512 one (F + 1 ≤ 32, D a multiple of 64; three-row blocks that end full, with one or with two spare rows;
    /// G with one or two 16-column halves) and the general one (F + 1 = 33, D = 48).
    /// </summary>
    [Test]
    public void Backward_EveryElementIsTheFloat32FmaChainInOrder([Values(1, 2, 3, 4, 15, 16, 17, 26, 31, 32)] int f,
        [Values(48, 64, 128)] int d, [Values(false, true)] bool accumulate, [Values(1, 2)] int threads)
    {
        if (!Vector128.IsHardwareAccelerated) Assert.Ignore("Without SIMD the kernel's scalar tail rounds each product before adding it.");
        const int batch = 5;
        int n = f + 1, width = DotInteractionKernels.OutputDim(f, d);
        var (dense, sparse, dOut, dDense, dSparse) = BackwardInputs(batch, f, d, 21 + d, 22 + f, 23);
        var expDense = (float[])dDense.Clone();
        var expSparse = (float[])dSparse.Clone();
        for (int b = 0; b < batch; b++)
        {
            var g = new float[n, n];
            int p = b * width + d;
            for (int i = 1; i < n; i++)
                for (int j = 0; j < i; j++) g[i, j] = g[j, i] = dOut[p++];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < d; c++)
                {
                    float acc = 0f;
                    for (int k = 0; k < n; k++) acc = MathF.FusedMultiplyAdd(g[i, k], (float)T(dense, sparse, b, k, c, f, d), acc);
                    if (i == 0)
                    {
                        int at = b * d + c;
                        expDense[at] = (accumulate ? expDense[at] + acc : acc) + dOut[b * width + c];
                    }
                    else
                    {
                        int at = (b * f + i - 1) * d + c;
                        expSparse[at] = accumulate ? expSparse[at] + acc : acc;
                    }
                }
        }
        using (KernelThreads.Use(threads))
            DotInteractionKernels.Backward(dense, sparse, dOut, dDense, dSparse, batch, f, d, accumulate, accumulate);
        Assert.That(dDense, Is.EqualTo(expDense), $"dDense F={f} D={d}");
        Assert.That(dSparse, Is.EqualTo(expSparse), $"dSparse F={f} D={d}");
    }

    /// <summary>
    /// The last sample's pair gradients end right at an inaccessible page: building G reads each triangle row with
    /// whole-vector loads whose lanes past the row are masked off, and must touch nothing past the triangle's end (an
    /// unmasked load would fault here). Linux only (mmap / mprotect).
    /// </summary>
    [Test]
    public unsafe void Backward_ReadsNothingPastTheLastSamplesPairGradients([Values(5, 17, 26, 31)] int f)
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("needs mmap / mprotect");
        const int batch = 3, d = 64;
        int width = DotInteractionKernels.OutputDim(f, d);
        var (dense, sparse, dOut, dDense, dSparse) = BackwardInputs(batch, f, d, 31, 32, 33);
        var expDense = (float[])dDense.Clone();
        var expSparse = (float[])dSparse.Clone();
        DotInteractionKernels.Backward(dense, sparse, dOut, expDense, expSparse, batch, f, d);

        const int page = 4096;
        long bytes = (long)dOut.Length * sizeof(float), mapped = (bytes + page - 1) / page * page + page;
        byte* region = (byte*)Mmap(IntPtr.Zero, (nuint)mapped, 3 /* read | write */, 0x22 /* private | anonymous */, -1, 0);
        Assert.That((nint)region, Is.Not.EqualTo((nint)(-1)), "mmap failed");
        try
        {
            byte* guard = region + mapped - page;
            Assert.That(Mprotect((IntPtr)guard, page, 0 /* none */), Is.EqualTo(0), "mprotect failed");
            var atEnd = new Span<float>(guard - bytes, dOut.Length);
            dOut.CopyTo(atEnd);
            DotInteractionKernels.Backward(dense, sparse, atEnd, dDense, dSparse, batch, f, d);
        }
        finally
        {
            Munmap((IntPtr)region, (nuint)mapped);
        }
        Assert.That(dDense, Is.EqualTo(expDense));
        Assert.That(dSparse, Is.EqualTo(expSparse));
    }

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern IntPtr Mmap(IntPtr addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static extern int Mprotect(IntPtr addr, nuint length, int prot);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int Munmap(IntPtr addr, nuint length);

    [Test]
    public void Forward_OutputTooSmall_ThrowsNamingSizes()
    {
        var ex = Assert.Throws<ArgumentException>(() => DotInteractionKernels.Forward(new float[8], new float[24], new float[10], 2, 3, 4));
        Assert.That(ex!.Message, Does.Contain("output").And.Contain("[2, 10]"));
    }
}

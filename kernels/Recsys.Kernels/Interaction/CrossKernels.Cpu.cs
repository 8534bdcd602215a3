using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;
using Recsys.Kernels.Reduce;
using Recsys.Kernels.Gemm;

namespace Recsys.Kernels.Interaction;

/// <summary>
/// DCNv2 cross layer, row-major, batch B, width d:
/// <code>y = x0 ⊙ (W·x_l + b) + x_l</code>
/// full rank (W [d, d], PyTorch's [out, in] layout) or low rank (W = U·Vᵀ, U and V [d, r]).
/// The GEMMs go to <see cref="GemmKernels"/>; the elementwise part (⊙ x0, + b, + x_l) and its
/// backward are fused into one pass over the rows each.
/// </summary>
public static unsafe class CrossKernels
{
    /// <summary>
    /// Full-rank forward. <paramref name="hidden"/> [B, d] receives W·x_l + b (saved for backward);
    /// <paramref name="output"/> [B, d] receives y.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> x0, ReadOnlySpan<float> xl, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        Span<float> hidden, Span<float> output, int batch, int dim)
    {
        CheckRows(x0, xl, hidden, output, batch, dim, nameof(Forward));
        KernelGuard.AtLeast(weight, (long)dim * dim, nameof(weight), nameof(Forward));
        KernelGuard.AtLeast(bias, dim, nameof(bias), nameof(Forward));
        // The bias and the residual product ride in the GEMM: each tile of hidden gets its bias as it is stored, and each
        // thread's block of rows its y once the block is final, while it is in L2 (no second pass reading hidden back).
        GemmKernels.LinearForwardResidualProduct(xl, weight, bias.Slice(0, dim), hidden, x0, xl, output, batch, dim, dim);
    }

    /// <summary>
    /// Full-rank backward. <paramref name="dPre"/> [B, d] is scratch (receives dOutput ⊙ x0). Every
    /// gradient accumulates (dX0 / dXl are overwritten instead when so flagged, see <see cref="BackwardEpilogue"/>); an empty <paramref name="dX0"/> / <paramref name="dXl"/> /
    /// <paramref name="dWeight"/> / <paramref name="dBias"/> is skipped. dX0 and dXl may be the same
    /// buffer (first layer, x_l = x0).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> x0, ReadOnlySpan<float> xl, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> hidden, Span<float> dPre, Span<float> dX0, Span<float> dXl, Span<float> dWeight, Span<float> dBias, int batch, int dim,
        bool overwriteDX0 = false, bool overwriteDXl = false)
    {
        KernelGuard.AtLeast(weight, (long)dim * dim, nameof(weight), nameof(Backward));
        BackwardEpilogue(dOutput, x0, hidden, dPre, dX0, dXl, batch, dim, overwriteDX0, overwriteDXl);
        // dW += dPreᵀ·x_l and dBias += Σ_b dPre in one pass over dPre (the bias sums are taken as the product reads it).
        GemmKernels.LinearWeightGradients(dPre, xl, dWeight, dBias, dim, dim, batch, accumulate: true);
        if (!dXl.IsEmpty) GemmKernels.MatMul(dPre, weight, dXl, batch, dim, dim, accumulate: true);
    }

    /// <summary>
    /// Low-rank forward. <paramref name="projected"/> [B, r] receives x_l·V (saved for backward);
    /// <paramref name="hidden"/> [B, d] receives U·(Vᵀ x_l) + b; <paramref name="output"/> [B, d] receives y.
    /// </summary>
    public static void ForwardLowRank(ReadOnlySpan<float> x0, ReadOnlySpan<float> xl, ReadOnlySpan<float> u, ReadOnlySpan<float> v,
        ReadOnlySpan<float> bias, Span<float> projected, Span<float> hidden, Span<float> output, int batch, int dim, int rank)
    {
        CheckRows(x0, xl, hidden, output, batch, dim, nameof(ForwardLowRank));
        KernelGuard.Positive(rank, nameof(rank), nameof(ForwardLowRank));
        KernelGuard.AtLeast(u, (long)dim * rank, nameof(u), nameof(ForwardLowRank));
        KernelGuard.AtLeast(v, (long)dim * rank, nameof(v), nameof(ForwardLowRank));
        KernelGuard.AtLeast(projected, (long)batch * rank, nameof(projected), nameof(ForwardLowRank));
        GemmKernels.MatMul(xl, v, projected, batch, rank, dim, accumulate: false);
        GemmKernels.MatMulNT(projected, u, hidden, batch, dim, rank, accumulate: false);
        ForwardEpilogue(x0, xl, bias, hidden, output, batch, dim);
    }

    /// <summary>
    /// Low-rank backward. Scratch: <paramref name="dPre"/> [B, d], <paramref name="dProjected"/> [B, r].
    /// Gradients accumulate; empty ones are skipped (dProjected is still needed for dV / dXl).
    /// </summary>
    public static void BackwardLowRank(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> x0, ReadOnlySpan<float> xl,
        ReadOnlySpan<float> u, ReadOnlySpan<float> v, ReadOnlySpan<float> projected, ReadOnlySpan<float> hidden,
        Span<float> dPre, Span<float> dProjected, Span<float> dX0, Span<float> dXl, Span<float> dU, Span<float> dV, Span<float> dBias,
        int batch, int dim, int rank)
    {
        KernelGuard.Positive(rank, nameof(rank), nameof(BackwardLowRank));
        KernelGuard.AtLeast(u, (long)dim * rank, nameof(u), nameof(BackwardLowRank));
        KernelGuard.AtLeast(v, (long)dim * rank, nameof(v), nameof(BackwardLowRank));
        KernelGuard.AtLeast(dProjected, (long)batch * rank, nameof(dProjected), nameof(BackwardLowRank));
        BackwardEpilogue(dOutput, x0, hidden, dPre, dX0, dXl, batch, dim);
        if (!dU.IsEmpty) GemmKernels.MatMulTN(dPre, projected, dU, dim, rank, batch, accumulate: true);
        if (!dBias.IsEmpty) ReduceKernels.ColumnSums(dPre, dBias, batch, dim, accumulate: true);
        if (dV.IsEmpty && dXl.IsEmpty) return;
        GemmKernels.MatMul(dPre, u, dProjected, batch, rank, dim, accumulate: false);
        if (!dV.IsEmpty) GemmKernels.MatMulTN(xl, dProjected, dV, dim, rank, batch, accumulate: true);
        if (!dXl.IsEmpty) GemmKernels.MatMulNT(dProjected, v, dXl, batch, dim, rank, accumulate: true);
    }

    /// <summary>
    /// Fused forward epilogue: hidden += b (in place), output = x0 ⊙ hidden + x_l (one fused multiply-add per element, as in
    /// the full-rank forward's GEMM epilogue). All [B, d], bias [d].
    /// </summary>
    public static void ForwardEpilogue(ReadOnlySpan<float> x0, ReadOnlySpan<float> xl, ReadOnlySpan<float> bias,
        Span<float> hidden, Span<float> output, int batch, int dim)
    {
        CheckRows(x0, xl, hidden, output, batch, dim, nameof(ForwardEpilogue));
        KernelGuard.AtLeast(bias, dim, nameof(bias), nameof(ForwardEpilogue));
        if (batch == 0 || dim == 0) return;
        fixed (float* p0 = x0, pl = xl, pb = bias, ph = hidden, po = output)
        {
            var body = new ForwardEpilogueBody { X0 = p0, Xl = pl, Bias = pb, Hidden = ph, Output = po, Batch = batch, Dim = dim };
            KernelParallelism.For(KernelParallelism.Chunks(batch, 4L * dim, 262_144), ref body);
        }
    }

    /// <summary>
    /// Fused backward epilogue: dPre = dOutput ⊙ x0; dX0 += dOutput ⊙ hidden; dXl += dOutput (the
    /// residual). Empty dX0 / dXl are skipped; they may alias. <paramref name="overwriteDX0"/> /
    /// <paramref name="overwriteDXl"/>: store instead of add (a gradient buffer just made, not zeroed); when the two
    /// alias only dX0 may be overwritten (it is written first, element by element).
    /// </summary>
    public static void BackwardEpilogue(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> x0, ReadOnlySpan<float> hidden,
        Span<float> dPre, Span<float> dX0, Span<float> dXl, int batch, int dim, bool overwriteDX0 = false, bool overwriteDXl = false)
    {
        long size = (long)batch * dim;
        KernelGuard.NonNegative(batch, nameof(batch), nameof(BackwardEpilogue));
        KernelGuard.NonNegative(dim, nameof(dim), nameof(BackwardEpilogue));
        KernelGuard.AtLeast(dOutput, size, nameof(dOutput), nameof(BackwardEpilogue));
        KernelGuard.AtLeast(x0, size, nameof(x0), nameof(BackwardEpilogue));
        KernelGuard.AtLeast(hidden, size, nameof(hidden), nameof(BackwardEpilogue));
        KernelGuard.AtLeast(dPre, size, nameof(dPre), nameof(BackwardEpilogue));
        if (!dX0.IsEmpty) KernelGuard.AtLeast(dX0, size, nameof(dX0), nameof(BackwardEpilogue));
        if (!dXl.IsEmpty) KernelGuard.AtLeast(dXl, size, nameof(dXl), nameof(BackwardEpilogue));
        if (overwriteDXl && !dX0.IsEmpty && dX0.Overlaps(dXl))
            throw new ArgumentException($"{nameof(BackwardEpilogue)}: dXl shares memory with dX0 (x_l = x0), so it cannot be overwritten: " +
                "dX0 is written first and dXl must add to it. Pass overwriteDXl: false (overwriteDX0 may still be true).", nameof(overwriteDXl));
        if (size == 0) return;
        fixed (float* pg = dOutput, p0 = x0, ph = hidden, pp = dPre, pd0 = dX0, pdl = dXl)
        {
            var body = new BackwardEpilogueBody
            {
                DOutput = pg, X0 = p0, Hidden = ph, DPre = pp, DX0 = dX0.IsEmpty ? null : pd0, DXl = dXl.IsEmpty ? null : pdl,
                Batch = batch, Dim = dim, OverwriteDX0 = overwriteDX0, OverwriteDXl = overwriteDXl,
            };
            KernelParallelism.For(KernelParallelism.Chunks(batch, 6L * dim, 262_144), ref body);
        }
    }

    private struct ForwardEpilogueBody : IChunkBody
    {
        public float* X0, Xl, Bias, Hidden, Output;
        public int Batch, Dim;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(Batch, chunks, chunk);
            int n = Dim;
            for (int r = start; r < end; r++)
            {
                long o = (long)r * n;
                float* x0 = X0 + o, xl = Xl + o, h = Hidden + o, y = Output + o, b = Bias;
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                    for (; i + 16 <= n; i += 16)
                    {
                        var hv = Vector512.Load(h + i) + Vector512.Load(b + i);
                        hv.Store(h + i);
                        Vector512.FusedMultiplyAdd(Vector512.Load(x0 + i), hv, Vector512.Load(xl + i)).Store(y + i);
                    }
                if (Vector256.IsHardwareAccelerated)
                    for (; i + 8 <= n; i += 8)
                    {
                        var hv = Vector256.Load(h + i) + Vector256.Load(b + i);
                        hv.Store(h + i);
                        Vector256.FusedMultiplyAdd(Vector256.Load(x0 + i), hv, Vector256.Load(xl + i)).Store(y + i);
                    }
                if (Vector128.IsHardwareAccelerated)
                    for (; i + 4 <= n; i += 4)
                    {
                        var hv = Vector128.Load(h + i) + Vector128.Load(b + i);
                        hv.Store(h + i);
                        Vector128.FusedMultiplyAdd(Vector128.Load(x0 + i), hv, Vector128.Load(xl + i)).Store(y + i);
                    }
                for (; i < n; i++)
                {
                    float hv = h[i] + b[i];
                    h[i] = hv;
                    y[i] = MathF.FusedMultiplyAdd(x0[i], hv, xl[i]);
                }
            }
        }
    }

    private struct BackwardEpilogueBody : IChunkBody
    {
        public float* DOutput, X0, Hidden, DPre, DX0, DXl;
        public int Batch, Dim;
        public bool OverwriteDX0, OverwriteDXl;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(Batch, chunks, chunk);
            int n = Dim;
            bool ow0 = OverwriteDX0, owl = OverwriteDXl;
            for (int r = start; r < end; r++)
            {
                long o = (long)r * n;
                float* g = DOutput + o, x0 = X0 + o, h = Hidden + o, dp = DPre + o;
                float* dx0 = DX0 == null ? null : DX0 + o;
                float* dxl = DXl == null ? null : DXl + o;
                // dX0 is updated before dXl element by element, so aliased buffers (x_l = x0) get both terms.
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                    for (; i + 16 <= n; i += 16)
                    {
                        var gv = Vector512.Load(g + i);
                        (gv * Vector512.Load(x0 + i)).Store(dp + i);
                        if (dx0 != null) Vector512.FusedMultiplyAdd(gv, Vector512.Load(h + i), ow0 ? Vector512<float>.Zero : Vector512.Load(dx0 + i)).Store(dx0 + i);
                        if (dxl != null) ((owl ? Vector512<float>.Zero : Vector512.Load(dxl + i)) + gv).Store(dxl + i);
                    }
                if (Vector256.IsHardwareAccelerated)
                    for (; i + 8 <= n; i += 8)
                    {
                        var gv = Vector256.Load(g + i);
                        (gv * Vector256.Load(x0 + i)).Store(dp + i);
                        if (dx0 != null) Vector256.FusedMultiplyAdd(gv, Vector256.Load(h + i), ow0 ? Vector256<float>.Zero : Vector256.Load(dx0 + i)).Store(dx0 + i);
                        if (dxl != null) ((owl ? Vector256<float>.Zero : Vector256.Load(dxl + i)) + gv).Store(dxl + i);
                    }
                if (Vector128.IsHardwareAccelerated)
                    for (; i + 4 <= n; i += 4)
                    {
                        var gv = Vector128.Load(g + i);
                        (gv * Vector128.Load(x0 + i)).Store(dp + i);
                        if (dx0 != null) Vector128.FusedMultiplyAdd(gv, Vector128.Load(h + i), ow0 ? Vector128<float>.Zero : Vector128.Load(dx0 + i)).Store(dx0 + i);
                        if (dxl != null) ((owl ? Vector128<float>.Zero : Vector128.Load(dxl + i)) + gv).Store(dxl + i);
                    }
                for (; i < n; i++)
                {
                    float gv = g[i];
                    dp[i] = gv * x0[i];
                    if (dx0 != null) dx0[i] = (ow0 ? 0f : dx0[i]) + gv * h[i];
                    if (dxl != null) dxl[i] = (owl ? 0f : dxl[i]) + gv;
                }
            }
        }
    }

    private static void CheckRows(ReadOnlySpan<float> x0, ReadOnlySpan<float> xl, ReadOnlySpan<float> hidden, ReadOnlySpan<float> output,
        int batch, int dim, string op)
    {
        KernelGuard.NonNegative(batch, nameof(batch), op);
        KernelGuard.NonNegative(dim, nameof(dim), op);
        long size = (long)batch * dim;
        KernelGuard.AtLeast(x0, size, nameof(x0), op);
        KernelGuard.AtLeast(xl, size, nameof(xl), op);
        KernelGuard.AtLeast(hidden, size, nameof(hidden), op);
        KernelGuard.AtLeast(output, size, nameof(output), op);
    }
}

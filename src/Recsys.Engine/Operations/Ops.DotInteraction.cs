using Recsys.Engine.Core;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// DLRM dot interaction: T = [dense_b, sparse_b0 .. sparse_b(F-1)] per sample, Z = T·Tᵀ, output
    /// concat(dense_b, strict lower triangle of Z in row-major order (1,0), (2,0), (2,1), ...).
    /// </summary>
    /// <param name="dense">[B, D] bottom-MLP output.</param>
    /// <param name="sparse">[B, F, D] pooled embeddings.</param>
    /// <returns>[B, D + (F+1)F/2].</returns>
    public static Tensor DotInteraction(Tape tape, Tensor dense, Tensor sparse)
    {
        ArgumentNullException.ThrowIfNull(dense);
        ArgumentNullException.ThrowIfNull(sparse);
        if (dense.Rank != 2 || sparse.Rank != 3 || sparse.Dim(0) != dense.Dim(0) || sparse.Dim(2) != dense.Dim(1) || sparse.Dim(1) < 1 || dense.Dim(1) < 1)
            throw new ArgumentException($"DotInteraction: expected dense [B, D] and sparse [B, F, D] with F, D >= 1, got dense {dense.Shape} and sparse {sparse.Shape}.");
        int b = dense.Dim(0), d = dense.Dim(1), f = sparse.Dim(1);
        if (tape.Device.IsGpu) return DotInteractionGpu(tape, dense, sparse);
        var y = tape.Arena.Allocate(new Shape(b, DotInteractionKernels.OutputDim(f, d)));
        DotInteractionKernels.Forward(dense.ReadOnlySpan, sparse.ReadOnlySpan, y.Span, b, f, d);
        if (tape.NeedsGrad(dense, sparse))
            tape.Record(new TapeEntry { Backward = static (t, in e) => DotInteractionBackward(t, e.Output!, e.A!, e.B!), Output = y, A = dense, B = sparse });
        return y;
    }

    private static void DotInteractionBackward(Tape tape, Tensor y, Tensor dense, Tensor sparse)
    {
        if (y.Grad is null) return;
        // The kernel writes both gradients; one that is not needed goes to a throw-away arena buffer. A buffer made here
        // is overwritten (every element), not zero-filled and accumulated into.
        var dDense = tape.GradOf(dense, out bool freshDense) ?? tape.Arena.Allocate(dense.Shape);
        var dSparse = tape.GradOf(sparse, out bool freshSparse) ?? tape.Arena.Allocate(sparse.Shape);
        bool accumulateDense = dense.RequiresGrad && !freshDense, accumulateSparse = sparse.RequiresGrad && !freshSparse;
        DotInteractionKernels.Backward(dense.ReadOnlySpan, sparse.ReadOnlySpan, y.Grad.ReadOnlySpan, dDense.Span, dSparse.Span,
            dense.Dim(0), sparse.Dim(1), dense.Dim(1), accumulateDense, accumulateSparse);
    }
}

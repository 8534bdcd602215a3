using Recsys.Engine.Core;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// A linear projection applied to every token: y[..., o] = Σ_i x[..., i]·W[o, i] + b[o]. The
    /// leading dimensions are flattened into one GEMM of N = B·T rows.
    /// </summary>
    /// <param name="x">[B, T, in] (any rank ≥ 2; the last dimension is projected).</param>
    /// <param name="weight">[out, in], PyTorch Linear layout.</param>
    /// <param name="bias">[out].</param>
    /// <returns>[B, T, out].</returns>
    public static Tensor TokenLinear(Tape tape, Tensor x, Tensor weight, Tensor bias)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        if (x.Rank < 2 || weight.Rank != 2 || weight.Dim(1) != x.Dim(-1) || bias.Shape != new Shape(weight.Dim(0)))
            throw new ArgumentException($"TokenLinear: expected x [..., in], weight [out, in], bias [out], got x {x.Shape}, weight {weight.Shape}, bias {bias.Shape}.");
        int inDim = x.Dim(-1), outDim = weight.Dim(0), n = x.Length / Math.Max(1, inDim);
        Span<int> dims = stackalloc int[x.Rank];
        for (int i = 0; i < dims.Length - 1; i++) dims[i] = x.Dim(i);
        dims[^1] = outDim;
        if (tape.Device.IsGpu) return TokenLinearGpu(tape, x, weight, bias, Shape.Of(dims));
        var y = tape.Arena.Allocate(Shape.Of(dims));
        GemmKernels.LinearForward(x.ReadOnlySpan, weight.ReadOnlySpan, bias.ReadOnlySpan, y.Span, n, outDim, inDim, Activation.None);
        if (tape.NeedsGrad(x, weight, bias))
            tape.Record(new TapeEntry { Backward = static (t, in e) => TokenLinearBackward(t, e.Output!, e.A!, e.B!, e.C!), Output = y, A = x, B = weight, C = bias });
        return y;
    }

    private static void TokenLinearBackward(Tape tape, Tensor y, Tensor x, Tensor weight, Tensor bias)
    {
        if (y.Grad is null) return;
        int inDim = x.Dim(-1), outDim = weight.Dim(0), n = x.Length / Math.Max(1, inDim);
        var dy = y.Grad.ReadOnlySpan;
        // A gradient buffer made here is written whole by the GEMM: no zero-fill, no read of zeros.
        var dx = tape.GradOf(x, out bool fresh);
        var dw = tape.GradOf(weight);
        var db = tape.GradOf(bias);
        // One call for both products: with many tokens and a small weight it walks dY once for dX and dW together.
        GemmKernels.LinearBackward(dy, x.ReadOnlySpan, weight.ReadOnlySpan, dx is null ? default : dx.Span, accumulateDx: !fresh,
            dw is null ? default : dw.Span, db is null ? default : db.Span, accumulateDw: true, n, outDim, inDim);
    }
}

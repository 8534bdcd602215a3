using Recsys.Engine.Core;
using Recsys.Kernels.Common;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.Gemm;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Fully connected layer with a fused activation: y [B, out] = act(x [B, in] · weightᵀ + bias),
    /// weight [out, in] (PyTorch layout), bias [out] or null. Backward recovers act' from the saved output,
    /// then dX += dPre·W, dW += dPreᵀ·X, dBias += Σ_b dPre — each only when that input needs a gradient.
    /// </summary>
    public static Tensor Linear(Tape tape, Tensor x, Tensor weight, Tensor? bias, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (x.Rank != 2 || weight.Rank != 2 || x.Dim(1) != weight.Dim(1))
            throw new ArgumentException($"Linear: expected x [B, in] and weight [out, in] with the same 'in', got x {x.Shape} and weight {weight.Shape}.");
        int batch = x.Dim(0), inF = x.Dim(1), outF = weight.Dim(0);
        if (bias is not null && bias.Shape != new Shape(outF))
            throw new ArgumentException($"Linear: expected bias of shape {new Shape(outF)} for weight {weight.Shape}, got {bias.Shape}.");
        if (activation is not (Activation.None or Activation.Relu or Activation.Sigmoid))
            throw new ArgumentOutOfRangeException(nameof(activation), activation, $"Linear: unknown activation {activation}.");
        if (tape.Device.IsGpu) return LinearGpu(tape, x, weight, bias, activation);

        var y = tape.Arena.Allocate(new Shape(batch, outF));
        GemmKernels.LinearForward(x.ReadOnlySpan, weight.ReadOnlySpan, bias is null ? default : bias.ReadOnlySpan, y.Span,
            batch, outF, inF, activation);
        if (tape.NeedsGrad(x, weight, bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => LinearBackward(t, e.Output!, e.A!, e.B!, e.C, (Activation)e.I0),
                Output = y, A = x, B = weight, C = bias, I0 = (int)activation,
            });
        return y;
    }

    private static void LinearBackward(Tape tape, Tensor y, Tensor x, Tensor weight, Tensor? bias, Activation activation)
    {
        if (y.Grad is null) return;
        int batch = x.Dim(0), inF = x.Dim(1), outF = weight.Dim(0);
        var dX = tape.GradOf(x, out bool freshDx);
        var dW = tape.GradOf(weight);
        var dBias = bias is null ? null : tape.GradOf(bias);
        // A ReLU layer whose input needs no gradient (a first layer on dense features): where the kernel takes the shape,
        // the mask is applied as the weight and bias gradients read dY, and dPre is never written (same bits).
        if (activation == Activation.Relu && dX is null && dW is not null
            && GemmKernels.TryReluWeightGradients(y.Grad.ReadOnlySpan, y.ReadOnlySpan, x.ReadOnlySpan, dW.Span,
                dBias is null ? default : dBias.Span, outF, inF, batch, accumulate: true))
            return;
        // Rules run in reverse recording order, so every consumer of y has already added into y.Grad and
        // nothing reads it after this rule: the activation's backward can turn it into dPre in place.
        var dPre = y.Grad;
        if (activation != Activation.None)
        {
            dPre = tape.GradToOverwrite(y)!;
            ElementwiseKernels.ActivationBackwardInPlace(activation, y.ReadOnlySpan, dPre.Span);
        }
        // One call for both products: with a long batch and a small weight it walks dPre once for dX and dW together.
        GemmKernels.LinearBackward(dPre.ReadOnlySpan, x.ReadOnlySpan, weight.ReadOnlySpan, dX is null ? default : dX.Span, accumulateDx: !freshDx,
            dW is null ? default : dW.Span, dBias is null ? default : dBias.Span, accumulateDw: true, batch, outF, inF);
    }
}

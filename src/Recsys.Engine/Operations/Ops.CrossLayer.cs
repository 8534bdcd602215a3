using Recsys.Engine.Core;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// DCNv2 full-rank cross layer: y = x0 ⊙ (x_l·Wᵀ + b) + x_l.
    /// </summary>
    /// <param name="x0">[B, d] input of the cross network.</param>
    /// <param name="xl">[B, d] output of the previous layer (x0 itself for the first).</param>
    /// <param name="weight">[d, d], PyTorch Linear layout [out, in].</param>
    /// <param name="bias">[d].</param>
    /// <returns>[B, d].</returns>
    public static Tensor CrossLayer(Tape tape, Tensor x0, Tensor xl, Tensor weight, Tensor bias)
    {
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(xl);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        if (x0.Rank != 2 || xl.Shape != x0.Shape || weight.Shape != new Shape(x0.Dim(1), x0.Dim(1)) || bias.Shape != new Shape(x0.Dim(1)))
            throw new ArgumentException($"CrossLayer: expected x0 [B, d], xl [B, d], weight [d, d], bias [d], got x0 {x0.Shape}, xl {xl.Shape}, weight {weight.Shape}, bias {bias.Shape}.");
        if (tape.Device.IsGpu) return CrossLayerGpu(tape, x0, xl, weight, bias);
        int b = x0.Dim(0), d = x0.Dim(1);
        var hidden = tape.Arena.Allocate(x0.Shape);
        var y = tape.Arena.Allocate(x0.Shape);
        CrossKernels.Forward(x0.ReadOnlySpan, xl.ReadOnlySpan, weight.ReadOnlySpan, bias.ReadOnlySpan, hidden.Span, y.Span, b, d);
        if (tape.NeedsGrad(x0, xl, weight, bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => CrossLayerBackward(t, e.Output!, e.A!, e.B!, e.C!, e.D!, e.E!),
                Output = y, A = x0, B = xl, C = weight, D = bias, E = hidden,
            });
        return y;
    }

    private static void CrossLayerBackward(Tape tape, Tensor y, Tensor x0, Tensor xl, Tensor weight, Tensor bias, Tensor hidden)
    {
        if (y.Grad is null) return;
        int b = x0.Dim(0), d = x0.Dim(1);
        var dPre = tape.Arena.Allocate(x0.Shape);
        // A gradient buffer made here is written, not added to: no zero-fill and no read (x_l = x0 shares one buffer,
        // which gets dOutput ⊙ hidden first and the residual added).
        var dX0 = tape.GradOf(x0, out bool freshX0);
        bool freshXl = false;
        var dXl = ReferenceEquals(xl, x0) ? dX0 : tape.GradOf(xl, out freshXl);
        CrossKernels.Backward(y.Grad.ReadOnlySpan, x0.ReadOnlySpan, xl.ReadOnlySpan, weight.ReadOnlySpan, hidden.ReadOnlySpan, dPre.Span,
            dX0 is null ? default : dX0.Span, dXl is null ? default : dXl.Span, GradSpan(tape, weight), GradSpan(tape, bias), b, d,
            overwriteDX0: freshX0, overwriteDXl: freshXl);
    }

    /// <summary>The gradient buffer of <paramref name="t"/> as a span, empty when no gradient is needed (kernels skip empty outputs).</summary>
    private static Span<float> GradSpan(Tape tape, Tensor t) => tape.GradOf(t) is { } g ? g.Span : Span<float>.Empty;
}

using Recsys.Engine.Core;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// DCNv2 low-rank cross layer, W = U·Vᵀ: y = x0 ⊙ (U·(Vᵀ·x_l) + b) + x_l.
    /// </summary>
    /// <param name="x0">[B, d].</param>
    /// <param name="xl">[B, d].</param>
    /// <param name="u">[d, r].</param>
    /// <param name="v">[d, r].</param>
    /// <param name="bias">[d].</param>
    /// <returns>[B, d].</returns>
    public static Tensor CrossLayerLowRank(Tape tape, Tensor x0, Tensor xl, Tensor u, Tensor v, Tensor bias)
    {
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(xl);
        ArgumentNullException.ThrowIfNull(u);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(bias);
        if (x0.Rank != 2 || xl.Shape != x0.Shape || u.Rank != 2 || u.Dim(0) != x0.Dim(1) || u.Dim(1) < 1 || v.Shape != u.Shape || bias.Shape != new Shape(x0.Dim(1)))
            throw new ArgumentException($"CrossLayerLowRank: expected x0 [B, d], xl [B, d], u [d, r], v [d, r], bias [d], got x0 {x0.Shape}, xl {xl.Shape}, u {u.Shape}, v {v.Shape}, bias {bias.Shape}.");
        if (tape.Device.IsGpu) return CrossLayerLowRankGpu(tape, x0, xl, u, v, bias);
        int b = x0.Dim(0), d = x0.Dim(1), r = u.Dim(1);
        // Both saved intermediates live in one arena tensor, so the entry needs only one extra slot:
        // U·Vᵀx_l + b [B, d] first, then x_l·V [B, r].
        var saved = tape.Arena.Allocate(new Shape(b * (d + r)));
        var y = tape.Arena.Allocate(x0.Shape);
        CrossKernels.ForwardLowRank(x0.ReadOnlySpan, xl.ReadOnlySpan, u.ReadOnlySpan, v.ReadOnlySpan, bias.ReadOnlySpan,
            saved.Span.Slice(b * d, b * r), saved.Span.Slice(0, b * d), y.Span, b, d, r);
        if (tape.NeedsGrad(x0, xl, u, v) || tape.NeedsGrad(bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => CrossLayerLowRankBackward(t, e, e.State is Tensor s ? s : null),
                Output = y, A = x0, B = xl, C = u, D = v, E = bias, State = saved,
            });
        return y;
    }

    private static void CrossLayerLowRankBackward(Tape tape, in TapeEntry e, Tensor? saved)
    {
        var y = e.Output!;
        if (y.Grad is null || saved is null) return;
        Tensor x0 = e.A!, xl = e.B!, u = e.C!, v = e.D!, bias = e.E!;
        int b = x0.Dim(0), d = x0.Dim(1), r = u.Dim(1);
        var hidden = saved.ReadOnlySpan.Slice(0, b * d);
        var projected = saved.ReadOnlySpan.Slice(b * d, b * r);
        var dPre = tape.Arena.Allocate(x0.Shape);
        var dProjected = tape.Arena.Allocate(new Shape(b, r));
        CrossKernels.BackwardLowRank(y.Grad.ReadOnlySpan, x0.ReadOnlySpan, xl.ReadOnlySpan, u.ReadOnlySpan, v.ReadOnlySpan,
            projected, hidden, dPre.Span, dProjected.Span,
            GradSpan(tape, x0), GradSpan(tape, xl), GradSpan(tape, u), GradSpan(tape, v), GradSpan(tape, bias), b, d, r);
    }
}

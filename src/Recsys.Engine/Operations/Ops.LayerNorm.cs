using Recsys.Engine.Core;
using Recsys.Kernels.Normalization;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Layer normalisation over the last dimension: y = (x − mean) / sqrt(var + eps) · gamma + beta
    /// (biased variance, like PyTorch).
    /// </summary>
    /// <param name="x">[..., d].</param>
    /// <param name="gamma">[d].</param>
    /// <param name="beta">[d].</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public static Tensor LayerNorm(Tape tape, Tensor x, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(beta);
        if (x.Rank < 1 || x.Dim(-1) < 1 || gamma.Shape != new Shape(x.Dim(-1)) || beta.Shape != gamma.Shape)
            throw new ArgumentException($"LayerNorm: expected x [..., d], gamma [d], beta [d], got x {x.Shape}, gamma {gamma.Shape}, beta {beta.Shape}.");
        if (!(eps > 0f))
            throw new ArgumentOutOfRangeException(nameof(eps), eps, $"LayerNorm: eps must be > 0, got {eps}.");
        if (tape.Device.IsGpu) return LayerNormGpu(tape, x, gamma, beta, eps);
        int d = x.Dim(-1), rows = x.Length / d;
        var y = tape.Arena.Allocate(x.Shape);
        // Mean in [0, rows), rstd in [rows, 2·rows): one saved tensor.
        var stats = tape.Arena.Allocate(new Shape(2 * rows));
        LayerNormKernels.Forward(x.ReadOnlySpan, gamma.ReadOnlySpan, beta.ReadOnlySpan, y.Span,
            stats.Span.Slice(0, rows), stats.Span.Slice(rows, rows), rows, d, eps);
        if (tape.NeedsGrad(x, gamma, beta))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => LayerNormBackward(t, e.Output!, e.A!, e.B!, e.C!, e.D!),
                Output = y, A = x, B = gamma, C = beta, D = stats,
            });
        return y;
    }

    private static void LayerNormBackward(Tape tape, Tensor y, Tensor x, Tensor gamma, Tensor beta, Tensor stats)
    {
        if (y.Grad is null) return;
        int d = x.Dim(-1), rows = x.Length / d;
        // A gradient buffer made here for x is written, not zero-filled and added to.
        var dx = tape.GradOf(x, out bool fresh);
        LayerNormKernels.Backward(y.Grad.ReadOnlySpan, x.ReadOnlySpan, gamma.ReadOnlySpan,
            stats.ReadOnlySpan.Slice(0, rows), stats.ReadOnlySpan.Slice(rows, rows),
            dx is null ? default : dx.Span, GradSpan(tape, gamma), GradSpan(tape, beta), rows, d, overwriteDX: fresh);
    }
}

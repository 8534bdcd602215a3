using Recsys.Engine.Core;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Multi-head scaled dot-product self-attention core (no mask, no dropout). Per sample and head h:
    /// S = Q_h·K_hᵀ / sqrt(dh), P = softmax_rows(S), O_h = P·V_h; heads are concatenated.
    /// </summary>
    /// <param name="qkv">[B, T, 3d]: Q in columns [0, d), K in [d, 2d), V in [2d, 3d).</param>
    /// <param name="heads">Number of heads H; d must be divisible by H (dh = d / H).</param>
    /// <returns>[B, T, d].</returns>
    public static Tensor AttentionCore(Tape tape, Tensor qkv, int heads)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        if (qkv.Rank != 3 || qkv.Dim(2) % 3 != 0 || qkv.Dim(2) == 0)
            throw new ArgumentException($"AttentionCore: expected qkv [B, T, 3d], got {qkv.Shape}.");
        int b = qkv.Dim(0), t = qkv.Dim(1), d = qkv.Dim(2) / 3;
        if (heads < 1 || d % heads != 0)
            throw new ArgumentException($"AttentionCore: model dim {d} (qkv {qkv.Shape}) is not divisible by {heads} heads.");
        if (tape.Device.IsGpu) return AttentionCoreGpu(tape, qkv, heads);
        var y = tape.Arena.Allocate(new Shape(b, t, d));
        var probs = tape.Arena.Allocate(new Shape(b, heads, t, t));
        AttentionKernels.Forward(qkv.ReadOnlySpan, y.Span, probs.Span, b, t, d, heads);
        if (tape.NeedsGrad(qkv))
            tape.Record(new TapeEntry { Backward = static (tp, in e) => AttentionCoreBackward(tp, e.Output!, e.A!, e.B!, e.I0), Output = y, A = qkv, B = probs, I0 = heads });
        return y;
    }

    private static void AttentionCoreBackward(Tape tape, Tensor y, Tensor qkv, Tensor probs, int heads)
    {
        if (y.Grad is null) return;
        // A gradient buffer made here is written whole by the kernel (every Q, K and V element of every head).
        var dQkv = tape.GradOf(qkv, out bool fresh);
        if (dQkv is null) return;
        AttentionKernels.Backward(y.Grad.ReadOnlySpan, qkv.ReadOnlySpan, probs.ReadOnlySpan, dQkv.Span, qkv.Dim(0), qkv.Dim(1), y.Dim(2), heads,
            accumulate: !fresh);
    }
}

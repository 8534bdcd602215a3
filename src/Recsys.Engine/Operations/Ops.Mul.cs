using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>y = a ⊙ b, elementwise; a and b must have the same shape. Backward: dA += dY ⊙ b, dB += dY ⊙ a.</summary>
    public static Tensor Mul(Tape tape, Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Shape != b.Shape)
            throw new ArgumentException($"Mul: expected operands of the same shape, got {a.Shape} and {b.Shape}.");
        if (tape.Device.IsGpu) return MulGpu(tape, a, b);
        var y = tape.Arena.Allocate(a.Shape);
        ElementwiseKernels.Mul(a.ReadOnlySpan, b.ReadOnlySpan, y.Span);
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    if (t.GradOf(e.A!) is { } da) ElementwiseKernels.MulAccumulate(dy.ReadOnlySpan, e.B!.ReadOnlySpan, da.Span);
                    if (t.GradOf(e.B!) is { } db) ElementwiseKernels.MulAccumulate(dy.ReadOnlySpan, e.A!.ReadOnlySpan, db.Span);
                },
                Output = y, A = a, B = b,
            });
        return y;
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>y = a + b, elementwise; a and b must have the same shape. Backward: dA += dY, dB += dY.</summary>
    public static Tensor Add(Tape tape, Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Shape != b.Shape)
            throw new ArgumentException($"Add: expected operands of the same shape, got {a.Shape} and {b.Shape}.");
        if (tape.Device.IsGpu) return AddGpu(tape, a, b, nameof(Add));
        var y = tape.Arena.Allocate(a.Shape);
        ElementwiseKernels.Add(a.ReadOnlySpan, b.ReadOnlySpan, y.Span);
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    if (t.GradOf(e.A!) is { } da) ElementwiseKernels.AddInPlace(dy.ReadOnlySpan, da.Span);
                    if (t.GradOf(e.B!) is { } db) ElementwiseKernels.AddInPlace(dy.ReadOnlySpan, db.Span);
                },
                Output = y, A = a, B = b,
            });
        return y;
    }
}

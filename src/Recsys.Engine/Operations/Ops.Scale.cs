using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>y = alpha·x, any shape. Backward: dX += alpha·dY.</summary>
    public static Tensor Scale(Tape tape, Tensor x, float alpha)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (tape.Device.IsGpu) return ScaleGpu(tape, x, alpha);
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseKernels.Scale(alpha, x.ReadOnlySpan, y.Span);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseKernels.Axpy(e.F0, dy.ReadOnlySpan, dx.Span);
                },
                Output = y, A = x, F0 = alpha,
            });
        return y;
    }
}

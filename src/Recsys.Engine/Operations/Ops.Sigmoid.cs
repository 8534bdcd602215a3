using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>y = 1 / (1 + exp(−x)), any shape. Backward: dX += dY·y·(1 − y) from the saved output.</summary>
    public static Tensor Sigmoid(Tape tape, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (tape.Device.IsGpu) return SigmoidGpu(tape, x);
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseKernels.Sigmoid(x.ReadOnlySpan, y.Span);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseKernels.SigmoidBackward(e.Output.ReadOnlySpan, dy.ReadOnlySpan, dx.Span);
                },
                Output = y, A = x,
            });
        return y;
    }
}

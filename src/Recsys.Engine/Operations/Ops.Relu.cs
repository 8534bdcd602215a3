using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>y = max(x, 0), any shape. Backward passes dY where y &gt; 0 (read from the saved output).</summary>
    public static Tensor Relu(Tape tape, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (tape.Device.IsGpu) return ReluGpu(tape, x);
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseKernels.Relu(x.ReadOnlySpan, y.Span);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseKernels.ReluBackward(e.Output.ReadOnlySpan, dy.ReadOnlySpan, dx.Span);
                },
                Output = y, A = x,
            });
        return y;
    }
}

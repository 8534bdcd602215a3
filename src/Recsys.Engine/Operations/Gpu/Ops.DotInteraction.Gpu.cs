using Recsys.Engine.Core;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>GPU path of <see cref="DotInteraction"/> (one thread per output element; deterministic).</summary>
    private static Tensor DotInteractionGpu(Tape tape, Tensor dense, Tensor sparse)
    {
        var gpu = OnTapeDevice(tape, nameof(DotInteraction), dense, sparse);
        int b = dense.Dim(0), d = dense.Dim(1), f = sparse.Dim(1);
        var y = tape.Arena.Allocate(new Shape(b, InteractionGpuKernels.DotOutputWidth(f, d)));
        InteractionGpuKernels.DotForward(gpu, dense.View, sparse.View, y.View, b, f, d);
        if (tape.NeedsGrad(dense, sparse))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    Tensor dense = e.A!, sparse = e.B!;
                    // The kernel writes both gradients; one that is not needed goes to a throw-away arena buffer.
                    var dDense = t.GradOf(dense) ?? t.Arena.Allocate(dense.Shape);
                    var dSparse = t.GradOf(sparse) ?? t.Arena.Allocate(sparse.Shape);
                    InteractionGpuKernels.DotBackward(t.Device.Gpu, dense.View, sparse.View, dy.View, dDense.View, dSparse.View,
                        dense.Dim(0), sparse.Dim(1), dense.Dim(1));
                },
                Output = y, A = dense, B = sparse,
            });
        return y;
    }
}

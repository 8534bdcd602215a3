using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>GPU path of <see cref="Relu"/>; backward passes dY where the input was positive.</summary>
    private static Tensor ReluGpu(Tape tape, Tensor x)
    {
        var gpu = OnTapeDevice(tape, nameof(Relu), x);
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseGpuKernels.ReluForward(gpu, x.View, y.View, x.Length);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseGpuKernels.ReluBackward(t.Device.Gpu, e.A!.View, dy.View, dx.View, dx.Length);
                },
                Output = y, A = x,
            });
        return y;
    }
}

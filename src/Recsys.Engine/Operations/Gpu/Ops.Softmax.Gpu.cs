using Recsys.Engine.Core;
using Recsys.Kernels.Loss;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>GPU path of <see cref="Softmax"/>: one group per row (max, exp-sum), backward from the saved output.</summary>
    private static Tensor SoftmaxGpu(Tape tape, Tensor x, float temperature)
    {
        var gpu = OnTapeDevice(tape, nameof(Softmax), x);
        var y = tape.Arena.Allocate(x.Shape);
        LossGpuKernels.SoftmaxForward(gpu, x.View, y.View, x.Dim(0), x.Dim(1), temperature);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    var yy = e.Output!;
                    if (yy.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        LossGpuKernels.SoftmaxBackward(t.Device.Gpu, yy.View, dy.View, dx.View, yy.Dim(0), yy.Dim(1), e.F0);
                },
                Output = y, A = x, F0 = temperature,
            });
        return y;
    }
}

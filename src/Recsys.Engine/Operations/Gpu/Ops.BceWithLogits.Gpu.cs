using Recsys.Engine.Core;
using Recsys.Kernels.Loss;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// GPU path of <see cref="BceWithLogits"/>: the mean is reduced on the device (one group, fixed order) and the
    /// backward reads the upstream gradient there too, so the loss never has to come back to the host.
    /// </summary>
    private static Tensor BceWithLogitsGpu(Tape tape, Tensor logits, Tensor targets, Tensor? mask, Tensor? weights)
    {
        if (mask is not null || weights is not null)
            throw new NotSupportedException($"BceWithLogits with a mask or per-sample weights has no GPU path: the tape runs on device '{tape.Device.Name}'.");
        var gpu = OnTapeDevice(tape, nameof(BceWithLogits), logits, targets);
        var y = tape.Arena.Allocate(Shape.Scalar);
        LossGpuKernels.BceWithLogitsForward(gpu, logits.View, targets.View, y.View, logits.Length);
        if (tape.NeedsGrad(logits))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dz)
                        LossGpuKernels.BceWithLogitsBackward(t.Device.Gpu, e.A!.View, e.B!.View, dy.View, dz.View, e.A!.Length);
                },
                Output = y, A = logits, B = targets,
            });
        return y;
    }
}

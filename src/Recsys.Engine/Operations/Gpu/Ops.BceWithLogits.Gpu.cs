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
        if (mask is not null || weights is not null) return MaskedBceWithLogitsGpu(tape, logits, targets, mask, weights);
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

    /// <summary>The masked / per-sample-weighted mean (multi-task label masks, weighted samples); the count Σ mask is saved for backward.</summary>
    private static Tensor MaskedBceWithLogitsGpu(Tape tape, Tensor logits, Tensor targets, Tensor? mask, Tensor? weights)
    {
        var gpu = OnTapeDevice(tape, nameof(BceWithLogits), logits, targets, mask, weights);
        var y = tape.Arena.Allocate(Shape.Scalar);
        var count = tape.Arena.Allocate(Shape.Scalar);
        LossGpuKernels.BceWithLogitsForward(gpu, logits.View, targets.View, mask is null ? default : mask.View, weights is null ? default : weights.View,
            y.View, count.View, logits.Length);
        if (tape.NeedsGrad(logits))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dz)
                        LossGpuKernels.BceWithLogitsBackward(t.Device.Gpu, e.A!.View, e.B!.View, e.C is null ? default : e.C.View,
                            e.D is null ? default : e.D.View, e.E!.View, dy.View, dz.View, e.A!.Length);
                },
                Output = y, A = logits, B = targets, C = mask, D = weights, E = count,
            });
        return y;
    }
}

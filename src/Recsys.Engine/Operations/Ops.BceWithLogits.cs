using Recsys.Engine.Core;
using Recsys.Kernels.Loss;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Mean binary cross-entropy on logits: logits [B] or [B, 1], targets of the same length with values
    /// in [0, 1] (soft targets for distillation; no gradient flows to them), optional mask of the same
    /// length (0 drops a sample, e.g. a missing label in multi-task). Returns a scalar; the mean is over
    /// unmasked samples. Optional per-sample <paramref name="weights"/> (same length, no gradient) scale each
    /// term but not the count. Backward: dLogit += dL·(σ(z) − y)·mask·weight / count.
    /// </summary>
    public static Tensor BceWithLogits(Tape tape, Tensor logits, Tensor targets, Tensor? mask = null, Tensor? weights = null)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        if (!(logits.Rank == 1 || (logits.Rank == 2 && logits.Dim(1) == 1)))
            throw new ArgumentException($"BceWithLogits: expected logits of shape [B] or [B, 1], got {logits.Shape}.");
        if (targets.Length != logits.Length)
            throw new ArgumentException($"BceWithLogits: expected targets with {logits.Length} elements to match logits {logits.Shape}, got {targets.Shape}.");
        if (mask is not null && mask.Length != logits.Length)
            throw new ArgumentException($"BceWithLogits: expected a mask with {logits.Length} elements to match logits {logits.Shape}, got {mask.Shape}.");
        if (weights is not null && weights.Length != logits.Length)
            throw new ArgumentException($"BceWithLogits: expected weights with {logits.Length} elements to match logits {logits.Shape}, got {weights.Shape}.");
        if (tape.Device.IsGpu) return BceWithLogitsGpu(tape, logits, targets, mask, weights);
        var y = tape.Arena.Allocate(Shape.Scalar);
        y.Span[0] = LossKernels.BceWithLogitsForward(logits.ReadOnlySpan, targets.ReadOnlySpan, mask is null ? default : mask.ReadOnlySpan,
            weights is null ? default : weights.ReadOnlySpan);
        if (tape.NeedsGrad(logits))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dz)
                        LossKernels.BceWithLogitsBackward(e.A!.ReadOnlySpan, e.B!.ReadOnlySpan, e.C is null ? default : e.C.ReadOnlySpan,
                            e.D is null ? default : e.D.ReadOnlySpan,
                            dy.Span[0], dz.Span);
                },
                Output = y, A = logits, B = targets, C = mask, D = weights,
            });
        return y;
    }
}

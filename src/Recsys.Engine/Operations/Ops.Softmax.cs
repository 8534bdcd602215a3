using Recsys.Engine.Core;
using Recsys.Kernels.Loss;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Row-wise softmax of x/temperature over the last axis of a rank-2 tensor [B, C] (architecture weights,
    /// ensembles). Backward: dX += y ⊙ (dY − Σ dY⊙y) / temperature.
    /// </summary>
    public static Tensor Softmax(Tape tape, Tensor x, float temperature = 1f)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 2) throw new ArgumentException($"Softmax: expected a rank-2 tensor [B, C], got shape {x.Shape}.");
        if (!(temperature > 0f) || float.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, $"Softmax: temperature must be a positive finite number, got {temperature}.");
        if (tape.Device.IsGpu) return SoftmaxGpu(tape, x, temperature);
        var y = tape.Arena.Allocate(x.Shape);
        LossKernels.SoftmaxForward(x.ReadOnlySpan, y.Span, x.Dim(0), x.Dim(1), temperature);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    var yy = e.Output!;
                    if (yy.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        LossKernels.SoftmaxBackward(yy.ReadOnlySpan, dy.ReadOnlySpan, dx.Span, yy.Dim(0), yy.Dim(1), e.F0);
                },
                Output = y, A = x, F0 = temperature,
            });
        return y;
    }
}

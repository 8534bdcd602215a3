using Recsys.Engine.Core;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>Scalar Σ x over all elements (accumulated in float64). Backward: dX += dY.</summary>
    public static Tensor Sum(Tape tape, Tensor x) => SumScaled(tape, x, 1f, mean: false);

    /// <summary>Scalar mean of all elements (0 for an empty tensor). Backward: dX += dY / n.</summary>
    public static Tensor Mean(Tape tape, Tensor x) => SumScaled(tape, x, x.Length == 0 ? 0f : 1f / x.Length, mean: true);

    private static Tensor SumScaled(Tape tape, Tensor x, float scale, bool mean)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (tape.Device.IsGpu) return SumScaledGpu(tape, x, scale, mean);
        var y = tape.Arena.Allocate(Shape.Scalar);
        double s = ReduceKernels.Sum(x.ReadOnlySpan);
        y.Span[0] = (float)(mean ? (x.Length == 0 ? 0 : s / x.Length) : s);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                    {
                        float g = dy.Span[0] * e.F0;
                        var dxs = dx.Span;
                        for (int i = 0; i < dxs.Length; i++) dxs[i] += g;
                    }
                },
                Output = y, A = x, F0 = scale,
            });
        return y;
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>Residual connection y = x + residual (same shape); the gradient flows unchanged to both.</summary>
    public static Tensor AddResidual(Tape tape, Tensor x, Tensor residual)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(residual);
        if (x.Shape != residual.Shape)
            throw new ArgumentException($"AddResidual: shapes must match, got x {x.Shape} and residual {residual.Shape}.");
        if (tape.Device.IsGpu) return AddGpu(tape, x, residual, nameof(AddResidual));
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseKernels.Add(x.ReadOnlySpan, residual.ReadOnlySpan, y.Span);
        if (tape.NeedsGrad(x, residual))
            tape.Record(new TapeEntry { Backward = static (t, in e) => AddResidualBackward(t, e.Output!, e.A!, e.B!), Output = y, A = x, B = residual });
        return y;
    }

    private static void AddResidualBackward(Tape tape, Tensor y, Tensor x, Tensor residual)
    {
        if (y.Grad is null) return;
        var dy = y.Grad.ReadOnlySpan;
        // A gradient buffer made here gets a copy of dy instead of a zero-fill and an add.
        if (tape.GradOf(x, out bool freshX) is { } dx)
        {
            if (freshX) ElementwiseKernels.Copy(dy, dx.Span); else ElementwiseKernels.AddInPlace(dy, dx.Span);
        }
        if (tape.GradOf(residual, out bool freshR) is { } dr)
        {
            if (freshR) ElementwiseKernels.Copy(dy, dr.Span); else ElementwiseKernels.AddInPlace(dy, dr.Span);
        }
    }
}

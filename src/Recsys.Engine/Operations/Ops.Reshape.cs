using Recsys.Engine.Core;

namespace Recsys.Engine.Operations;

/// <summary>
/// Differentiable operations. One op per file (<c>Ops.&lt;Name&gt;.cs</c>), forward and backward side
/// by side. Forward saves exactly what backward needs in a <see cref="TapeEntry"/>; backward
/// accumulates (+=) into the gradients returned by <see cref="Tape.GradOf"/>.
/// </summary>
public static partial class Ops
{
    /// <summary>Same storage, new shape (same number of elements). Gradient flows back unchanged.</summary>
    public static Tensor Reshape(Tape tape, Tensor x, Shape shape)
    {
        if (shape.Size != x.Length)
            throw new ArgumentException($"Reshape: cannot reshape {x.Shape} ({x.Length} elements) to {shape} ({shape.Size} elements).");
        var y = x.ViewAs(tape.Arena.AllocateHeader(), shape);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry { Backward = static (t, in e) => ReshapeBackward(t, e.Output!, e.A!), Output = y, A = x });
        return y;
    }

    private static void ReshapeBackward(Tape tape, Tensor y, Tensor x)
    {
        var dx = tape.GradOf(x);
        if (dx is null || y.Grad is null) return;
        if (dx.IsOnDevice)
        {
            Recsys.Kernels.Elementwise.ElementwiseGpuKernels.Axpy(tape.Device.Gpu, 1f, y.Grad.View, dx.View, dx.Length);
            return;
        }
        var dxs = dx.Span;
        var dys = y.Grad.ReadOnlySpan;
        for (int i = 0; i < dxs.Length; i++) dxs[i] += dys[i];
    }
}

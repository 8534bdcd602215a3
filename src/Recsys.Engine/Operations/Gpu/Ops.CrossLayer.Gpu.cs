using Recsys.Engine.Core;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Interaction;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>GPU path of <see cref="CrossLayer"/>: pre = x_l·Wᵀ (GEMM), then y = x0 ⊙ (pre + b) + x_l (one elementwise kernel).</summary>
    private static Tensor CrossLayerGpu(Tape tape, Tensor x0, Tensor xl, Tensor weight, Tensor bias)
    {
        var gpu = OnTapeDevice(tape, nameof(CrossLayer), x0, xl, weight, bias);
        int b = x0.Dim(0), d = x0.Dim(1);
        var pre = tape.Arena.Allocate(x0.Shape);
        var y = tape.Arena.Allocate(x0.Shape);
        GemmGpuKernels.MatMulNT(gpu, xl.View, weight.View, pre.View, b, d, d, accumulate: false);
        InteractionGpuKernels.CrossForward(gpu, x0.View, xl.View, pre.View, bias.View, y.View, b, d);
        if (tape.NeedsGrad(x0, xl, weight, bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => CrossLayerBackwardGpu(t, e.Output!, e.A!, e.B!, e.C!, e.D!, e.E!),
                Output = y, A = x0, B = xl, C = weight, D = bias, E = pre,
            });
        return y;
    }

    private static void CrossLayerBackwardGpu(Tape tape, Tensor y, Tensor x0, Tensor xl, Tensor weight, Tensor bias, Tensor pre)
    {
        if (y.Grad is null) return;
        var gpu = tape.Device.Gpu;
        int b = x0.Dim(0), d = x0.Dim(1);
        var dPre = tape.Arena.Allocate(x0.Shape);
        // x0 and x_l are the same tensor in the first layer: GradOf then returns one buffer and both terms add into it.
        var dX0 = tape.GradOf(x0);
        var dXl = tape.GradOf(xl);
        Tensor? sink = null;
        InteractionGpuKernels.CrossBackward(gpu, x0.View, pre.View, bias.View, y.Grad.View,
            (dX0 ?? (sink ??= tape.Arena.Allocate(x0.Shape))).View, dPre.View, (dXl ?? (sink ??= tape.Arena.Allocate(x0.Shape))).View, b, d);
        if (dXl is not null) GemmGpuKernels.MatMul(gpu, dPre.View, weight.View, dXl.View, b, d, d, accumulate: true);
        if (tape.GradOf(weight) is { } dW) GemmGpuKernels.MatMulTN(gpu, dPre.View, xl.View, dW.View, d, d, b, accumulate: true);
        if (tape.GradOf(bias) is { } dB) ReduceGpuKernels.ColumnSum(gpu, dPre.View, dB.View, b, d, accumulate: true);
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Common;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>GPU path of <see cref="Linear"/>: one GEMM with bias and activation fused into its epilogue.</summary>
    private static Tensor LinearGpu(Tape tape, Tensor x, Tensor weight, Tensor? bias, Activation activation)
    {
        var gpu = OnTapeDevice(tape, nameof(Linear), x, weight, bias);
        int batch = x.Dim(0), inF = x.Dim(1), outF = weight.Dim(0);
        var y = tape.Arena.Allocate(new Shape(batch, outF));
        GemmGpuKernels.LinearForward(gpu, x.View, weight.View, bias is null ? default : bias.View, y.View, batch, outF, inF, activation);
        if (tape.NeedsGrad(x, weight, bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => LinearBackwardGpu(t, e.Output!, e.A!, e.B!, e.C, (Activation)e.I0),
                Output = y, A = x, B = weight, C = bias, I0 = (int)activation,
            });
        return y;
    }

    /// <summary>As the CPU rule: act' in place on dY (every consumer has added into it), then dX, dW and dBias.</summary>
    private static void LinearBackwardGpu(Tape tape, Tensor y, Tensor x, Tensor weight, Tensor? bias, Activation activation)
    {
        if (y.Grad is null) return;
        var gpu = tape.Device.Gpu;
        int batch = x.Dim(0), inF = x.Dim(1), outF = weight.Dim(0);
        var dPre = tape.GradToOverwrite(y)!;
        ElementwiseGpuKernels.ActivationBackwardInPlace(gpu, activation, y.View, dPre.View, dPre.Length);
        var dX = tape.GradOf(x, out bool freshDx);
        if (dX is not null)
            GemmGpuKernels.MatMul(gpu, dPre.View, weight.View, dX.View, batch, inF, outF, accumulate: !freshDx);
        if (tape.GradOf(weight) is { } dW)
            GemmGpuKernels.MatMulTN(gpu, dPre.View, x.View, dW.View, outF, inF, batch, accumulate: true);
        if (bias is not null && tape.GradOf(bias) is { } dBias)
            ReduceGpuKernels.ColumnSum(gpu, dPre.View, dBias.View, batch, outF, accumulate: true);
    }
}

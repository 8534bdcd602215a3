using Recsys.Engine.Core;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Interaction;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// GPU path of <see cref="CrossLayerLowRank"/>: P = x_l·V [B, r] and H = P·Uᵀ [B, d] (two GEMMs), then
    /// y = x0 ⊙ (H + b) + x_l. Saved: H then P in one arena tensor.
    /// </summary>
    private static Tensor CrossLayerLowRankGpu(Tape tape, Tensor x0, Tensor xl, Tensor u, Tensor v, Tensor bias)
    {
        var gpu = OnTapeDevice(tape, nameof(CrossLayerLowRank), x0, xl, u, v, bias);
        int b = x0.Dim(0), d = x0.Dim(1), r = u.Dim(1);
        var saved = tape.Arena.Allocate(new Shape(b * (d + r)));
        var hidden = saved.View.SubView(0, (long)b * d);
        var projected = saved.View.SubView((long)b * d, (long)b * r);
        var y = tape.Arena.Allocate(x0.Shape);
        GemmGpuKernels.MatMul(gpu, xl.View, v.View, projected, b, r, d, accumulate: false);
        GemmGpuKernels.MatMulNT(gpu, projected, u.View, hidden, b, d, r, accumulate: false);
        InteractionGpuKernels.CrossForward(gpu, x0.View, xl.View, hidden, bias.View, y.View, b, d);
        if (tape.NeedsGrad(x0, xl, u, v) || tape.NeedsGrad(bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => CrossLayerLowRankBackwardGpu(t, e, (Tensor)e.State!),
                Output = y, A = x0, B = xl, C = u, D = v, E = bias, State = saved,
            });
        return y;
    }

    private static void CrossLayerLowRankBackwardGpu(Tape tape, in TapeEntry e, Tensor saved)
    {
        var y = e.Output!;
        if (y.Grad is null) return;
        Tensor x0 = e.A!, xl = e.B!, u = e.C!, v = e.D!, bias = e.E!;
        var gpu = tape.Device.Gpu;
        int b = x0.Dim(0), d = x0.Dim(1), r = u.Dim(1);
        var hidden = saved.View.SubView(0, (long)b * d);
        var projected = saved.View.SubView((long)b * d, (long)b * r);
        var dHidden = tape.Arena.Allocate(x0.Shape);
        var dProjected = tape.Arena.Allocate(new Shape(b, r));
        var dX0 = tape.GradOf(x0);
        var dXl = tape.GradOf(xl);
        Tensor? sink = null;
        InteractionGpuKernels.CrossBackward(gpu, x0.View, hidden, bias.View, y.Grad.View,
            (dX0 ?? (sink ??= tape.Arena.Allocate(x0.Shape))).View, dHidden.View, (dXl ?? (sink ??= tape.Arena.Allocate(x0.Shape))).View, b, d);
        // dP = dH·U; dU += dHᵀ·P; dV += x_lᵀ·dP; dX_l += dP·Vᵀ; dBias += Σ_b dH.
        GemmGpuKernels.MatMul(gpu, dHidden.View, u.View, dProjected.View, b, r, d, accumulate: false);
        if (tape.GradOf(u) is { } dU) GemmGpuKernels.MatMulTN(gpu, dHidden.View, projected, dU.View, d, r, b, accumulate: true);
        if (tape.GradOf(v) is { } dV) GemmGpuKernels.MatMulTN(gpu, xl.View, dProjected.View, dV.View, d, r, b, accumulate: true);
        if (dXl is not null) GemmGpuKernels.MatMulNT(gpu, dProjected.View, v.View, dXl.View, b, d, r, accumulate: true);
        if (tape.GradOf(bias) is { } dB) ReduceGpuKernels.ColumnSum(gpu, dHidden.View, dB.View, b, d, accumulate: true);
    }
}

using Recsys.Engine.Core;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Interaction;
using Recsys.Kernels.Normalization;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Operations;

/// <summary>GPU paths of the attention block's ops: TokenLinear (one GEMM over B·T rows), AttentionCore and LayerNorm.</summary>
public static partial class Ops
{
    private static Tensor TokenLinearGpu(Tape tape, Tensor x, Tensor weight, Tensor bias, Shape outShape)
    {
        var gpu = OnTapeDevice(tape, nameof(TokenLinear), x, weight, bias);
        int inDim = x.Dim(-1), outDim = weight.Dim(0), n = x.Length / Math.Max(1, inDim);
        var y = tape.Arena.Allocate(outShape);
        GemmGpuKernels.LinearForward(gpu, x.View, weight.View, bias.View, y.View, n, outDim, inDim, Activation.None);
        if (tape.NeedsGrad(x, weight, bias))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    Tensor x = e.A!, w = e.B!;
                    var g = t.Device.Gpu;
                    int inDim = x.Dim(-1), outDim = w.Dim(0), n = x.Length / Math.Max(1, inDim);
                    if (t.GradOf(x, out bool fresh) is { } dx) GemmGpuKernels.MatMul(g, dy.View, w.View, dx.View, n, inDim, outDim, accumulate: !fresh);
                    if (t.GradOf(w) is { } dw) GemmGpuKernels.MatMulTN(g, dy.View, x.View, dw.View, outDim, inDim, n, accumulate: true);
                    if (t.GradOf(e.C!) is { } db) ReduceGpuKernels.ColumnSum(g, dy.View, db.View, n, outDim, accumulate: true);
                },
                Output = y, A = x, B = weight, C = bias,
            });
        return y;
    }

    private static Tensor AttentionCoreGpu(Tape tape, Tensor qkv, int heads)
    {
        var gpu = OnTapeDevice(tape, nameof(AttentionCore), qkv);
        int b = qkv.Dim(0), t = qkv.Dim(1), d = qkv.Dim(2) / 3;
        var y = tape.Arena.Allocate(new Shape(b, t, d));
        var probs = tape.Arena.Allocate(new Shape(b, heads, t, t));
        AttentionGpuKernels.Forward(gpu, qkv.View, probs.View, y.View, b, t, heads, d);
        if (tape.NeedsGrad(qkv))
            tape.Record(new TapeEntry
            {
                Backward = static (tp, in e) =>
                {
                    var dQkv = tp.GradOf(e.A!);
                    if (e.Output!.Grad is not { } dy || dQkv is null) return;
                    var q = e.A!;
                    AttentionGpuKernels.Backward(tp.Device.Gpu, q.View, e.B!.View, dy.View, dQkv.View, q.Dim(0), q.Dim(1), e.I0, e.Output.Dim(2));
                },
                Output = y, A = qkv, B = probs, I0 = heads,
            });
        return y;
    }

    private static Tensor LayerNormGpu(Tape tape, Tensor x, Tensor gamma, Tensor beta, float eps)
    {
        var gpu = OnTapeDevice(tape, nameof(LayerNorm), x, gamma, beta);
        int d = x.Dim(-1), rows = x.Length / d;
        var y = tape.Arena.Allocate(x.Shape);
        var stats = tape.Arena.Allocate(new Shape(2 * rows)); // mean, then rstd
        LayerNormGpuKernels.Forward(gpu, x.View, gamma.View, beta.View, y.View, stats.View.SubView(0, rows), stats.View.SubView(rows, rows), rows, d, eps);
        if (tape.NeedsGrad(x, gamma, beta))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    Tensor x = e.A!, gamma = e.B!, beta = e.C!, stats = e.D!;
                    int d = x.Dim(-1), rows = x.Length / d;
                    // The kernel writes all three gradients; those not needed go to throw-away arena buffers.
                    var dx = t.GradOf(x) ?? t.Arena.Allocate(x.Shape);
                    var dg = t.GradOf(gamma) ?? t.Arena.Allocate(gamma.Shape);
                    var db = t.GradOf(beta) ?? t.Arena.Allocate(beta.Shape);
                    LayerNormGpuKernels.Backward(t.Device.Gpu, x.View, gamma.View, stats.View.SubView(0, rows), stats.View.SubView(rows, rows),
                        dy.View, dx.View, dg.View, db.View, rows, d);
                },
                Output = y, A = x, B = gamma, C = beta, D = stats,
            });
        return y;
    }
}

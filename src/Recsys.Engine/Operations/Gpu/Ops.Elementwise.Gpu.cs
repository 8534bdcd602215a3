using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;
using Recsys.Kernels.Reduce;

namespace Recsys.Engine.Operations;

/// <summary>
/// GPU paths of the small elementwise ops and reductions the upper layers compose (Add, AddResidual, Mul, Scale,
/// Sigmoid, Sum, Mean): one thread per element, same formulas as the CPU rules next to each op.
/// </summary>
public static partial class Ops
{
    /// <summary>y = a + b (Add and AddResidual); backward adds dY to both.</summary>
    private static Tensor AddGpu(Tape tape, Tensor a, Tensor b, string op)
    {
        var gpu = OnTapeDevice(tape, op, a, b);
        var y = tape.Arena.Allocate(a.Shape);
        ElementwiseGpuKernels.Add(gpu, a.View, b.View, y.View, y.Length);
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    var g = t.Device.Gpu;
                    if (t.GradOf(e.A!) is { } da) ElementwiseGpuKernels.Axpy(g, 1f, dy.View, da.View, da.Length);
                    if (t.GradOf(e.B!) is { } db) ElementwiseGpuKernels.Axpy(g, 1f, dy.View, db.View, db.Length);
                },
                Output = y, A = a, B = b,
            });
        return y;
    }

    private static Tensor MulGpu(Tape tape, Tensor a, Tensor b)
    {
        var gpu = OnTapeDevice(tape, nameof(Mul), a, b);
        var y = tape.Arena.Allocate(a.Shape);
        ElementwiseGpuKernels.Mul(gpu, a.View, b.View, y.View, y.Length);
        if (tape.NeedsGrad(a, b))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    var g = t.Device.Gpu;
                    if (t.GradOf(e.A!) is { } da) ElementwiseGpuKernels.MulAccumulate(g, dy.View, e.B!.View, da.View, da.Length);
                    if (t.GradOf(e.B!) is { } db) ElementwiseGpuKernels.MulAccumulate(g, dy.View, e.A!.View, db.View, db.Length);
                },
                Output = y, A = a, B = b,
            });
        return y;
    }

    private static Tensor ScaleGpu(Tape tape, Tensor x, float alpha)
    {
        var gpu = OnTapeDevice(tape, nameof(Scale), x);
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseGpuKernels.ScaleInto(gpu, alpha, x.View, y.View, y.Length);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseGpuKernels.Axpy(t.Device.Gpu, e.F0, dy.View, dx.View, dx.Length);
                },
                Output = y, A = x, F0 = alpha,
            });
        return y;
    }

    private static Tensor SigmoidGpu(Tape tape, Tensor x)
    {
        var gpu = OnTapeDevice(tape, nameof(Sigmoid), x);
        var y = tape.Arena.Allocate(x.Shape);
        ElementwiseGpuKernels.Sigmoid(gpu, x.View, y.View, y.Length);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseGpuKernels.SigmoidBackward(t.Device.Gpu, e.Output.View, dy.View, dx.View, dx.Length);
                },
                Output = y, A = x,
            });
        return y;
    }

    /// <summary>Scalar scale·Σx on the device (a fixed-order two-pass reduction); backward dX += scale·dY broadcast there too.</summary>
    private static Tensor SumScaledGpu(Tape tape, Tensor x, float scale, bool mean)
    {
        var gpu = OnTapeDevice(tape, mean ? nameof(Mean) : nameof(Sum), x);
        var y = tape.Arena.Allocate(Shape.Scalar);
        ReduceGpuKernels.Sum(gpu, x.View, y.View, x.Length);
        if (scale != 1f) ElementwiseGpuKernels.Scale(gpu, y.View, scale, 1);
        if (tape.NeedsGrad(x))
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy && t.GradOf(e.A!) is { } dx)
                        ElementwiseGpuKernels.AxpyScalar(t.Device.Gpu, e.F0, dy.View, dx.View, dx.Length);
                },
                Output = y, A = x, F0 = scale,
            });
        return y;
    }
}

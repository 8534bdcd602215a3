using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>GPU path of <see cref="Concat"/>: one column-block copy per part; backward adds each slice of dY into its part's gradient.</summary>
    private static Tensor ConcatGpu(Tape tape, Tensor[] parts, int batch, int width, bool needsGrad)
    {
        var gpu = tape.Device.Gpu;
        foreach (var x in parts) OnTapeDevice(tape, nameof(Concat), x);
        var y = tape.Arena.Allocate(new Shape(batch, width));
        int offset = 0;
        foreach (var x in parts)
        {
            ElementwiseGpuKernels.CopyColumnsInto(gpu, x.View, y.View, batch, x.Dim(1), width, offset);
            offset += x.Dim(1);
        }
        if (needsGrad && tape.RecordingEnabled)
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is not { } dy) return;
                    int rows = dy.Dim(0), w = dy.Dim(1), at = 0;
                    foreach (var x in (Tensor[])e.State!)
                    {
                        if (t.GradOf(x) is { } dx)
                            ElementwiseGpuKernels.AddColumnsFrom(t.Device.Gpu, dy.View, dx.View, rows, x.Dim(1), w, at);
                        at += x.Dim(1);
                    }
                },
                Output = y, State = parts,
            });
        return y;
    }
}

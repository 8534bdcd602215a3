using Recsys.Engine.Core;
using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Concatenates rank-2 tensors [B, d_i] along the last axis into [B, Σ d_i]. Backward adds each
    /// column slice of dY into the matching part's gradient. The parts array is kept for backward, so
    /// it must not be changed before backward runs.
    /// </summary>
    public static Tensor Concat(Tape tape, params Tensor[] parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        return ConcatCore(tape, parts, parts);
    }

    /// <summary>
    /// <see cref="Concat(Tape, Tensor[])"/> of two tensors, [B, d_a] and [B, d_b] into [B, d_a + d_b]. The pair is recorded
    /// in the tape entry itself, so a training step that concatenates two inputs (DCNv2's x0) allocates nothing.
    /// </summary>
    public static Tensor Concat(Tape tape, Tensor a, Tensor b) => ConcatCore(tape, [a, b], null);

    /// <summary>Forward of both overloads; <paramref name="array"/> is the caller's parts array, or null for a recorded pair.</summary>
    private static Tensor ConcatCore(Tape tape, ReadOnlySpan<Tensor> parts, Tensor[]? array)
    {
        ArgumentNullException.ThrowIfNull(tape);
        if (parts.Length == 0) throw new ArgumentException("Concat: expected at least one tensor, got none.", nameof(parts));
        int batch = -1, width = 0;
        bool needsGrad = false;
        for (int p = 0; p < parts.Length; p++)
        {
            var x = parts[p] ?? throw new ArgumentNullException(nameof(parts), $"Concat: part {p} is null.");
            if (x.Rank != 2)
                throw new ArgumentException($"Concat: part {p} must be rank 2 [B, d], got shape {x.Shape}.");
            if (batch < 0) batch = x.Dim(0);
            else if (x.Dim(0) != batch)
                throw new ArgumentException($"Concat: part {p} has shape {x.Shape} but part 0 has shape {parts[0].Shape}; the first dimensions must match.");
            width += x.Dim(1);
            needsGrad |= x.RequiresGrad;
        }
        if (tape.Device.IsGpu) return ConcatGpu(tape, array ?? parts.ToArray(), batch, width, needsGrad);
        var y = tape.Arena.Allocate(new Shape(batch, width));
        var ys = y.Span;
        int offset = 0;
        foreach (var x in parts)
        {
            int d = x.Dim(1);
            var xs = x.ReadOnlySpan;
            for (int b = 0; b < batch; b++) xs.Slice(b * d, d).CopyTo(ys.Slice(b * width + offset, d));
            offset += d;
        }
        if (needsGrad && tape.RecordingEnabled)
        {
            if (array is null)
                tape.Record(new TapeEntry { Backward = static (t, in e) => ConcatBackward(t, e.Output!, [e.A!, e.B!]), Output = y, A = parts[0], B = parts[1] });
            else
                tape.Record(new TapeEntry { Backward = static (t, in e) => ConcatBackward(t, e.Output!, (Tensor[])e.State!), Output = y, State = array });
        }
        return y;
    }

    private static void ConcatBackward(Tape tape, Tensor y, ReadOnlySpan<Tensor> parts)
    {
        if (y.Grad is not { } dy) return;
        int batch = y.Dim(0), width = y.Dim(1), offset = 0;
        var dys = dy.ReadOnlySpan;
        foreach (var x in parts)
        {
            int d = x.Dim(1);
            if (tape.GradOf(x) is { } dx)
            {
                var dxs = dx.Span;
                for (int b = 0; b < batch; b++)
                    ElementwiseKernels.AddInPlace(dys.Slice(b * width + offset, d), dxs.Slice(b * d, d));
            }
            offset += d;
        }
    }
}

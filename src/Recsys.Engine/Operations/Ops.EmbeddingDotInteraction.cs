using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.Interaction;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// <see cref="EmbeddingBags"/> of <paramref name="ids"/> followed by <see cref="DotInteraction"/> with
    /// <paramref name="dense"/> [B, D]: [B, D + (F+1)F/2]. On a host tape that does not record (inference), the two run
    /// fused: each sample's bags are pooled into L1 and interacted there, so the [B, F, D] embeddings never go to memory
    /// (DLRM at batch 4096: 27 MB written and read back). The result is bit-identical to the two ops. A recording tape
    /// (training needs the embeddings for the backward) or a device runs the two ops.
    /// </summary>
    public static Tensor EmbeddingDotInteraction(Tape tape, Tensor dense, EmbeddingBagCollection collection, KeyedJagged ids)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(dense);
        ArgumentNullException.ThrowIfNull(collection);
        if (tape.RecordingEnabled || tape.Device.IsGpu || collection.Device.IsGpu)
            return DotInteraction(tape, dense, EmbeddingBags(tape, collection, ids));
        collection.CheckIds(ids);
        int b = ids.BatchSize, f = collection.Tables.Count, d = collection.Dim;
        if (dense.Rank != 2 || dense.Dim(0) != b || dense.Dim(1) != d)
            throw new ArgumentException($"EmbeddingDotInteraction: expected dense [B, D] = [{b}, {d}] (the batch of the ids, the dim of the tables), got {dense.Shape}.", nameof(dense));
        var y = tape.Arena.Allocate(new Shape(b, DotInteractionKernels.OutputDim(f, d)));
        collection.ForwardDotInteractionInto(ids, dense.ReadOnlySpan, y.Span);
        return y;
    }
}

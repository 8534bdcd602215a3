using Recsys.Engine.Core;
using Recsys.Engine.Data;

namespace Recsys.Engine.Nn;

using Recsys.Engine.Operations;

/// <summary>
/// DLRM interaction arch: pairwise dot products of the dense row and the F embeddings, appended
/// to the dense row. No parameters.
/// </summary>
public sealed class DotInteraction : Module
{
    /// <summary>Output width for F embeddings of dimension D: D + (F+1)F/2.</summary>
    public static int OutputDim(int features, int dim) => Recsys.Kernels.Interaction.DotInteractionKernels.OutputDim(features, dim);

    /// <summary>dense [B, D], sparse [B, F, D] → [B, D + (F+1)F/2].</summary>
    public Tensor Forward(Tape tape, Tensor dense, Tensor sparse) => Ops.DotInteraction(tape, dense, sparse);

    /// <summary>dense [B, D] and the pooled lookups of <paramref name="ids"/> in <paramref name="embeddings"/> → [B, D + (F+1)F/2]; fused for inference (see <see cref="Ops.EmbeddingDotInteraction"/>).</summary>
    public Tensor Forward(Tape tape, Tensor dense, EmbeddingBagCollection embeddings, KeyedJagged ids) =>
        Ops.EmbeddingDotInteraction(tape, dense, embeddings, ids);
}

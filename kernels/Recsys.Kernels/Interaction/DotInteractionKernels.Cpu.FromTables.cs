using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Kernels.Interaction;

public static unsafe partial class DotInteractionKernels
{
    /// <summary>
    /// Embedding bags followed by <see cref="Forward"/>, fused for inference: each sample's F bags are pooled into L1
    /// (<see cref="EmbeddingBagKernels.ForwardTables"/>'s lookups and pooled values) and interacted right there, so the
    /// [B, F, D] embeddings are never written to memory and read back. The output is bit-identical to the two calls made
    /// one after the other. There is no backward: training needs the embeddings for the interaction's gradient.
    /// </summary>
    /// <param name="dense">[B, D] bottom-MLP output.</param>
    /// <param name="weights">F tables, weights[f] [rows[f], D] from <paramref name="weightStarts"/>[f] (empty: 0).</param>
    /// <param name="offsets">F·B + 1 bag offsets into <paramref name="indices"/>, feature-major (bag (f, b) at f·B + b).</param>
    /// <param name="output">[B, D + (F+1)F/2].</param>
    /// <exception cref="EmbeddingIndexOutOfRangeException">An id is outside its table (the first such position is reported).</exception>
    public static void ForwardFromTables(ReadOnlySpan<float> dense, ReadOnlySpan<float[]> weights, ReadOnlySpan<int> rows, int dim, int batchSize,
        ReadOnlySpan<int> indices, ReadOnlySpan<int> offsets, ReadOnlySpan<float> perSampleWeights, PoolingMode mode, Span<float> output,
        ReadOnlySpan<int> weightStarts = default)
    {
        const string op = "DotInteraction.ForwardFromTables";
        KernelGuard.NonNegative(batchSize, nameof(batchSize), op);
        KernelGuard.Positive(dim, nameof(dim), op);
        int features = weights.Length;
        if (features < 1) throw new ArgumentException($"{op}: needs at least one table, got 0.", nameof(weights));
        KernelGuard.AtLeast(dense, (long)batchSize * dim, nameof(dense), op);
        KernelGuard.AtLeast(output, (long)batchSize * OutputDim(features, dim), nameof(output), op);
        fixed (float* pd = dense, po = output)
        {
            var consumer = new InteractionConsumer { Dense = pd, Output = po, F = features, D = dim };
            EmbeddingBagKernels.ForwardTablesToConsumer(weights, rows, dim, batchSize, indices, offsets, perSampleWeights, mode, weightStarts, ref consumer, op);
        }
    }

    /// <summary>One sample's interaction from its pooled bags; the dense row from [B, D].</summary>
    private struct InteractionConsumer : IPooledSampleConsumer
    {
        public float* Dense, Output;
        public int F, D;

        public readonly int ScratchFloats => DotInteractionKernels.ScratchFloats(F + 1, D);

        public readonly long CostPerSample => ForwardCostPerSample(F, D);

        public readonly void BeginChunk(float* scratch) => SampleForward.PrepareScratch(F, D, scratch);

        public readonly void Consume(int sample, float* pooled, float* scratch) =>
            new SampleForward(F, D, scratch).Run(Dense + (long)sample * D, pooled, Output + (long)sample * OutputDim(F, D));
    }
}

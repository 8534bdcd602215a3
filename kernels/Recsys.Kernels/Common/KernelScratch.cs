namespace Recsys.Kernels.Common;

/// <summary>A unit of parallel work that needs a per-chunk block of scratch floats (see <see cref="WithScratch{TBody}"/>).</summary>
internal unsafe interface IScratchChunkBody
{
    /// <summary>Floats of scratch one chunk needs.</summary>
    int ScratchFloats { get; }

    void Run(int chunk, int chunks, float* scratch);
}

/// <summary>
/// Runs a <see cref="IScratchChunkBody"/> as an <see cref="IChunkBody"/>: the chunk's scratch lives on the stack up to
/// 16K floats (64 KB) and is one array per chunk beyond that — per call, never per item.
/// </summary>
internal unsafe struct WithScratch<TBody> : IChunkBody where TBody : struct, IScratchChunkBody
{
    private const int StackScratchLimit = 16 * 1024;

    public TBody Body;

    public readonly void Run(int chunk, int chunks)
    {
        int need = Body.ScratchFloats;
        if (need <= StackScratchLimit)
        {
            float* scratch = stackalloc float[need];
            Body.Run(chunk, chunks, scratch);
        }
        else
        {
            fixed (float* scratch = new float[need]) Body.Run(chunk, chunks, scratch);
        }
    }
}

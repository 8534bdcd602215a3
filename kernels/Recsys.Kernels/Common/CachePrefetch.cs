using System.Runtime.Intrinsics.X86;

namespace Recsys.Kernels.Common;

/// <summary>
/// Software prefetch of runs of floats, for kernels whose reads the hardware prefetchers do not follow (column patterns,
/// several short rows at a stride). A hint only: it never faults, so a run past the end of a buffer is harmless, and
/// it does nothing where the instruction set has no prefetch.
/// </summary>
internal static unsafe class CachePrefetch
{
    /// <summary>Asks for the cache lines of <paramref name="floats"/> floats from <paramref name="start"/> to be brought into L2.</summary>
    public static void IntoL2(float* start, long floats)
    {
        if (!Sse.IsSupported) return;
        byte* p = (byte*)start;
        for (long off = 0; off < floats * sizeof(float); off += 64) Sse.Prefetch1(p + off);
    }

    /// <summary>Asks for the cache lines of <paramref name="floats"/> floats from <paramref name="start"/> to be brought into L1.</summary>
    public static void IntoL1(float* start, long floats)
    {
        if (!Sse.IsSupported) return;
        byte* p = (byte*)start;
        for (long off = 0; off < floats * sizeof(float); off += 64) Sse.Prefetch0(p + off);
    }
}

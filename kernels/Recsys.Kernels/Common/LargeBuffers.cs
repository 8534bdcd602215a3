using System.Runtime.InteropServices;

namespace Recsys.Kernels.Common;

/// <summary>
/// Allocation of big float buffers that kernels gather from at random (embedding tables, their optimizer
/// state, the per-step arena). With 4 KiB pages every random 256-byte row read of a 665 MB table misses
/// the TLB; on Linux, where transparent huge pages are commonly in "madvise" mode, these buffers are
/// therefore pinned (so they never move) and advised MADV_HUGEPAGE before their first touch, which backs
/// them with 2 MiB pages. Elsewhere, or when the advice is refused, they are ordinary arrays.
/// </summary>
public static class LargeBuffers
{
    /// <summary>Below this size huge pages do not matter (and pinning small arrays only fragments the heap).</summary>
    public const long HugePageThresholdBytes = 4L << 20;

    /// <summary>Where aligned buffers start by default: a cache line (and Vector512) boundary.</summary>
    public const int CacheLineBytes = 64;

    /// <summary>
    /// Where embedding tables start: a 256-byte boundary. A 64-float row is 256 bytes, so in a table that starts here
    /// every row covers two whole 128-byte line pairs. The heap's large pinned arrays, aligned to the cache line only,
    /// put every table at 64 mod 256, and every random row then straddled three pairs. W1 pooling-1 training (26 tables,
    /// fused, forward + backward + SGD), three allocations interleaved step by step in one process over 40 s:
    /// 3.49–3.75 ms a step at 64 mod 256 against 3.38–3.66 at 0 and 3.39–3.69 at 128 (~3 % on the means); pooling 32
    /// within 1 %. Only the tables ask for it: nothing else was measured to gain (W4, whose arena tensors have 1,716-byte
    /// rows, timed within 1 % either way).
    /// </summary>
    public const int EmbeddingTableAlignmentBytes = 256;

    private const int MadvHugepage = 14;
    private const long HugePage = 2L << 20;

    /// <summary>A zero-filled float array of <paramref name="length"/>, huge-page backed where possible.</summary>
    public static float[] Floats(int length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, $"LargeBuffers.Floats: length must be >= 0, got {length}.");
        if ((long)length * sizeof(float) < HugePageThresholdBytes) return new float[length];
        var array = GC.AllocateUninitializedArray<float>(length, pinned: true);
        AdviseHugePages(array);
        array.AsSpan().Clear(); // first touch happens here, after the advice
        return array;
    }

    /// <summary>
    /// Like <see cref="Floats"/>, plus room to start the data on a cache-line (<see cref="CacheLineBytes"/>, Vector512)
    /// boundary: <paramref name="start"/> is the index where the aligned data begins. Only pinned (large) buffers can
    /// promise that; small ones return start 0.
    /// </summary>
    public static float[] AlignedFloats(int length, out int start) => AlignedFloats(length, out start, pinSmall: false);

    /// <summary>
    /// As above; with <paramref name="pinSmall"/> a small buffer is also pinned (on the pinned object heap, where the GC
    /// never moves it) so that its aligned start holds too. <paramref name="alignmentBytes"/>: a power of two from 4 to
    /// 4096 (default <see cref="CacheLineBytes"/>).
    /// </summary>
    public static float[] AlignedFloats(int length, out int start, bool pinSmall, int alignmentBytes = CacheLineBytes)
    {
        if (alignmentBytes < sizeof(float) || alignmentBytes > 4096 || (alignmentBytes & (alignmentBytes - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignmentBytes), alignmentBytes,
                $"LargeBuffers.AlignedFloats: alignment must be a power of two from 4 to 4096 bytes, got {alignmentBytes}.");
        int pad = alignmentBytes / sizeof(float);
        if (length > Array.MaxLength - pad)
        {
            start = 0;
            return new float[length];
        }
        if ((long)length * sizeof(float) < HugePageThresholdBytes)
        {
            if (!pinSmall)
            {
                start = 0;
                return new float[length];
            }
            var small = GC.AllocateArray<float>(length + pad, pinned: true);
            start = AlignedStart(small, alignmentBytes);
            return small;
        }
        var array = Floats(length + pad);
        start = AlignedStart(array, alignmentBytes);
        return array;
    }

    /// <summary>The first index of pinned <paramref name="array"/> whose address is a multiple of <paramref name="alignmentBytes"/>.</summary>
    private static unsafe int AlignedStart(float[] array, int alignmentBytes)
    {
        fixed (float* p = array)
            return (int)(((alignmentBytes - (long)p % alignmentBytes) % alignmentBytes) / sizeof(float));
    }

    private static unsafe void AdviseHugePages(float[] array)
    {
        if (!OperatingSystem.IsLinux()) return;
        fixed (float* p = array)
        {
            long start = (long)p, end = start + (long)array.Length * sizeof(float);
            long alignedStart = (start + HugePage - 1) & ~(HugePage - 1);
            long alignedEnd = end & ~(HugePage - 1);
            if (alignedEnd <= alignedStart) return;
            try
            {
                _ = madvise((nint)alignedStart, (nuint)(alignedEnd - alignedStart), MadvHugepage); // advice only: failure is harmless
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // No libc madvise (unusual Linux); keep normal pages.
            }
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int madvise(nint address, nuint length, int advice);
}

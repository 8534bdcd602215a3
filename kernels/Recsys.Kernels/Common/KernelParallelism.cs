namespace Recsys.Kernels.Common;

/// <summary>
/// How many threads CPU kernels may use. Work is split into a fixed number of contiguous chunks
/// that depends only on the problem size and <see cref="MaxThreads"/>, never on scheduling, so a
/// fixed seed and thread count give bit-identical results run after run.
/// </summary>
public static class KernelParallelism
{
    private static int _maxThreads = Environment.ProcessorCount;

    /// <summary>True on a thread while it runs a chunk of <see cref="ForIndependent"/>: kernels it calls stay on it.</summary>
    [ThreadStatic] private static bool t_serial;

    /// <summary>Upper bound on threads used by one kernel call (default: all logical processors).</summary>
    public static int MaxThreads
    {
        get => _maxThreads;
        set
        {
            if (value < 1)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"MaxThreads must be >= 1, got {value}.");
            _maxThreads = value;
        }
    }

    /// <summary>
    /// Number of chunks to split <paramref name="items"/> units of work into, given that one unit costs
    /// about <paramref name="costPerItem"/> scalar operations. Small problems stay on one thread:
    /// waking a worker costs a few microseconds, about 20k multiply-adds. Always 1 inside a chunk of
    /// <see cref="ForIndependent"/>.
    /// </summary>
    public static int Chunks(long items, long costPerItem, long minCostPerChunk = 32_768)
    {
        if (items <= 1 || _maxThreads == 1 || t_serial) return 1;
        long total = items * Math.Max(1, costPerItem);
        long byCost = Math.Max(1, total / minCostPerChunk);
        return (int)Math.Min(Math.Min(byCost, _maxThreads), items);
    }

    /// <summary>[start, end) of chunk <paramref name="chunk"/> when <paramref name="items"/> is cut into <paramref name="chunks"/> near-equal parts.</summary>
    public static (int Start, int End) Range(int items, int chunks, int chunk)
    {
        long start = (long)items * chunk / chunks;
        long end = (long)items * (chunk + 1) / chunks;
        return ((int)start, (int)end);
    }

    /// <summary>
    /// Runs <paramref name="body"/> for chunk indices 0..chunks-1 on up to <see cref="MaxThreads"/> threads (the caller
    /// and long-lived kernel workers, see <see cref="KernelWorkerPool"/>); inline when there is one chunk. Allocates
    /// nothing. An exception thrown by a chunk is rethrown here after every chunk has finished.
    /// </summary>
    public static void For<TBody>(int chunks, ref TBody body) where TBody : struct, IChunkBody
    {
        if (chunks <= 1) { body.Run(0, 1); return; }
        KernelWorkerPool.Run(chunks, ref body, _maxThreads);
    }

    /// <summary>
    /// Like <see cref="For"/>, for chunks that each make whole kernel calls of their own (one embedding table's update
    /// per call): every kernel called from inside a chunk runs in one chunk on that chunk's thread (<see cref="Chunks"/>
    /// gives 1 there) instead of being split across the threads again. Each call's data then stays on one core, where a
    /// split would move the lines it writes between cores, and a split kernel would only run its chunks one after another
    /// anyway, as nested parallel regions do. Results are those of the same calls made one after another, for every kernel
    /// whose results do not depend on its chunk count.
    /// </summary>
    public static void ForIndependent<TBody>(int chunks, ref TBody body) where TBody : struct, IChunkBody
    {
        var serial = new SerialChunks<TBody> { Body = body };
        For(chunks, ref serial);
    }

    private struct SerialChunks<TBody> : IChunkBody where TBody : struct, IChunkBody
    {
        public TBody Body;

        public void Run(int chunk, int chunks)
        {
            bool outer = t_serial;
            t_serial = true;
            try { Body.Run(chunk, chunks); }
            finally { t_serial = outer; }
        }
    }
}

/// <summary>A unit of parallel work: chunk <c>chunk</c> of <c>chunks</c>. A struct so the loop body is not a closure.</summary>
public interface IChunkBody
{
    void Run(int chunk, int chunks);
}

using System.Runtime.ExceptionServices;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Engine.Nn;

/// <summary>
/// The backwards of several <see cref="EmbeddingBagCollection"/>s that a tape reaches one after another (one collection
/// per feature, facebookresearch/dlrm style: 26 lookups, then one backward from all 26 outputs), run with each
/// collection whole on one thread and the collections spread over the threads.
/// <para>
/// Why: one backward at a time splits each table's update across the threads by row slices, so every core reads all of
/// the table's ids and gradient rows, and writes rows the other core read in the forward. When the host's transfers
/// between cores are slow that costs 2.2x (W1 per table, pooling 32: 85–112 ms against 44–47 for the same step while they
/// are fast); whole tables per thread, as the fused layout does, ran 29–33 ms in both phases.
/// </para>
/// <para>
/// The result is that of the backwards run one by one in the tape's order, bit for bit: each collection's updates run in
/// that order on one thread, no two threads touch one table, and the optimizer steps are drawn on the calling thread in
/// that order. When a backward throws (an id changed since the forward), the others of the group still run; the
/// exception of the first failing backward in the tape's order is rethrown, and that collection's later backwards in the
/// group are skipped. One at a time, every backward after the failing one would have been skipped.
/// </para>
/// </summary>
internal sealed class EmbeddingBackwardGroup
{
    [ThreadStatic] private static EmbeddingBackwardGroup? t_group;

    /// <summary>
    /// Largest thread load the spread may leave, over a perfectly even one. Beyond it (one collection much larger than
    /// the rest) the backwards run one by one, each split across the threads.
    /// </summary>
    private const double MaxImbalance = 1.25;

    private Pending[] _pending = new Pending[32];
    private long[] _load = new long[4];
    private int _count;

    private struct Pending
    {
        public EmbeddingBagCollection Collection;
        public KeyedJagged Ids;
        public Tensor Gradient;
        public SparseUpdate Update;
        public long Cost;
        /// <summary>Index of the first backward of the same collection (itself when it is the first).</summary>
        public int First;
        /// <summary>On a collection's first backward: the cost of all of them, and whether one has failed.</summary>
        public long CollectionCost;
        public bool CollectionFailed;
        public int Thread;
        public ExceptionDispatchInfo? Error;
    }

    /// <summary>This thread's group, emptied (a tape runs its backward on one thread; the group is reused every step).</summary>
    public static EmbeddingBackwardGroup Begin()
    {
        var g = t_group ??= new EmbeddingBackwardGroup();
        g._count = 0;
        return g;
    }

    /// <summary>Adds the next backward in the order they would run one by one.</summary>
    public void Add(EmbeddingBagCollection collection, KeyedJagged ids, Tensor gradient)
    {
        if (_count == _pending.Length) Array.Resize(ref _pending, _count * 2);
        _pending[_count++] = new Pending
        {
            Collection = collection, Ids = ids, Gradient = gradient,
            Cost = ids.ValueCount + (long)ids.BatchSize * ids.Features,
        };
    }

    /// <summary>Runs every added backward (see the class remarks), then forgets them.</summary>
    public void Run()
    {
        try
        {
            for (int i = 0; i < _count; i++) _pending[i].Update = _pending[i].Collection.PrepareBackward();
            int threads = Spread();
            if (threads <= 1)
            {
                for (int i = 0; i < _count; i++)
                    _pending[i].Collection.RunBackward(_pending[i].Ids, _pending[i].Gradient.ReadOnlySpan, _pending[i].Update);
                return;
            }
            var body = new RunBody { Group = this };
            KernelParallelism.ForIndependent(threads, ref body);
            for (int i = 0; i < _count; i++) _pending[i].Error?.Throw();
        }
        finally
        {
            Array.Clear(_pending, 0, _count); // the step's tensors and ids must not outlive it here
            _count = 0;
        }
    }

    /// <summary>
    /// Gives every backward a thread, all of one collection's the same one (they share its workspace and tables): the
    /// collections, largest first, each to the least loaded thread. Returns the thread count, or 1 when the work is too
    /// small to split, there is one collection, or the loads would be too uneven.
    /// </summary>
    private int Spread()
    {
        long total = 0;
        int collections = 0;
        for (int i = 0; i < _count; i++)
        {
            ref var p = ref _pending[i];
            p.Thread = -1;
            p.First = i;
            for (int k = 0; k < i; k++)
                if (ReferenceEquals(_pending[k].Collection, p.Collection)) { p.First = k; break; }
            if (p.First == i) collections++;
            _pending[p.First].CollectionCost += p.Cost;
            total += p.Cost;
        }
        int dim = _pending[0].Collection.Tables[0].Dim;
        int threads = Math.Min(collections, KernelParallelism.Chunks(total, dim + 8));
        if (threads <= 1) return 1;
        if (_load.Length < threads) _load = new long[threads];
        Array.Clear(_load, 0, threads);
        // Largest first, each to the least loaded thread; ties go to the earlier collection and the lower thread, so it
        // is deterministic (and the bits do not depend on it anyway: each table is updated by one thread in tape order).
        for (int n = 0; n < collections; n++)
        {
            int best = -1;
            for (int i = 0; i < _count; i++)
                if (_pending[i].First == i && _pending[i].Thread < 0 && (best < 0 || _pending[i].CollectionCost > _pending[best].CollectionCost))
                    best = i;
            int thread = 0;
            for (int t = 1; t < threads; t++)
                if (_load[t] < _load[thread]) thread = t;
            _load[thread] += _pending[best].CollectionCost;
            _pending[best].Thread = thread;
        }
        for (int i = 0; i < _count; i++) _pending[i].Thread = _pending[_pending[i].First].Thread;
        long max = 0;
        for (int t = 0; t < threads; t++) max = Math.Max(max, _load[t]);
        return max > MaxImbalance * total / threads ? 1 : threads;
    }

    /// <summary>Thread <c>chunk</c> runs its backwards in the tape's order; a collection stops at its first error.</summary>
    private struct RunBody : IChunkBody
    {
        public EmbeddingBackwardGroup Group;

        public readonly void Run(int chunk, int chunks)
        {
            var pending = Group._pending;
            for (int i = 0; i < Group._count; i++)
            {
                ref var p = ref pending[i];
                // A collection's backwards all run on this thread, so its failure flag is only read and written here.
                if (p.Thread != chunk || pending[p.First].CollectionFailed) continue;
                try
                {
                    p.Collection.RunBackward(p.Ids, p.Gradient.ReadOnlySpan, p.Update);
                }
                catch (Exception ex)
                {
                    p.Error = ExceptionDispatchInfo.Capture(ex);
                    pending[p.First].CollectionFailed = true;
                }
            }
        }
    }
}

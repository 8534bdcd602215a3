using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace Recsys.Kernels.Common;

/// <summary>
/// The threads that run the chunks of <see cref="KernelParallelism.For{TBody}"/>: long-lived workers that spin briefly
/// after each job and then sleep, so a training step's many short parallel regions pay neither a thread-pool
/// dispatch nor a closure allocation. The calling thread takes chunks too; chunks are handed out through one atomic
/// counter, so which thread runs a chunk varies, but what a chunk computes does not (results stay bit-identical).
/// One job at a time: a second caller that finds the pool busy (another thread, or a kernel called from inside a
/// chunk) runs its chunks inline on its own thread — same chunks, same results, no deadlock.
/// </summary>
internal static unsafe class KernelWorkerPool
{
    // How long an idle worker keeps polling for the next job before it sleeps. A step's parallel regions follow each
    // other within microseconds and a futex wake-up costs about as much as a small kernel; longer idle gaps (between
    // steps, while the host reads data) should not burn a core.
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 10_000; // 100 µs

    private static readonly object Gate = new();
    private static readonly List<Thread> Workers = new();

    // The current job. Written by the owner before the generation is bumped, read by workers after they see the bump.
    private static delegate*<void*, int, int, void> s_invoke;
    private static void* s_body;
    private static int s_chunks;
    private static int s_helpers;          // workers allowed to join this job (MaxThreads - 1 at publication)
    private static int s_doneChunks;       // chunks finished
    private static ExceptionDispatchInfo? s_error;

    // (generation << 32) | chunks not yet handed out. A chunk is claimed by a compare-exchange that also checks the
    // generation, so a worker that woke late for a finished job can never claim a chunk of the next one; once a claim
    // succeeds the job cannot finish before that chunk does, so the job's fields are stable while the worker reads them.
    private static long s_claim;
    private static long s_generation;      // bumped once per job
    private static int s_sleepers;         // workers blocked in Monitor.Wait
    private static int s_busy;             // 1 while a job owns the pool
    private static int s_workerCount;      // Workers.Count, readable without the lock

    [ThreadStatic] private static bool t_isWorker;

    /// <summary>Threads started so far (they live for the process).</summary>
    public static int WorkerCount => Volatile.Read(ref s_workerCount);

    /// <summary>Runs chunks 0..chunks-1 of <paramref name="body"/> on up to <paramref name="threads"/> threads, the caller included.</summary>
    public static void Run<TBody>(int chunks, ref TBody body, int threads) where TBody : struct, IChunkBody
    {
        if (t_isWorker || threads <= 1 || Interlocked.CompareExchange(ref s_busy, 1, 0) != 0)
        {
            for (int c = 0; c < chunks; c++) body.Run(c, chunks);
            return;
        }
        try
        {
            int helpers = Math.Min(threads, chunks) - 1;
            EnsureWorkers(helpers);
            TBody local = body; // on this frame's stack for the whole job: workers reach it by address
            s_invoke = &Invoke<TBody>;
            s_body = Unsafe.AsPointer(ref local);
            s_chunks = chunks;
            s_helpers = helpers;
            s_doneChunks = 0;
            s_error = null;
            long generation = s_generation + 1;
            Interlocked.Exchange(ref s_claim, (generation << 32) | (uint)chunks);
            Interlocked.Exchange(ref s_generation, generation); // full fence: the job is visible before the bump
            if (Volatile.Read(ref s_sleepers) > 0)
                lock (Gate) Monitor.PulseAll(Gate);

            RunChunks(generation);
            var spin = new SpinWait();
            while (Volatile.Read(ref s_doneChunks) < chunks) spin.SpinOnce(sleep1Threshold: -1);
            s_body = null;
            s_error?.Throw();
        }
        finally
        {
            Volatile.Write(ref s_busy, 0);
        }
    }

    private static void Invoke<TBody>(void* body, int chunk, int chunks) where TBody : struct, IChunkBody =>
        Unsafe.AsRef<TBody>(body).Run(chunk, chunks);

    /// <summary>Takes chunks of job <paramref name="generation"/> until none is left (or that job is already over).</summary>
    private static void RunChunks(long generation)
    {
        while (true)
        {
            long claim = Volatile.Read(ref s_claim);
            int remaining = (int)(uint)claim;
            if (claim >> 32 != generation || remaining == 0) return;
            if (Interlocked.CompareExchange(ref s_claim, claim - 1, claim) != claim) continue;
            int chunks = s_chunks;
            try { s_invoke(s_body, chunks - remaining, chunks); }
            catch (Exception ex) { Interlocked.CompareExchange(ref s_error, ExceptionDispatchInfo.Capture(ex), null); }
            Interlocked.Increment(ref s_doneChunks);
        }
    }

    private static void EnsureWorkers(int count)
    {
        if (Volatile.Read(ref s_workerCount) >= count) return;
        lock (Gate)
        {
            while (Workers.Count < count)
            {
                int index = Workers.Count;
                var thread = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"recsys-kernel-{index + 1}" };
                Workers.Add(thread);
                thread.Start();
            }
            Volatile.Write(ref s_workerCount, Workers.Count);
        }
    }


    private static void WorkerLoop(int index)
    {
        t_isWorker = true;
        long seen = Interlocked.Read(ref s_generation);
        while (true)
        {
            long generation = WaitForJob(seen);
            seen = generation;
            // A worker beyond this job's thread budget sits it out (MaxThreads may have been lowered).
            if (index < Volatile.Read(ref s_helpers)) RunChunks(generation);
        }
    }

    private static long WaitForJob(long seen)
    {
        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
        do
        {
            for (int i = 0; i < 16; i++)
            {
                long g = Volatile.Read(ref s_generation);
                if (g != seen) return g;
                Thread.SpinWait(1);
            }
        }
        while (System.Diagnostics.Stopwatch.GetTimestamp() < deadline);
        lock (Gate)
        {
            Interlocked.Increment(ref s_sleepers); // full fence, pairs with the owner's bump-then-read
            try
            {
                long g;
                while ((g = Interlocked.Read(ref s_generation)) == seen) Monitor.Wait(Gate);
                return g;
            }
            finally
            {
                Interlocked.Decrement(ref s_sleepers);
            }
        }
    }
}

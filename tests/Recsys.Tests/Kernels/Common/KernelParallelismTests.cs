using NUnit.Framework;
using Recsys.Kernels.Common;

namespace Recsys.Tests.Kernels.Common;

[Category("Kernel")]
public class KernelParallelismTests
{
    private int _savedThreads;

    [SetUp] public void SaveThreads() => _savedThreads = KernelParallelism.MaxThreads;
    [TearDown] public void RestoreThreads() => KernelParallelism.MaxThreads = _savedThreads;

    /// <summary>Counts how often each chunk ran (the array is shared by all copies of the struct).</summary>
    private struct CountingBody : IChunkBody
    {
        public int[] Runs;
        public int ExpectedChunks;
        public int[] WrongChunkCount;

        public void Run(int chunk, int chunks)
        {
            if (chunks != ExpectedChunks) Interlocked.Increment(ref WrongChunkCount[0]);
            Interlocked.Increment(ref Runs[chunk]);
        }
    }

    [Test]
    public void For_ManyJobsInARow_RunsEveryChunkExactlyOnce([Values(1, 2, 4)] int threads)
    {
        KernelParallelism.MaxThreads = threads;
        var wrong = new int[1];
        for (int job = 0; job < 3000; job++)
        {
            int chunks = 1 + job % 7;
            var body = new CountingBody { Runs = new int[chunks], ExpectedChunks = chunks, WrongChunkCount = wrong };
            KernelParallelism.For(chunks, ref body);
            Assert.That(body.Runs, Is.All.EqualTo(1), $"job {job} ({chunks} chunks)");
        }
        Assert.That(wrong[0], Is.Zero, "a chunk saw another job's chunk count");
    }

    private struct ThrowingBody : IChunkBody
    {
        public int[] Finished;

        public void Run(int chunk, int chunks)
        {
            if (chunk == 1) throw new InvalidOperationException("chunk 1 failed");
            Interlocked.Increment(ref Finished[0]);
        }
    }

    [Test]
    public void For_ChunkThrows_RethrowsItAfterTheOtherChunksFinish()
    {
        KernelParallelism.MaxThreads = 2;
        var body = new ThrowingBody { Finished = new int[1] };
        var ex = Assert.Throws<InvalidOperationException>(() => KernelParallelism.For(4, ref body));
        Assert.That(ex!.Message, Is.EqualTo("chunk 1 failed"));
        Assert.That(body.Finished[0], Is.EqualTo(3));
        // The pool is usable afterwards.
        var wrong = new int[1];
        var next = new CountingBody { Runs = new int[3], ExpectedChunks = 3, WrongChunkCount = wrong };
        KernelParallelism.For(3, ref next);
        Assert.That(next.Runs, Is.All.EqualTo(1));
    }

    private struct NestingBody : IChunkBody
    {
        public int[][] Inner;

        public void Run(int chunk, int chunks)
        {
            var inner = new CountingBody { Runs = Inner[chunk], ExpectedChunks = Inner[chunk].Length, WrongChunkCount = new int[1] };
            KernelParallelism.For(Inner[chunk].Length, ref inner); // runs inline: the pool is busy with the outer job
        }
    }

    [Test]
    public void For_CalledFromInsideAChunk_CompletesWithoutDeadlock()
    {
        KernelParallelism.MaxThreads = 2;
        var inner = new[] { new int[3], new int[5] };
        var body = new NestingBody { Inner = inner };
        KernelParallelism.For(2, ref body);
        Assert.That(inner[0], Is.All.EqualTo(1));
        Assert.That(inner[1], Is.All.EqualTo(1));
    }

    [Test]
    public void For_FromSeveralThreadsAtOnce_EveryJobComplete()
    {
        KernelParallelism.MaxThreads = 2;
        int failures = 0;
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var wrong = new int[1];
            for (int job = 0; job < 500; job++)
            {
                int chunks = 2 + (job + t) % 5;
                var body = new CountingBody { Runs = new int[chunks], ExpectedChunks = chunks, WrongChunkCount = wrong };
                KernelParallelism.For(chunks, ref body);
                if (body.Runs.Any(r => r != 1) || wrong[0] != 0) Interlocked.Increment(ref failures);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.That(failures, Is.Zero);
    }

    [Test, CancelAfter(60_000)]
    public void For_MoreThreadsThanWorkersYet_NewWorkersTakePartInTheFirstJob()
    {
        // The first job after MaxThreads is raised starts new workers while it is published: it must finish, and run
        // every chunk once, however late their threads start.
        int raised = KernelWorkerPool.WorkerCount + 3;
        KernelParallelism.MaxThreads = raised + 1;
        var wrong = new int[1];
        var body = new CountingBody { Runs = new int[raised + 1], ExpectedChunks = raised + 1, WrongChunkCount = wrong };
        var done = Task.Run(() => KernelParallelism.For(raised + 1, ref body));
        Assert.That(done.Wait(TimeSpan.FromSeconds(30)), Is.True, "the job did not finish");
        Assert.That(body.Runs, Is.All.EqualTo(1));
    }

    private struct SumBody : IChunkBody
    {
        public long[] Partial;
        public void Run(int chunk, int chunks) => Partial[chunk] += chunk + 1;
    }

    [Test]
    public void For_SteadyState_AllocatesNothing()
    {
        KernelParallelism.MaxThreads = 2;
        var body = new SumBody { Partial = new long[2] };
        for (int i = 0; i < 100; i++) KernelParallelism.For(2, ref body); // warm up: workers started, code jitted
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) KernelParallelism.For(2, ref body);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero);
        Assert.That(body.Partial, Is.EqualTo(new long[] { 1100, 2200 }));
    }

    /// <summary>Records, per chunk, how many chunks a kernel called from inside it would use.</summary>
    private struct NestedChunksBody : IChunkBody
    {
        public int[] NestedChunks;

        public void Run(int chunk, int chunks) => NestedChunks[chunk] = KernelParallelism.Chunks(1_000_000, 1_000);
    }

    [Test]
    public void ForIndependent_KernelsCalledInsideAChunkRunInOneChunk_AndOutsideSplitAgain([Values(2, 3)] int threads)
    {
        KernelParallelism.MaxThreads = threads;
        var body = new NestedChunksBody { NestedChunks = new int[threads] };
        KernelParallelism.ForIndependent(threads, ref body);
        Assert.That(body.NestedChunks, Is.All.EqualTo(1), "a kernel inside a chunk of ForIndependent must run in one chunk");
        Assert.That(KernelParallelism.Chunks(1_000_000, 1_000), Is.EqualTo(threads), "after it, the caller splits again");

        var plain = new NestedChunksBody { NestedChunks = new int[threads] };
        KernelParallelism.For(threads, ref plain);
        Assert.That(plain.NestedChunks, Is.All.EqualTo(threads), "For leaves nested chunk counts alone");
    }

    [Test]
    public void ForIndependent_ChunkThrows_RethrownAndTheThreadsSplitAgainAfterwards()
    {
        KernelParallelism.MaxThreads = 2;
        var body = new ThrowingBody { Finished = new int[1] };
        var ex = Assert.Throws<InvalidOperationException>(() => KernelParallelism.ForIndependent(2, ref body));
        Assert.That(body.Finished[0], Is.EqualTo(1), "the other chunk still ran");
        Assert.That(ex!.Message, Is.EqualTo("chunk 1 failed"));
        Assert.That(KernelParallelism.Chunks(1_000_000, 1_000), Is.EqualTo(2));
        var check = new NestedChunksBody { NestedChunks = new int[2] };
        KernelParallelism.For(2, ref check);
        Assert.That(check.NestedChunks, Is.All.EqualTo(2), "no thread may be left in the one-chunk mode");
    }
}

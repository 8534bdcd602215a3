using Recsys.Kernels.Common;

namespace Recsys.Tests.Support;

/// <summary>
/// <c>using (KernelThreads.Use(n)) { ... }</c>: sets <see cref="KernelParallelism.MaxThreads"/> for the scope and restores
/// the previous value after it, also when an assertion inside throws, so one test's thread count never leaks into the next.
/// </summary>
internal readonly struct KernelThreads : IDisposable
{
    private readonly int _saved;

    private KernelThreads(int threads)
    {
        _saved = KernelParallelism.MaxThreads;
        KernelParallelism.MaxThreads = threads;
    }

    public static KernelThreads Use(int threads) => new(threads);

    public void Dispose() => KernelParallelism.MaxThreads = _saved;
}

using NUnit.Framework;
using Recsys.Cli.Bench;

namespace Recsys.Tests.Cli;

[NonParallelizable] // BenchProtocol.Scale is process-wide
public class BenchProtocolTests
{
    private double _savedScale;

    [SetUp] public void SaveScale() => _savedScale = BenchProtocol.Scale;
    [TearDown] public void RestoreScale() => BenchProtocol.Scale = _savedScale;

    // The JIT's compiled-method count is replaced by a test counter: the real one also moves with whatever else the
    // process compiles in the background, which would make these timings depend on the rest of the test run.

    [Test]
    public void Measure_JitQuiet_WarmsUpForTheQuietPeriodThenTimes()
    {
        BenchProtocol.Scale = 0.1;
        int calls = 0;
        var s = BenchProtocol.Measure(() => { calls++; Thread.SpinWait(2000); }, () => 42);
        double quiet = BenchProtocol.JitQuietSeconds * BenchProtocol.Scale;
        Assert.That(s.WarmupSeconds, Is.GreaterThanOrEqualTo(Math.Max(0.5 * BenchProtocol.Scale, quiet)));
        Assert.That(s.WarmupSeconds, Is.LessThan(BenchProtocol.MaxJitWarmupSeconds * BenchProtocol.Scale), "a quiet JIT ends the warm-up before the cap");
        Assert.That(s.Iters, Is.GreaterThanOrEqualTo(3));
        Assert.That(calls, Is.EqualTo(s.WarmupIters + s.Iters));
        Assert.That(s.MinMs, Is.LessThanOrEqualTo(s.MedianMs).And.LessThanOrEqualTo(s.MaxMs));
    }

    [Test]
    public void Measure_JitCompilingUntilSomeStep_WarmsUpUntilQuietAfterIt()
    {
        BenchProtocol.Scale = 0.1;
        long compiled = 0;
        int calls = 0;
        // Time is counted inside the steps only, as the protocol counts its warm-up: a wall clock also counts the gaps
        // between steps, and a 10 ms pause there (JIT, GC, another test's threads on 2 cores) made this test fail.
        double inside = 0, lastCompile = 0;
        // Compiles on every step for the first 0.2 s of step time (twice the base warm-up), then stops.
        var s = BenchProtocol.Measure(() =>
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            calls++;
            Thread.SpinWait(2000);
            bool compiles = inside < 0.2;
            inside += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (compiles) { compiled++; lastCompile = inside; }
        }, () => compiled);
        double quiet = BenchProtocol.JitQuietSeconds * BenchProtocol.Scale;
        Assert.That(s.WarmupSeconds, Is.GreaterThanOrEqualTo(lastCompile + quiet), "timing starts only after a quiet period");
        Assert.That(s.WarmupSeconds, Is.LessThan(BenchProtocol.MaxJitWarmupSeconds * BenchProtocol.Scale));
    }

    [Test]
    public void Measure_JitNeverQuiet_StopsWarmingUpAtTheCap()
    {
        BenchProtocol.Scale = 0.05;
        long compiled = 0;
        var s = BenchProtocol.Measure(() => Thread.SpinWait(2000), () => ++compiled);
        double cap = BenchProtocol.MaxJitWarmupSeconds * BenchProtocol.Scale;
        Assert.That(s.WarmupSeconds, Is.GreaterThanOrEqualTo(cap));
        Assert.That(s.WarmupSeconds, Is.LessThan(cap + 0.2), "the warm-up stops at the first step past the cap");
    }
}

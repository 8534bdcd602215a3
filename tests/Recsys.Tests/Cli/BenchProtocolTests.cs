using System.Linq.Expressions;
using NUnit.Framework;
using Recsys.Cli.Bench;

namespace Recsys.Tests.Cli;

[NonParallelizable] // BenchProtocol.Scale is process-wide
public class BenchProtocolTests
{
    private double _savedScale;

    [SetUp] public void SaveScale() => _savedScale = BenchProtocol.Scale;
    [TearDown] public void RestoreScale() => BenchProtocol.Scale = _savedScale;

    [Test]
    public void Measure_StepThatCompilesNothing_WarmsUpForTheQuietPeriodThenTimes()
    {
        BenchProtocol.Scale = 0.1;
        int calls = 0;
        Action step = () => { calls++; Thread.SpinWait(2000); };
        step(); // compiled before measuring
        var s = BenchProtocol.Measure(step);
        double quiet = BenchProtocol.JitQuietSeconds * BenchProtocol.Scale;
        Assert.That(s.WarmupSeconds, Is.GreaterThanOrEqualTo(Math.Max(0.5 * BenchProtocol.Scale, quiet)));
        Assert.That(s.WarmupSeconds, Is.LessThan(BenchProtocol.MaxJitWarmupSeconds * BenchProtocol.Scale), "a quiet JIT ends the warm-up before the cap");
        Assert.That(s.Iters, Is.GreaterThanOrEqualTo(3));
        Assert.That(calls, Is.EqualTo(1 + s.WarmupIters + s.Iters));
        Assert.That(s.MinMs, Is.LessThanOrEqualTo(s.MedianMs).And.LessThanOrEqualTo(s.MaxMs));
    }

    [Test]
    public void Measure_StepThatKeepsCompiling_StopsWarmingUpAtTheCap()
    {
        BenchProtocol.Scale = 0.05;
        int i = 0;
        // Every call compiles a new method, so the JIT never goes quiet: the warm-up must end at its cap, not run on.
        Action step = () =>
        {
            var p = Expression.Parameter(typeof(int));
            Expression.Lambda<Func<int, int>>(Expression.Add(p, Expression.Constant(i++)), p).Compile()(1);
        };
        var s = BenchProtocol.Measure(step);
        double cap = BenchProtocol.MaxJitWarmupSeconds * BenchProtocol.Scale;
        Assert.That(s.WarmupSeconds, Is.GreaterThanOrEqualTo(cap));
        Assert.That(s.WarmupSeconds, Is.LessThan(cap + 0.5), "the warm-up stops at the first step past the cap");
    }
}

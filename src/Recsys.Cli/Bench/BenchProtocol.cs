using System.Diagnostics;

namespace Recsys.Cli.Bench;

/// <summary>Timing statistics of one measured workload variant (milliseconds).</summary>
public sealed record StepStats(double MedianMs, double MinMs, double MeanMs, double P10Ms, double P90Ms, double MaxMs, int Iters, int WarmupIters,
    double WarmupSeconds);

/// <summary>
/// The peer's measurement protocol, so numbers line up: warm-up of at least 3 steps and 0.5 s, then
/// n = clamp(ceil(2 s / last warm-up step), 10, 5000) timed steps, each bracketed by a Stopwatch;
/// the headline is the median. <see cref="Scale"/> shrinks the time budget for smoke runs.
/// <para>
/// One addition, because the engine is compiled at run time and the peer ahead of time: the warm-up also lasts until
/// the JIT has been quiet for <see cref="JitQuietSeconds"/> (no method compiled; at most <see cref="MaxJitWarmupSeconds"/>).
/// Without it the timed steps of a fresh process still ran partly in first-tier code while the background compiler
/// took one of the two cores (W2: 85-87 ms timed that way, against 80-82 ms once compilation is over).
/// </para>
/// </summary>
public static class BenchProtocol
{
    public static double Scale { get; set; } = 1.0;

    /// <summary>How long the warm-up must run without the JIT compiling anything before timing starts.</summary>
    public const double JitQuietSeconds = 0.5;

    /// <summary>Upper bound on the warm-up spent waiting for the JIT to go quiet.</summary>
    public const double MaxJitWarmupSeconds = 8.0;

    public static StepStats Measure(Action step) => Measure(step, static () => System.Runtime.JitInfo.GetCompiledMethodCount());

    /// <summary>As <see cref="Measure(Action)"/>, with the count of compiled methods read from <paramref name="compiledMethods"/>.</summary>
    internal static StepStats Measure(Action step, Func<long> compiledMethods)
    {
        var sw = new Stopwatch();
        int warm = 0;
        double last = 0, warmTotal = 0;
        long compiled = compiledMethods();
        double quiet = 0;
        while (warm < 3 || warmTotal < 0.5 * Scale || (quiet < JitQuietSeconds * Scale && warmTotal < MaxJitWarmupSeconds * Scale))
        {
            sw.Restart();
            step();
            last = sw.Elapsed.TotalSeconds;
            warmTotal += last;
            warm++;
            long now = compiledMethods();
            quiet = now == compiled ? quiet + last : 0;
            compiled = now;
            if (warm >= 1000 && quiet >= JitQuietSeconds * Scale) break;
        }
        int n = (int)Math.Clamp(Math.Ceiling(2.0 * Scale / Math.Max(last, 1e-7)), Scale < 1 ? 3 : 10, 5000);
        var times = new double[n];
        for (int i = 0; i < n; i++)
        {
            sw.Restart();
            step();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        double Pct(double q) => times[Math.Clamp((int)Math.Round(q * (n - 1)), 0, n - 1)];
        return new StepStats(MedianOfSorted(times), times[0], times.Average(), Pct(0.1), Pct(0.9), times[^1], n, warm, warmTotal);
    }

    /// <summary>The median (the mean of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0) throw new ArgumentException("Median of no values.", nameof(values));
        return MedianOfSorted(v);
    }

    private static double MedianOfSorted(double[] sorted)
    {
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    }
}

using System.Diagnostics;

namespace Recsys.Cli.Bench;

/// <summary>
/// Round-trip latency of a cache line bounced between this thread and a helper thread, in nanoseconds. A small-batch
/// training step hands data between the two cores dozens of times, so its speed follows this number: on the 2-vCPU
/// host the same binary has measured ~90–140 ns in some processes and ~360 ns in others (the host's placement of the
/// virtual CPUs), and W6 at batch 256 was ~35 % slower in the second kind. The bench records it next to the
/// workloads it affects so that a slow run can be told apart from a slow engine.
/// </summary>
public static class CoreToCoreProbe
{
    /// <summary>Median of <paramref name="windows"/> windows of 2,000 round trips each; NaN on a single-CPU machine
    /// (the two threads would take turns on one CPU) or when the helper thread never answers.</summary>
    public static double RoundTripNs(int windows = 9)
    {
        if (Environment.ProcessorCount < 2) return double.NaN;
        long flag = 0;
        bool stop = false;
        var helper = new Thread(() =>
        {
            long seen = 0;
            while (!Volatile.Read(ref stop))
            {
                long f = Volatile.Read(ref flag);
                if (f != seen && (f & 1) == 1) { seen = f + 1; Volatile.Write(ref flag, seen); }
            }
        }) { IsBackground = true, Name = "recsys-bench-probe" };
        helper.Start();
        try
        {
            var results = new double[windows];
            long k = 1;
            var sw = new Stopwatch();
            // The first window also waits for the helper to start; it is dropped by the median with the rest.
            for (int w = 0; w < windows; w++)
            {
                const int trips = 2000;
                sw.Restart();
                for (int i = 0; i < trips; i++, k += 2)
                {
                    Volatile.Write(ref flag, k);
                    var spin = Stopwatch.GetTimestamp();
                    while (Volatile.Read(ref flag) != k + 1)
                        if (Stopwatch.GetElapsedTime(spin).TotalSeconds > 1) return double.NaN; // helper never ran
                }
                results[w] = sw.Elapsed.TotalNanoseconds / trips;
            }
            Array.Sort(results);
            return results[windows / 2];
        }
        finally
        {
            Volatile.Write(ref stop, true);
            helper.Join();
        }
    }
}

using NUnit.Framework;
using Recsys.Cli.Bench;

namespace Recsys.Tests.Cli;

public class CoreToCoreProbeTests
{
    [Test]
    public void RoundTrip_OnTwoOrMoreCpus_IsAPlausibleLatency()
    {
        double ns = CoreToCoreProbe.RoundTripNs(windows: 3);
        if (Environment.ProcessorCount < 2)
        {
            Assert.That(double.IsNaN(ns), "a single-CPU machine reports NaN instead of timing two threads taking turns");
            return;
        }
        // A cache-line round trip between two running threads: tens of ns to a few µs, never 0 or a scheduler slice.
        Assert.That(ns, Is.GreaterThan(5).And.LessThan(100_000));
    }
}

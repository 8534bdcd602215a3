using NUnit.Framework;
using Recsys.Engine.Data;

namespace Recsys.Tests.Engine.Data;

public class SyntheticClickModelTests
{
    private static readonly SyntheticOptions Small = new() { Rows = 20_000, Seed = 7 };

    [Test]
    public void Generate_SameSeed_IdenticalData()
    {
        var a = SyntheticClickModel.Generate(Small);
        var b = SyntheticClickModel.Generate(Small);
        Assert.That(b.Data.Ids, Is.EqualTo(a.Data.Ids));
        Assert.That(b.Data.Dense, Is.EqualTo(a.Data.Dense));
        Assert.That(b.Data.Labels, Is.EqualTo(a.Data.Labels));
        Assert.That(b.TrueProbabilities, Is.EqualTo(a.TrueProbabilities));
        var c = SyntheticClickModel.Generate(Small with { Seed = 8 });
        Assert.That(c.Data.Labels, Is.Not.EqualTo(a.Data.Labels));
    }

    [Test]
    public void Generate_Default_ShapesBaseRateAndPlantedAucInRange()
    {
        var m = SyntheticClickModel.Generate(Small);
        var ds = m.Data;
        Assert.That((ds.DenseFeatures, ds.SparseFeatures, ds.Count), Is.EqualTo((13, 26, 20_000)));
        Assert.That(ds.TableRows, Is.EqualTo(SyntheticOptions.DefaultCardinalities));
        Assert.That(ds.PositiveRate, Is.InRange(0.15, 0.35));
        Assert.That(ds.Dense.All(x => x >= 0 && float.IsFinite(x)), Is.True);
        Assert.That(m.ExpectedAuc, Is.EqualTo(0.78).Within(0.01));
        var (_, test) = ds.SplitTrainTest();
        Assert.That(m.PlantedAuc(test), Is.InRange(0.73, 0.83));
        TestContext.Out.WriteLine($"rate {ds.PositiveRate:F4} expected AUC {m.ExpectedAuc:F4} planted test AUC {m.PlantedAuc(test):F4} bias {m.Bias:F3} scale {m.Scale:F3}");
    }

    [Test]
    public void Generate_ZipfPopularity_FewIdsDominate()
    {
        var ds = SyntheticClickModel.Generate(Small).Data;
        // Field 2 has 100,000 rows; with 20,000 draws at s = 1.05 the 10 most frequent ids take a large share.
        var counts = Enumerable.Range(0, ds.Count).Select(r => ds.Ids[r * 26 + 2]).GroupBy(x => x).Select(g => g.Count()).OrderByDescending(c => c).ToArray();
        Assert.That(counts.Take(10).Sum(), Is.GreaterThan(ds.Count / 5));
    }

    [Test]
    public void Generate_BadOptions_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticClickModel.Generate(Small with { Rows = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticClickModel.Generate(Small with { BaseRate = 1.5 }));
        Assert.Throws<ArgumentException>(() => SyntheticClickModel.Generate(Small with { Cardinalities = new[] { 5, 0 } }));
    }
}

public class SyntheticClickModelDefaultTests
{
    /// <summary>The full default (200k rows): prints the numbers the training smoke test relies on. Explicit: a few seconds.</summary>
    [Test, Explicit("full-size default; run by name")]
    public void Generate_FullDefault_ReportsStats()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var m = SyntheticClickModel.Generate();
        var (_, test) = m.Data.SplitTrainTest();
        TestContext.Out.WriteLine($"rows {m.Data.Count} in {sw.Elapsed.TotalSeconds:F2} s; rate {m.Data.PositiveRate:F4}; expected AUC {m.ExpectedAuc:F4}; planted test AUC {m.PlantedAuc(test):F4}; all-rows planted AUC {m.PlantedAuc(m.Data.All):F4}");
        Assert.That(m.Data.PositiveRate, Is.InRange(0.15, 0.35));
    }
}

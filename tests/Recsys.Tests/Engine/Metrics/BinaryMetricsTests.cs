using System.Text.Json.Nodes;
using NUnit.Framework;
using Recsys.Engine.Metrics;

namespace Recsys.Tests.Engine.Metrics;

public class BinaryMetricsTests
{
    /// <summary>O(N²) definition: P(score_pos &gt; score_neg) + ½ P(tie).</summary>
    private static double BruteAuc(float[] s, float[] y)
    {
        double num = 0; long pairs = 0;
        for (int i = 0; i < s.Length; i++)
            for (int j = 0; j < s.Length; j++)
                if (y[i] == 1 && y[j] == 0)
                {
                    pairs++;
                    num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
                }
        return num / pairs;
    }

    [Test]
    public void Auc_HandComputed_WithTies()
    {
        // Positives at 0.8, 0.4; negatives at 0.4, 0.1. Pairs: (0.8>0.4)=1, (0.8>0.1)=1, (0.4=0.4)=½, (0.4>0.1)=1 -> 3.5/4.
        Assert.That(BinaryMetrics.Auc(new[] { 0.8f, 0.4f, 0.4f, 0.1f }, new[] { 1f, 1f, 0f, 0f }), Is.EqualTo(0.875).Within(1e-15));
        Assert.That(BinaryMetrics.Auc(new[] { 1f, 2f }, new[] { 1f, 0f }), Is.EqualTo(0.0));
        Assert.That(BinaryMetrics.Auc(new[] { 5f, 5f, 5f }, new[] { 1f, 0f, 1f }), Is.EqualTo(0.5));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Auc_RandomWithManyTies_MatchesBruteForce(int seed)
    {
        var r = new Random(seed);
        int n = 500;
        var s = new float[n];
        var y = new float[n];
        for (int i = 0; i < n; i++)
        {
            s[i] = r.Next(20) / 4f;                       // ~25 rows per tie group
            y[i] = r.NextDouble() < 0.2 + s[i] / 10 ? 1 : 0;
        }
        Assert.That(BinaryMetrics.Auc(s, y), Is.EqualTo(BruteAuc(s, y)).Within(1e-12));
    }

    [Test]
    public void Auc_OneClass_IsNaN()
    {
        Assert.That(BinaryMetrics.Auc(new[] { 0.1f, 0.2f }, new[] { 1f, 1f }), Is.NaN);
        Assert.That(BinaryMetrics.Auc(ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty), Is.NaN);
    }

    [Test]
    public void Auc_LengthMismatch_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => BinaryMetrics.Auc(new[] { 0.1f, 0.2f }, new[] { 1f }));
        Assert.That(ex!.Message, Does.Contain("2 scores").And.Contain("1 labels"));
    }

    [Test]
    public void Auc_NaNScore_ThrowsNamingIndex()
    {
        var ex = Assert.Throws<ArgumentException>(() => BinaryMetrics.Auc(new[] { 0.1f, float.NaN }, new[] { 1f, 0f }));
        Assert.That(ex!.Message, Does.Contain("score 1 is NaN"));
    }

    [Test]
    public void Auc_NonBinaryLabel_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => BinaryMetrics.Auc(new[] { 0.1f, 0.2f }, new[] { 1f, 0.5f }));
        Assert.That(ex!.Message, Does.Contain("label 1 is 0.5").And.Contain("0 or 1"));
    }

    [Test]
    public void LogLoss_LabelOutsideUnitInterval_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => BinaryMetrics.LogLossFromLogits(new[] { 0.1f }, new[] { 2f }));
        Assert.That(ex!.Message, Does.Contain("label 0 is 2").And.Contain("[0, 1]"));
        Assert.Throws<ArgumentException>(() => BinaryMetrics.LogLoss(new[] { 1.5f }, new[] { 1f }));
    }

    [Test]
    public void LogLoss_HandComputed_LogitsAndProbabilitiesAgree()
    {
        // logit 0 -> p 0.5 -> ln 2 for either label; logit ln 3 -> p 0.75, label 1 -> -ln 0.75.
        var z = new[] { 0f, (float)Math.Log(3) };
        var y = new[] { 0f, 1f };
        double expected = (Math.Log(2) - Math.Log(0.75)) / 2;
        Assert.That(BinaryMetrics.LogLossFromLogits(z, y), Is.EqualTo(expected).Within(1e-7));
        Assert.That(BinaryMetrics.LogLoss(new[] { 0.5f, 0.75f }, y), Is.EqualTo(expected).Within(1e-7));
    }

    [Test]
    public void LogLoss_ExtremeValues_StayFinite()
    {
        Assert.That(BinaryMetrics.LogLossFromLogits(new[] { 1000f, -1000f }, new[] { 1f, 0f }), Is.EqualTo(0).Within(1e-12));
        Assert.That(BinaryMetrics.LogLossFromLogits(new[] { -100f }, new[] { 1f }), Is.EqualTo(100).Within(1e-9));
        // p = 0 for a positive is clamped to 1e-7: loss -ln(1e-7).
        Assert.That(BinaryMetrics.LogLoss(new[] { 0f }, new[] { 1f }), Is.EqualTo(-Math.Log(1e-7)).Within(1e-9));
    }

    [Test]
    public void NormalizedEntropy_ConstantPredictorAtBaseRate_IsOne()
    {
        var y = new[] { 1f, 0f, 0f, 0f };
        var p = new[] { 0.25f, 0.25f, 0.25f, 0.25f };
        var r = EvaluationResult.FromProbabilities(p, y);
        Assert.That(r.BaseRate, Is.EqualTo(0.25));
        Assert.That(r.NormalizedEntropy, Is.EqualTo(1.0).Within(1e-7));
        Assert.That(r.Calibration, Is.EqualTo(1.0).Within(1e-7));
        Assert.That(r.Auc, Is.EqualTo(0.5));
        Assert.That(BinaryMetrics.NormalizedEntropy(0.3, 0.0), Is.NaN);
    }

    [Test]
    public void Calibration_OverPredicting_AboveOne()
    {
        var r = EvaluationResult.FromProbabilities(new[] { 0.5f, 0.5f }, new[] { 1f, 0f });
        Assert.That(r.Calibration, Is.EqualTo(1.0));
        r = EvaluationResult.FromProbabilities(new[] { 0.8f, 0.4f }, new[] { 1f, 0f });
        Assert.That(r.Calibration, Is.EqualTo(1.2).Within(1e-6));
        Assert.That(BinaryMetrics.Calibration(0.3, 0), Is.NaN);
    }

    [Test]
    public void AucStdErr_HanleyMcNeil_HandComputed()
    {
        // A = 0.8, P = 10, N = 20: Q1 = 0.8/1.2, Q2 = 1.28/1.8.
        double a = 0.8, q1 = a / (2 - a), q2 = 2 * a * a / (1 + a);
        double v = (a * (1 - a) + 9 * (q1 - a * a) + 19 * (q2 - a * a)) / 200;
        Assert.That(BinaryMetrics.AucStdErr(0.8, 10, 20), Is.EqualTo(Math.Sqrt(v)).Within(1e-15));
        Assert.That(BinaryMetrics.AucStdErr(0.8, 0, 20), Is.NaN);
    }

    [Test]
    public void FromLogits_MatchesFromProbabilities()
    {
        var z = new[] { -2f, 0.5f, 1f, -0.3f, 3f };
        var y = new[] { 0f, 1f, 1f, 0f, 1f };
        var p = z.Select(v => (float)(1 / (1 + Math.Exp(-v)))).ToArray();
        var a = EvaluationResult.FromLogits(z, y);
        var b = EvaluationResult.FromProbabilities(p, y);
        Assert.That(a.Auc, Is.EqualTo(b.Auc));
        Assert.That(a.LogLoss, Is.EqualTo(b.LogLoss).Within(1e-6));
        Assert.That(a.MeanPrediction, Is.EqualTo(b.MeanPrediction).Within(1e-6));
        Assert.That(a.Positives, Is.EqualTo(3));
    }

    [Test]
    public void MeanStd_SampleStd_AndSummary()
    {
        var m = MeanStd.Of(new[] { 1.0, 2.0, 3.0, 4.0 });
        Assert.That(m.Mean, Is.EqualTo(2.5));
        Assert.That(m.Std, Is.EqualTo(Math.Sqrt(5.0 / 3)).Within(1e-15));
        Assert.That(MeanStd.Of(new[] { 7.0 }).Std, Is.EqualTo(0));
        Assert.That(MeanStd.Of(Array.Empty<double>()).Mean, Is.NaN);
        var r1 = EvaluationResult.FromProbabilities(new[] { 0.9f, 0.1f }, new[] { 1f, 0f });
        var r2 = EvaluationResult.FromProbabilities(new[] { 0.1f, 0.9f }, new[] { 1f, 0f });
        var s = EvaluationSummary.Of(new[] { r1, r2 });
        Assert.That(s.Auc.Mean, Is.EqualTo(0.5));
        Assert.That(s.Auc.Std, Is.EqualTo(Math.Sqrt(0.5)).Within(1e-15));
        Assert.That(s.Runs, Is.EqualTo(2));
    }

    [Test]
    public void JsonLinesWriter_AppendsOneFlushedObjectPerLine_NaNAsString()
    {
        var path = Path.Combine(Path.GetTempPath(), $"recsys-jsonl-{Guid.NewGuid():N}.jsonl");
        try
        {
            using (var w = new JsonLinesWriter(path))
            {
                w.Write(new { step = 1, loss = 0.5 });
                // Readable while the writer is still open: every line is flushed.
                using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
                    Assert.That(new StreamReader(fs).ReadToEnd(), Is.EqualTo("{\"step\":1,\"loss\":0.5}\n"));
                w.Write(EvaluationResult.FromProbabilities(new[] { 0.5f }, new[] { 1f }));
            }
            using (var w = new JsonLinesWriter(path)) w.Write(new JsonObject { ["step"] = 2 });
            var lines = File.ReadAllLines(path);
            Assert.That(lines, Has.Length.EqualTo(3));
            Assert.That(JsonNode.Parse(lines[1])!["Auc"]!.GetValue<string>(), Is.EqualTo("NaN"));
            Assert.That(JsonNode.Parse(lines[2])!["step"]!.GetValue<int>(), Is.EqualTo(2));
            Assert.Throws<ArgumentException>(() => { using var w = new JsonLinesWriter(path); w.Write(42); });
        }
        finally { File.Delete(path); }
    }
}

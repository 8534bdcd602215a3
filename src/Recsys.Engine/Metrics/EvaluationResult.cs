namespace Recsys.Engine.Metrics;

/// <summary>
/// Metrics of one evaluation of a click model on a labelled set. NE and calibration use the base
/// rate of THIS set (its mean label); see <see cref="BinaryMetrics.NormalizedEntropy"/>.
/// </summary>
public sealed record EvaluationResult(
    int Count,
    long Positives,
    double BaseRate,
    double MeanPrediction,
    double Auc,
    double AucStdErr,
    double LogLoss,
    double NormalizedEntropy,
    double Calibration)
{
    /// <summary>Evaluates logits [N] against 0/1 labels [N]; log loss from logits, probabilities = sigmoid(logit).</summary>
    public static EvaluationResult FromLogits(ReadOnlySpan<float> logits, ReadOnlySpan<float> labels)
    {
        double ll = BinaryMetrics.LogLossFromLogits(logits, labels);
        double meanP = 0;
        for (int i = 0; i < logits.Length; i++) meanP += 1.0 / (1.0 + Math.Exp(-(double)logits[i]));
        return Build(logits, labels, ll, meanP);
    }

    /// <summary>Evaluates probabilities [N] in [0, 1] against 0/1 labels [N].</summary>
    public static EvaluationResult FromProbabilities(ReadOnlySpan<float> probabilities, ReadOnlySpan<float> labels)
    {
        double ll = BinaryMetrics.LogLoss(probabilities, labels);
        double meanP = 0;
        for (int i = 0; i < probabilities.Length; i++) meanP += probabilities[i];
        return Build(probabilities, labels, ll, meanP);
    }

    private static EvaluationResult Build(ReadOnlySpan<float> scores, ReadOnlySpan<float> labels, double logLoss, double sumP)
    {
        double auc = BinaryMetrics.Auc(scores, labels);
        long pos = 0;
        foreach (float y in labels) if (y == 1f) pos++;
        int n = labels.Length;
        double rate = n == 0 ? double.NaN : (double)pos / n;
        double meanP = n == 0 ? double.NaN : sumP / n;
        return new EvaluationResult(n, pos, rate, meanP, auc, BinaryMetrics.AucStdErr(auc, pos, n - pos), logLoss,
            BinaryMetrics.NormalizedEntropy(logLoss, rate), BinaryMetrics.Calibration(meanP, rate));
    }
}

/// <summary>Mean and sample standard deviation (n - 1) of one metric over runs (folds or seeds).</summary>
public readonly record struct MeanStd(double Mean, double Std, int Count)
{
    /// <summary>Std is 0 for a single value; Mean and Std are NaN for none (or if any value is NaN).</summary>
    public static MeanStd Of(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var a = values.ToArray();
        if (a.Length == 0) return new MeanStd(double.NaN, double.NaN, 0);
        double m = a.Average();
        double sd = a.Length > 1 ? Math.Sqrt(a.Sum(x => (x - m) * (x - m)) / (a.Length - 1)) : 0;
        return new MeanStd(m, sd, a.Length);
    }

    public override string ToString() => $"{Mean:F5} ± {Std:F5} (n={Count})";
}

/// <summary>Per-metric mean ± sample s.d. over several <see cref="EvaluationResult"/>s (folds or seeds).</summary>
public sealed record EvaluationSummary(MeanStd Auc, MeanStd AucStdErr, MeanStd LogLoss, MeanStd NormalizedEntropy, MeanStd Calibration, int Runs)
{
    public static EvaluationSummary Of(IEnumerable<EvaluationResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var r = results.ToArray();
        return new EvaluationSummary(
            MeanStd.Of(r.Select(x => x.Auc)), MeanStd.Of(r.Select(x => x.AucStdErr)), MeanStd.Of(r.Select(x => x.LogLoss)),
            MeanStd.Of(r.Select(x => x.NormalizedEntropy)), MeanStd.Of(r.Select(x => x.Calibration)), r.Length);
    }
}

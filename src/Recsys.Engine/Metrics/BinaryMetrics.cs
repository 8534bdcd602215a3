namespace Recsys.Engine.Metrics;

/// <summary>
/// Metrics of binary click prediction, all accumulated in float64. Inputs are validated: lengths must
/// match, scores must not be NaN, labels must lie in [0, 1] (AUC needs exactly 0 or 1). Undefined
/// values (AUC with one class, NE or calibration with no positives) are NaN, as documented per method.
/// </summary>
public static class BinaryMetrics
{
    /// <summary>Probabilities are clamped to [ProbabilityEpsilon, 1 - ProbabilityEpsilon] in log loss from probabilities (a float32 sigmoid can round to exactly 0 or 1).</summary>
    public const double ProbabilityEpsilon = 1e-7;

    /// <summary>
    /// Exact ROC AUC = Mann-Whitney U / (P·N), ties averaged (a tied positive/negative pair counts ½).
    /// O(n log n): sort by score, average ranks over tie groups. Any monotone score works (logits or
    /// probabilities give the same AUC). NaN when the labels hold only one class.
    /// </summary>
    public static double Auc(ReadOnlySpan<float> scores, ReadOnlySpan<float> labels)
    {
        Check(scores, labels, binary: true, nameof(Auc));
        int n = scores.Length;
        var s = scores.ToArray();
        var idx = new int[n];
        for (int i = 0; i < n; i++) idx[i] = i;
        Array.Sort(s, idx);
        double rankSumPos = 0;
        long nPos = 0;
        for (int a = 0; a < n;)
        {
            int b = a;
            while (b + 1 < n && s[b + 1] == s[a]) b++;
            double avgRank = (a + b) / 2.0 + 1.0;   // 1-based mean rank of the tie group
            for (int k = a; k <= b; k++) if (labels[idx[k]] == 1f) { rankSumPos += avgRank; nPos++; }
            a = b + 1;
        }
        long nNeg = n - nPos;
        if (nPos == 0 || nNeg == 0) return double.NaN;
        return (rankSumPos - nPos * (nPos + 1) / 2.0) / ((double)nPos * nNeg);
    }

    /// <summary>
    /// Hanley &amp; McNeil (1982) standard error of an AUC from nPos positives and nNeg negatives
    /// (test-set sampling noise only). NaN when either count is 0 or the AUC is NaN.
    /// </summary>
    public static double AucStdErr(double auc, long nPos, long nNeg)
    {
        if (nPos <= 0 || nNeg <= 0 || double.IsNaN(auc)) return double.NaN;
        double q1 = auc / (2 - auc), q2 = 2 * auc * auc / (1 + auc);
        double v = (auc * (1 - auc) + (nPos - 1) * (q1 - auc * auc) + (nNeg - 1) * (q2 - auc * auc)) / ((double)nPos * nNeg);
        return Math.Sqrt(Math.Max(0, v));
    }

    /// <summary>
    /// Mean binary cross-entropy from logits z, float64, in the stable form
    /// max(z, 0) - z·y + log(1 + exp(-|z|)) (no clamping needed). Soft labels in [0, 1] allowed.
    /// NaN for an empty input.
    /// </summary>
    public static double LogLossFromLogits(ReadOnlySpan<float> logits, ReadOnlySpan<float> labels)
    {
        Check(logits, labels, binary: false, nameof(LogLossFromLogits));
        if (logits.Length == 0) return double.NaN;
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double z = logits[i], y = labels[i];
            sum += Math.Max(z, 0) - z * y + Math.Log(1 + Math.Exp(-Math.Abs(z)));
        }
        return sum / logits.Length;
    }

    /// <summary>
    /// Mean binary cross-entropy from probabilities p, float64, p clamped to
    /// [<see cref="ProbabilityEpsilon"/>, 1 - ProbabilityEpsilon]. Probabilities must be in [0, 1].
    /// NaN for an empty input.
    /// </summary>
    public static double LogLoss(ReadOnlySpan<float> probabilities, ReadOnlySpan<float> labels)
    {
        Check(probabilities, labels, binary: false, nameof(LogLoss));
        CheckProbabilities(probabilities, nameof(LogLoss));
        if (probabilities.Length == 0) return double.NaN;
        double sum = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            double p = Math.Clamp((double)probabilities[i], ProbabilityEpsilon, 1 - ProbabilityEpsilon), y = labels[i];
            sum -= y * Math.Log(p) + (1 - y) * Math.Log(1 - p);
        }
        return sum / probabilities.Length;
    }

    /// <summary>Entropy (nats) of a Bernoulli(p): the log loss of always predicting the base rate p. 0 at p = 0 or 1.</summary>
    public static double BernoulliEntropy(double p)
    {
        if (p <= 0 || p >= 1) return 0;
        return -(p * Math.Log(p) + (1 - p) * Math.Log(1 - p));
    }

    /// <summary>
    /// Normalized entropy NE = logLoss / H(baseRate) (He et al. 2014, "Practical lessons from predicting
    /// clicks on ads at Facebook"). Here the base rate is the mean label OF THE EVALUATED SET (so NE of
    /// the constant predictor at that rate is exactly 1); callers that want the training base rate pass
    /// it explicitly. NaN when the base rate is 0 or 1 (the entropy is 0).
    /// </summary>
    public static double NormalizedEntropy(double logLoss, double baseRate)
    {
        double h = BernoulliEntropy(baseRate);
        return h > 0 ? logLoss / h : double.NaN;
    }

    /// <summary>Calibration = mean predicted probability / mean label (1 is perfect). NaN when the mean label is 0.</summary>
    public static double Calibration(double meanPrediction, double meanLabel) =>
        meanLabel > 0 ? meanPrediction / meanLabel : double.NaN;

    private static void Check(ReadOnlySpan<float> scores, ReadOnlySpan<float> labels, bool binary, string what)
    {
        if (scores.Length != labels.Length)
            throw new ArgumentException($"{what}: {scores.Length} scores but {labels.Length} labels; lengths must match.");
        for (int i = 0; i < scores.Length; i++)
        {
            if (float.IsNaN(scores[i]))
                throw new ArgumentException($"{what}: score {i} is NaN (the model diverged or the output was never written).");
            float y = labels[i];
            if (binary ? !(y == 0f || y == 1f) : !(y >= 0f && y <= 1f))
                throw new ArgumentException($"{what}: label {i} is {y}; expected {(binary ? "0 or 1" : "a value in [0, 1]")}.");
        }
    }

    private static void CheckProbabilities(ReadOnlySpan<float> p, string what)
    {
        for (int i = 0; i < p.Length; i++)
            if (!(p[i] >= 0f && p[i] <= 1f))
                throw new ArgumentException($"{what}: probability {i} is {p[i]}; expected a value in [0, 1] (pass logits to LogLossFromLogits).");
    }
}

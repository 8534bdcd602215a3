using System.Numerics.Tensors;
using Recsys.Kernels.Common;

namespace Recsys.Kernels.Loss;

/// <summary>
/// Losses and normalisers: binary cross-entropy on logits (soft targets, label masks, sample weights)
/// and row-wise softmax / log-sum-exp with a temperature. Reductions accumulate in float64.
/// </summary>
public static class LossKernels
{
    /// <summary>
    /// Mean binary cross-entropy on logits z with targets y ∈ [0, 1]:
    /// L = Σ_i m_i·w_i·ℓ_i / Σ_i m_i, with ℓ = max(z, 0) − z·y + log(1 + exp(−|z|)) (never overflows).
    /// <paramref name="mask"/> (0/1 per sample) and <paramref name="weights"/> may be empty (all ones).
    /// Returns 0 when every sample is masked out.
    /// </summary>
    public static float BceWithLogitsForward(ReadOnlySpan<float> logits, ReadOnlySpan<float> targets,
        ReadOnlySpan<float> mask, ReadOnlySpan<float> weights)
    {
        CheckBce(logits, targets, mask, weights, nameof(BceWithLogitsForward));
        double sum = 0, count = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double m = mask.IsEmpty ? 1.0 : mask[i];
            if (m == 0) continue;
            double w = weights.IsEmpty ? 1.0 : weights[i];
            double z = logits[i], y = targets[i];
            double l = Math.Max(z, 0) - z * y + Math.Log(1 + Math.Exp(-Math.Abs(z)));
            sum += m * w * l;
            count += m;
        }
        return count == 0 ? 0f : (float)(sum / count);
    }

    /// <summary>
    /// dLogits[i] += dLoss·m_i·w_i·(σ(z_i) − y_i) / Σ_j m_j, the gradient of <see cref="BceWithLogitsForward"/>.
    /// </summary>
    public static void BceWithLogitsBackward(ReadOnlySpan<float> logits, ReadOnlySpan<float> targets,
        ReadOnlySpan<float> mask, ReadOnlySpan<float> weights, float dLoss, Span<float> dLogits)
    {
        CheckBce(logits, targets, mask, weights, nameof(BceWithLogitsBackward));
        KernelGuard.AtLeast(dLogits, logits.Length, nameof(dLogits), nameof(BceWithLogitsBackward));
        double count = 0;
        if (mask.IsEmpty) count = logits.Length;
        else for (int i = 0; i < mask.Length; i++) count += mask[i];
        if (count == 0) return;
        float scale = (float)(dLoss / count);
        for (int i = 0; i < logits.Length; i++)
        {
            float m = mask.IsEmpty ? 1f : mask[i];
            if (m == 0f) continue;
            float w = weights.IsEmpty ? 1f : weights[i];
            float z = logits[i];
            // σ(z) in the form that cannot overflow for either sign.
            float s = z >= 0 ? 1f / (1f + MathF.Exp(-z)) : MathF.Exp(z) / (1f + MathF.Exp(z));
            dLogits[i] += scale * m * w * (s - targets[i]);
        }
    }

    private static void CheckBce(ReadOnlySpan<float> logits, ReadOnlySpan<float> targets, ReadOnlySpan<float> mask, ReadOnlySpan<float> weights, string op)
    {
        if (targets.Length != logits.Length)
            throw new ArgumentException($"{op}: 'targets' must have {logits.Length} elements (one per logit), got {targets.Length}.", nameof(targets));
        if (!mask.IsEmpty && mask.Length != logits.Length)
            throw new ArgumentException($"{op}: 'mask' must be empty or have {logits.Length} elements, got {mask.Length}.", nameof(mask));
        if (!weights.IsEmpty && weights.Length != logits.Length)
            throw new ArgumentException($"{op}: 'weights' must be empty or have {logits.Length} elements, got {weights.Length}.", nameof(weights));
    }

    /// <summary>
    /// Row-wise softmax of x/T over [rows, cols]: y[r, :] = exp((x − max)/T) / Σ exp((x − max)/T).
    /// Subtracting the row max first keeps every exponent ≤ 0.
    /// </summary>
    public static void SoftmaxForward(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, float temperature = 1f)
    {
        CheckRows(x.Length, y.Length, rows, cols, nameof(SoftmaxForward));
        CheckTemperature(temperature, nameof(SoftmaxForward));
        if (cols == 0) return;
        float invT = 1f / temperature;
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * cols, cols);
            var yr = y.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(xr);
            TensorPrimitives.Subtract(xr, max, yr);
            TensorPrimitives.Multiply(yr, invT, yr);
            TensorPrimitives.Exp(yr, yr);
            float sum = TensorPrimitives.Sum(yr);
            TensorPrimitives.Multiply(yr, 1f / sum, yr);
        }
    }

    /// <summary>
    /// dX[r, :] += Y ⊙ (dY − Σ_j dY_j·Y_j) / T, the gradient of <see cref="SoftmaxForward"/> from its saved output.
    /// </summary>
    public static void SoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dOutput, Span<float> dInput, int rows, int cols, float temperature = 1f)
    {
        CheckRows(y.Length, dOutput.Length, rows, cols, nameof(SoftmaxBackward));
        KernelGuard.AtLeast(dInput, (long)rows * cols, nameof(dInput), nameof(SoftmaxBackward));
        CheckTemperature(temperature, nameof(SoftmaxBackward));
        float invT = 1f / temperature;
        for (int r = 0; r < rows; r++)
        {
            var yr = y.Slice(r * cols, cols);
            var dyr = dOutput.Slice(r * cols, cols);
            var dxr = dInput.Slice(r * cols, cols);
            float dot = TensorPrimitives.Dot(yr, dyr);
            for (int j = 0; j < cols; j++) dxr[j] += yr[j] * (dyr[j] - dot) * invT;
        }
    }

    /// <summary>lse[r] = log Σ_j exp(x[r, j]) = max + log Σ exp(x − max), never overflowing.</summary>
    public static void LogSumExp(ReadOnlySpan<float> x, Span<float> lse, int rows, int cols)
    {
        KernelGuard.NonNegative(rows, nameof(rows), nameof(LogSumExp));
        KernelGuard.NonNegative(cols, nameof(cols), nameof(LogSumExp));
        KernelGuard.AtLeast(x, (long)rows * cols, nameof(x), nameof(LogSumExp));
        KernelGuard.AtLeast(lse, rows, nameof(lse), nameof(LogSumExp));
        for (int r = 0; r < rows; r++)
        {
            if (cols == 0) { lse[r] = float.NegativeInfinity; continue; }
            var xr = x.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(xr);
            if (float.IsNegativeInfinity(max)) { lse[r] = max; continue; }
            double s = 0;
            for (int j = 0; j < cols; j++) s += Math.Exp(xr[j] - max);
            lse[r] = (float)(max + Math.Log(s));
        }
    }

    private static void CheckRows(int aLen, int bLen, int rows, int cols, string op)
    {
        KernelGuard.NonNegative(rows, nameof(rows), op);
        KernelGuard.NonNegative(cols, nameof(cols), op);
        long need = (long)rows * cols;
        if (aLen < need || bLen < need)
            throw new ArgumentException($"{op}: [rows={rows}, cols={cols}] needs {need} elements per buffer, got {aLen} and {bLen}.");
    }

    private static void CheckTemperature(float temperature, string op)
    {
        if (!(temperature > 0f) || float.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, $"{op}: temperature must be a positive finite number, got {temperature}.");
    }
}

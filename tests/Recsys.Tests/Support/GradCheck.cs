using Recsys.Engine.Core;

namespace Recsys.Tests.Support;

/// <summary>
/// Checks an op's backward against central finite differences. The op's output y is projected on a
/// fixed random vector r, L = Σ rᵢ·yᵢ, accumulated in float64; backward is seeded with r. Each
/// checked input element is perturbed by ±eps (relative to its magnitude) and
/// (L(x+h) − L(x−h)) / 2h is compared with the analytic gradient. Forward runs in float32, so eps
/// is large enough that float32 rounding stays well below the tolerance.
/// </summary>
public static class GradCheck
{
    /// <param name="forward">Builds the output from the inputs on the given tape.</param>
    /// <param name="inputs">Tensors to check (RequiresGrad = true; may be parameter values).</param>
    /// <param name="maxPerInput">At most this many elements per input are checked (spread evenly).</param>
    public static void Check(Func<Tape, Tensor> forward, IReadOnlyList<Tensor> inputs,
        double eps = 1e-2, double rtol = 2e-2, double atol = 2e-3, int maxPerInput = 48, int seed = 1234, string what = "op")
    {
        foreach (var x in inputs)
        {
            if (!x.RequiresGrad) throw new ArgumentException($"GradCheck: input {x} must require grad.");
            if (x.Owner is { } p) p.ZeroGrad(); else x.Grad = null;
        }

        // Analytic gradients.
        var tape = new Tape();
        var y = forward(tape);
        var r = TestData.Floats(y.Length, seed, 0.1f, 1f);
        tape.Backward(y, new Tensor(y.Shape, r));
        var analytic = new List<float[]>();
        foreach (var x in inputs)
            analytic.Add(x.Grad?.ToArray() ?? new float[x.Length]);
        tape.Reset();
        foreach (var x in inputs)
            if (x.Owner is null) x.Grad = null;

        // Numeric gradients.
        var probe = new Tape { RecordingEnabled = false };
        double Loss()
        {
            var yy = forward(probe);
            var s = yy.ReadOnlySpan;
            double acc = 0;
            for (int i = 0; i < s.Length; i++) acc += (double)r[i] * s[i];
            probe.Reset();
            return acc;
        }

        for (int xi = 0; xi < inputs.Count; xi++)
        {
            var x = inputs[xi];
            var span = x.Span;
            int n = x.Length;
            int step = Math.Max(1, n / maxPerInput);
            for (int i = 0; i < n; i += step)
            {
                float orig = span[i];
                float h = (float)(eps * Math.Max(1.0, Math.Abs(orig)));
                span[i] = orig + h;
                double lp = Loss();
                span[i] = orig - h;
                double lm = Loss();
                span[i] = orig;
                double hh = ((double)(orig + h) - (orig - h));
                double numeric = (lp - lm) / hh;
                double a = analytic[xi][i];
                double diff = Math.Abs(a - numeric);
                if (!(diff <= atol + rtol * Math.Max(Math.Abs(numeric), Math.Abs(a))))
                    throw new NUnit.Framework.AssertionException(
                        $"GradCheck {what}: input #{xi} {x.Shape} element {i}: analytic {a:E5}, numeric {numeric:E5} (|diff| {diff:E3})");
            }
        }
    }
}

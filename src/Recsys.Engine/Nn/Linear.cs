using Recsys.Engine.Operations;
using Recsys.Engine.Core;
using Recsys.Kernels.Common;

namespace Recsys.Engine.Nn;

/// <summary>
/// Fully connected layer y [B, out] = act(x [B, in]·Wᵀ + b) with W [out, in] and b [out].
/// Initialised as the DLRM reference does: W ~ N(0, √(2/(in+out))), b ~ N(0, √(1/out)).
/// </summary>
public sealed class Linear : Module
{
    public string Name { get; }
    public int InFeatures { get; }
    public int OutFeatures { get; }

    /// <summary><c>{name}.weight</c>, [out, in].</summary>
    public Parameter Weight { get; }

    /// <summary><c>{name}.bias</c>, [out]; null when built without bias.</summary>
    public Parameter? Bias { get; }

    public Linear(string name, int inFeatures, int outFeatures, Rng rng, bool bias = true)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(rng);
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear '{name}': feature counts must be > 0, got in={inFeatures}, out={outFeatures}.");
        Name = name;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        var w = new Tensor(new Shape(outFeatures, inFeatures));
        rng.FillNormal(w.Span, 0, Math.Sqrt(2.0 / (inFeatures + outFeatures)));
        Weight = new Parameter(name + ".weight", w);
        if (bias)
        {
            var b = new Tensor(new Shape(outFeatures));
            rng.FillNormal(b.Span, 0, Math.Sqrt(1.0 / outFeatures));
            Bias = new Parameter(name + ".bias", b);
        }
    }

    /// <summary>x [B, in] → [B, out], with <paramref name="activation"/> fused into the matrix product.</summary>
    public Tensor Forward(Tape tape, Tensor x, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 2 || x.Dim(1) != InFeatures)
            throw new ArgumentException($"Linear '{Name}': expected input [B, {InFeatures}], got {x.Shape}.");
        return Ops.Linear(tape, x, Weight.Value, Bias?.Value, activation);
    }

    public override IEnumerable<Parameter> Parameters()
    {
        yield return Weight;
        if (Bias is not null) yield return Bias;
    }
}

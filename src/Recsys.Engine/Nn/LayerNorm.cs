using Recsys.Engine.Core;

namespace Recsys.Engine.Nn;

using Recsys.Engine.Operations;

/// <summary>Layer normalisation over the last dimension with learned scale (<c>{name}.weight</c>, ones) and shift (<c>{name}.bias</c>, zeros).</summary>
public sealed class LayerNorm : Module
{
    public string Name { get; }
    public int Dim { get; }
    public float Eps { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public LayerNorm(string name, int dim, float eps = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (dim < 1) throw new ArgumentOutOfRangeException(nameof(dim), dim, $"LayerNorm '{name}': dim must be >= 1, got {dim}.");
        Name = name; Dim = dim; Eps = eps;
        var w = new Tensor(new Shape(dim));
        w.Span.Fill(1f);
        Weight = new Parameter($"{name}.weight", w);
        Bias = new Parameter($"{name}.bias", new Tensor(new Shape(dim)));
    }

    /// <summary>x [..., d] → same shape.</summary>
    public Tensor Forward(Tape tape, Tensor x) => Ops.LayerNorm(tape, x, Weight.Value, Bias.Value, Eps);

    public override IEnumerable<Parameter> Parameters()
    {
        yield return Weight;
        yield return Bias;
    }
}

using Recsys.Engine.Core;

namespace Recsys.Engine.Nn;

using Recsys.Engine.Operations;

/// <summary>
/// DCNv2 cross network: <c>x_{l+1} = x0 ⊙ (W_l·x_l + b_l) + x_l</c> for l = 0..L-1, with full-rank
/// W_l [d, d] (parameters <c>{name}.{l}.weight</c>, <c>{name}.{l}.bias</c>) or, given a rank r,
/// W_l = U_l·V_lᵀ (<c>{name}.{l}.u</c>, <c>{name}.{l}.v</c>, both [d, r]).
/// </summary>
public sealed class CrossNet : Module
{
    private readonly Parameter[] _weights; // full rank: W; low rank: U, V interleaved
    private readonly Parameter[] _biases;

    public string Name { get; }
    public int Dim { get; }
    public int Layers { get; }
    /// <summary>Rank r of W = U·Vᵀ, or null for full-rank layers.</summary>
    public int? LowRank { get; }

    public CrossNet(string name, int dim, int layers, Rng rng, int? lowRank = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(rng);
        if (dim < 1) throw new ArgumentOutOfRangeException(nameof(dim), dim, $"CrossNet '{name}': dim must be >= 1, got {dim}.");
        if (layers < 1) throw new ArgumentOutOfRangeException(nameof(layers), layers, $"CrossNet '{name}': layers must be >= 1, got {layers}.");
        if (lowRank is { } r0 && r0 < 1) throw new ArgumentOutOfRangeException(nameof(lowRank), lowRank, $"CrossNet '{name}': lowRank must be >= 1, got {r0}.");
        Name = name; Dim = dim; Layers = layers; LowRank = lowRank;
        _biases = new Parameter[layers];
        if (lowRank is { } r)
        {
            _weights = new Parameter[2 * layers];
            // Xavier normal for each factor: std = sqrt(2 / (fan_in + fan_out)).
            double std = Math.Sqrt(2.0 / (dim + r));
            for (int l = 0; l < layers; l++)
            {
                _weights[2 * l] = NewNormal($"{name}.{l}.u", new Shape(dim, r), rng, std);
                _weights[2 * l + 1] = NewNormal($"{name}.{l}.v", new Shape(dim, r), rng, std);
            }
        }
        else
        {
            _weights = new Parameter[layers];
            double std = Math.Sqrt(2.0 / (2.0 * dim));
            for (int l = 0; l < layers; l++) _weights[l] = NewNormal($"{name}.{l}.weight", new Shape(dim, dim), rng, std);
        }
        for (int l = 0; l < layers; l++) _biases[l] = new Parameter($"{name}.{l}.bias", new Tensor(new Shape(dim)));
    }

    private static Parameter NewNormal(string name, Shape shape, Rng rng, double std)
    {
        var t = new Tensor(shape);
        rng.FillNormal(t.Span, 0, std);
        return new Parameter(name, t);
    }

    /// <summary>x0 [B, d] → [B, d].</summary>
    public Tensor Forward(Tape tape, Tensor x0)
    {
        ArgumentNullException.ThrowIfNull(x0);
        if (x0.Rank != 2 || x0.Dim(1) != Dim)
            throw new ArgumentException($"CrossNet '{Name}': expected input [B, {Dim}], got {x0.Shape}.");
        var x = x0;
        for (int l = 0; l < Layers; l++)
        {
            x = LowRank is null
                ? Ops.CrossLayer(tape, x0, x, _weights[l].Value, _biases[l].Value)
                : Ops.CrossLayerLowRank(tape, x0, x, _weights[2 * l].Value, _weights[2 * l + 1].Value, _biases[l].Value);
        }
        return x;
    }

    public override IEnumerable<Parameter> Parameters()
    {
        for (int l = 0; l < Layers; l++)
        {
            if (LowRank is null) yield return _weights[l];
            else { yield return _weights[2 * l]; yield return _weights[2 * l + 1]; }
            yield return _biases[l];
        }
    }
}

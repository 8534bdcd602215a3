using Recsys.Engine.Core;

namespace Recsys.Engine.Nn;

using Recsys.Engine.Operations;

/// <summary>
/// Self-attention over feature tokens (AutoInt-style interaction block), post-norm:
/// <code>qkv = x·W_inᵀ + b_in;  o = MultiHeadAttention(qkv);  y = LayerNorm(x + o·W_outᵀ + b_out)</code>
/// Parameters (PyTorch nn.MultiheadAttention names): <c>{name}.in_proj.weight</c> [3d, d],
/// <c>{name}.in_proj.bias</c> [3d], <c>{name}.out_proj.weight</c> [d, d], <c>{name}.out_proj.bias</c> [d],
/// <c>{name}.norm.weight</c>, <c>{name}.norm.bias</c> [d].
/// </summary>
public sealed class SelfAttentionInteraction : Module
{
    public string Name { get; }
    public int DModel { get; }
    public int Heads { get; }
    public Parameter InWeight { get; }
    public Parameter InBias { get; }
    public Parameter OutWeight { get; }
    public Parameter OutBias { get; }
    public LayerNorm Norm { get; }

    public SelfAttentionInteraction(string name, int dModel, int heads, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(rng);
        if (dModel < 1 || heads < 1 || dModel % heads != 0)
            throw new ArgumentException($"SelfAttentionInteraction '{name}': dModel {dModel} must be >= 1 and divisible by heads {heads}.");
        Name = name; DModel = dModel; Heads = heads;
        // Xavier normal like PyTorch's in_proj (fan_in d, fan_out 3d) and out_proj; biases zero.
        var win = new Tensor(new Shape(3 * dModel, dModel));
        rng.FillNormal(win.Span, 0, Math.Sqrt(2.0 / (4.0 * dModel)));
        InWeight = new Parameter($"{name}.in_proj.weight", win);
        InBias = new Parameter($"{name}.in_proj.bias", new Tensor(new Shape(3 * dModel)));
        var wout = new Tensor(new Shape(dModel, dModel));
        rng.FillNormal(wout.Span, 0, Math.Sqrt(2.0 / (2.0 * dModel)));
        OutWeight = new Parameter($"{name}.out_proj.weight", wout);
        OutBias = new Parameter($"{name}.out_proj.bias", new Tensor(new Shape(dModel)));
        Norm = new LayerNorm($"{name}.norm", dModel);
    }

    /// <summary>tokens [B, T, d] → [B, T, d].</summary>
    public Tensor Forward(Tape tape, Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Rank != 3 || tokens.Dim(2) != DModel)
            throw new ArgumentException($"SelfAttentionInteraction '{Name}': expected tokens [B, T, {DModel}], got {tokens.Shape}.");
        var qkv = Ops.TokenLinear(tape, tokens, InWeight.Value, InBias.Value);
        var attended = Ops.AttentionCore(tape, qkv, Heads);
        var projected = Ops.TokenLinear(tape, attended, OutWeight.Value, OutBias.Value);
        var sum = Ops.AddResidual(tape, tokens, projected);
        return Norm.Forward(tape, sum);
    }

    public override IEnumerable<Parameter> Parameters()
    {
        yield return InWeight;
        yield return InBias;
        yield return OutWeight;
        yield return OutBias;
        foreach (var p in Norm.Parameters()) yield return p;
    }
}

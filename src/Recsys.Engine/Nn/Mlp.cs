using Recsys.Engine.Core;
using Recsys.Kernels.Common;

namespace Recsys.Engine.Nn;

/// <summary>
/// A stack of <see cref="Linear"/> layers: sizes [d0, d1, ..., dL] give L layers d_{i} → d_{i+1}, named
/// <c>{name}.{i}</c>. Hidden layers use <c>hidden</c>, the last layer <c>last</c> (DLRM's bottom MLP
/// ends in ReLU; its top MLP ends in None or Sigmoid).
/// </summary>
public sealed class Mlp : Module
{
    private readonly Linear[] _layers;

    public string Name { get; }
    public Activation Hidden { get; }
    public Activation Last { get; }
    public IReadOnlyList<Linear> Layers => _layers;

    public Mlp(string name, IReadOnlyList<int> sizes, Rng rng, Activation hidden = Activation.Relu, Activation last = Activation.Relu)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentNullException.ThrowIfNull(rng);
        if (sizes.Count < 2)
            throw new ArgumentException($"Mlp '{name}': expected at least 2 sizes (input and output), got {sizes.Count}.", nameof(sizes));
        Name = name;
        Hidden = hidden;
        Last = last;
        _layers = new Linear[sizes.Count - 1];
        for (int i = 0; i < _layers.Length; i++)
            _layers[i] = new Linear($"{name}.{i}", sizes[i], sizes[i + 1], rng);
    }

    /// <summary>x [B, d0] → [B, dL].</summary>
    public Tensor Forward(Tape tape, Tensor x)
    {
        for (int i = 0; i < _layers.Length; i++)
            x = _layers[i].Forward(tape, x, i == _layers.Length - 1 ? Last : Hidden);
        return x;
    }

    public override IEnumerable<Parameter> Parameters()
    {
        foreach (var l in _layers)
            foreach (var p in l.Parameters())
                yield return p;
    }
}

using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.Common;
using Recsys.Engine.Operations;

namespace Recsys.Engine.Models;

/// <summary>
/// DCNv2 (Wang et al. 2021), stacked structure: x0 = [dense, e_0, .., e_{F-1}] ([B, 13 + F·D]),
/// <see cref="ModelConfig.CrossLayers"/> cross layers x_{l+1} = x0 ⊙ (W x_l + b) + x_l (full rank, or
/// low rank W = U Vᵀ), then a deep tower (ReLU) ending in one logit.
/// </summary>
public sealed class DcnV2 : RankingModel
{
    public override EmbeddingBagCollection Embeddings { get; }
    public CrossNet Cross { get; }
    public Mlp Deep { get; }

    public DcnV2(ModelConfig config, Rng rng) : base(config)
    {
        int f = config.TableRows.Length;
        int x0Dim = config.DenseFeatures + f * config.EmbeddingDim;
        Embeddings = EmbeddingFactory.Tables(config, rng);
        Cross = new CrossNet("cross", x0Dim, config.CrossLayers, rng, config.CrossRank);
        Deep = new Mlp("deep", [x0Dim, .. config.TopMlp, 1], rng, Activation.Relu, Activation.None);
    }

    public override Tensor Forward(Tape tape, Batch batch)
    {
        var dense = DenseInput(tape, batch);
        var e = Embeddings.Forward(tape, batch.Sparse);
        var flat = Ops.Reshape(tape, e, new Shape(batch.Size, e.Length / Math.Max(1, batch.Size)));
        var x0 = Ops.Concat(tape, dense, flat);
        var x = Cross.Forward(tape, x0);
        return Deep.Forward(tape, x);
    }

    public override IEnumerable<Parameter> Parameters() => Cross.Parameters().Concat(Deep.Parameters());

    public override IEnumerable<KeyValuePair<string, Tensor>> StateTensors() =>
        base.StateTensors().Concat(Embeddings.StateTensors());
}

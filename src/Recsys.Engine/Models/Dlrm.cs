using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.Common;

namespace Recsys.Engine.Models;

/// <summary>
/// DLRM (Naumov et al. 2019), as facebookresearch/dlrm builds it: bottom MLP on the dense features
/// (ReLU after every layer, last size = embedding dim D), one sum-pooled embedding bag per sparse
/// feature, dot interaction over T = [x, e_0..e_{F-1}] (pairs i &gt; j, concatenated with x), and a top MLP
/// (ReLU except the last layer, which has one output: the logit).
/// Shapes: dense [B, 13] → x [B, D]; embeddings [B, F, D]; interaction [B, D + F(F+1)/2]; logit [B, 1].
/// </summary>
public sealed class Dlrm : RankingModel
{
    public Mlp Bottom { get; }
    public override EmbeddingBagCollection Embeddings { get; }
    public DotInteraction Interaction { get; }
    public Mlp Top { get; }

    public Dlrm(ModelConfig config, Rng rng) : base(config)
    {
        int d = config.EmbeddingDim;
        int f = config.TableRows.Length;
        Bottom = new Mlp("bottom", [config.DenseFeatures, .. config.BottomMlp, d], rng, Activation.Relu, Activation.Relu);
        Embeddings = EmbeddingFactory.Tables(config, rng);
        Interaction = new DotInteraction();
        int interactionDim = DotInteraction.OutputDim(f, d);
        Top = new Mlp("top", [interactionDim, .. config.TopMlp, 1], rng, Activation.Relu, Activation.None);
    }

    public override Tensor Forward(Tape tape, Batch batch)
    {
        var dense = DenseInput(tape, batch);
        var x = Bottom.Forward(tape, dense);
        // Lookups and interaction in one op: fused (no [B, F, D] buffer) when the tape does not record.
        var z = Interaction.Forward(tape, x, Embeddings, batch.Sparse);
        return Top.Forward(tape, z);
    }

    public override IEnumerable<Parameter> Parameters() => Bottom.Parameters().Concat(Top.Parameters());

    public override IEnumerable<KeyValuePair<string, Tensor>> StateTensors() =>
        base.StateTensors().Concat(Embeddings.StateTensors());
}

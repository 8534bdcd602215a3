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
        if (!tape.RecordingEnabled)
        {
            // Inference: lookups and interaction in one op (no [B, F, D] buffer), which needs the bottom MLP's output.
            var x = Bottom.Forward(tape, dense);
            return Top.Forward(tape, Interaction.Forward(tape, x, Embeddings, batch.Sparse));
        }
        // Training: the lookups before the bottom MLP (the two are independent). Random row reads run up to 2–3× slower
        // for a few milliseconds after a phase without them, such as the bottom MLP's GEMMs (perf/RESULTS.md); first in
        // the step, they follow the previous step's embedding updates instead, whose backward now also runs last. W6 at
        // batch 4096: faster in six alternated pairs of six, 70.6–74.9 against 71.2–77.2 ms a step. Same values.
        var pooled = Embeddings.Forward(tape, batch.Sparse);
        var bottom = Bottom.Forward(tape, dense);
        return Top.Forward(tape, Interaction.Forward(tape, bottom, pooled));
    }

    public override IEnumerable<Parameter> Parameters() => Bottom.Parameters().Concat(Top.Parameters());

    public override IEnumerable<KeyValuePair<string, Tensor>> StateTensors() =>
        base.StateTensors().Concat(Embeddings.StateTensors());
}

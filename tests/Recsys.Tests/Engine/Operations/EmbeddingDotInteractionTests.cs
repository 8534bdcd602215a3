using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Models;
using Recsys.Engine.Nn;
using Recsys.Engine.Operations;
using Recsys.Engine.Training;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Tests.Kernels.EmbeddingBag;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Operations;

/// <summary>Lookups then dot interaction: fused on a tape that does not record, the two ops otherwise.</summary>
public class EmbeddingDotInteractionTests
{
    private const int Dim = 16, Batch = 6;
    private static readonly int[] Rows = { 7, 3, 40 };

    private static EmbeddingBagCollection Collection(PoolingMode mode) =>
        new(Rows.Select((r, f) => new EmbeddingTableConfig($"t{f}", r, Dim)).ToList(), mode, new Rng(42));

    /// <summary>Bags of 0..4 ids (empty ones included), optionally weighted.</summary>
    private static KeyedJagged Ids(int seed, bool weighted)
    {
        var (idx, off, w) = EmbeddingBagReference.TableBags(Rows, Batch, maxLen: 4, seed);
        return new KeyedJagged(Rows.Length, Batch, idx, off, weighted ? w : null);
    }

    [Test]
    public void NotRecording_Fused_BitIdenticalToTheTwoOps_WithoutTheEmbeddingsBuffer(
        [Values(PoolingMode.Sum, PoolingMode.Mean)] PoolingMode mode, [Values(false, true)] bool weighted)
    {
        var ebc = Collection(mode);
        var ids = Ids(3, weighted);
        var dense = TestData.Tensor(new Shape(Batch, Dim), 5, requiresGrad: false, lo: -1f);

        var recording = new Tape();
        var expected = Ops.EmbeddingDotInteraction(recording, dense, ebc, ids).ToArray();
        Assert.That(expected, Is.EqualTo(Ops.DotInteraction(new Tape(), dense, ebc.Forward(new Tape(), ids)).ToArray()), "recording tape: the two ops");

        var inference = new Tape { RecordingEnabled = false };
        var y = Ops.EmbeddingDotInteraction(inference, dense, ebc, ids);
        Assert.That(y.Shape, Is.EqualTo(new Shape(Batch, Dim + 3 * 4 / 2)));
        Assert.That(y.ToArray(), Is.EqualTo(expected));
        // Only the output was allocated: not the [B, F, D] embeddings, which are larger than it here.
        Assert.That(inference.Arena.FloatsInUse, Is.LessThan(Batch * Rows.Length * Dim), "floats taken from the arena");
    }

    [Test]
    public void NotRecording_DenseOfTheWrongShape_NamesBothShapes()
    {
        var ebc = Collection(PoolingMode.Sum);
        var dense = TestData.Tensor(new Shape(Batch, Dim + 1), 5, requiresGrad: false);
        var ex = Assert.Throws<ArgumentException>(() => Ops.EmbeddingDotInteraction(new Tape { RecordingEnabled = false }, dense, ebc, Ids(1, false)));
        Assert.That(ex!.Message, Does.Contain($"[{Batch}, {Dim}]").And.Contain($"{dense.Shape}"));
    }

    [Test]
    public void NotRecording_IdOutOfRange_ErrorNamesTheTable()
    {
        var ebc = Collection(PoolingMode.Sum);
        var ids = Ids(3, weighted: false);
        int p = ids.Offsets[Batch]; // first id of table 1 ('t1', 3 rows)
        Assume.That(ids.Offsets[2 * Batch], Is.GreaterThan(p), "table 1 needs at least one id");
        ids.Values[p] = 3;
        var dense = TestData.Tensor(new Shape(Batch, Dim), 5, requiresGrad: false);
        var ex = Assert.Throws<EmbeddingIndexOutOfRangeException>(() => Ops.EmbeddingDotInteraction(new Tape { RecordingEnabled = false }, dense, ebc, ids));
        Assert.That(ex!.Message, Does.Contain("'t1'").And.Contain($"position {p}").And.Contain("id 3").And.Contain("3 rows"));
    }

    [Test]
    public void DlrmTraining_RecordsTheLookupsBeforeTheBottomMlp()
    {
        // Training looks up the embeddings first in the step: random row reads start slowly after a phase of GEMMs such
        // as the bottom MLP's (see Dlrm.Forward). The first op the tape records is the lookups, then the bottom MLP.
        var (model, batch) = SmallDlrm();
        var profile = new TapeProfile();
        var tape = new Tape { Profile = profile };
        model.Forward(tape, batch);
        Assert.That(profile.Entries.Select(e => e.Name).Take(2), Is.EqualTo(new[] { "EmbeddingBags", "Linear" }));
    }

    private static (RankingModel Model, Batch Batch) SmallDlrm()
    {
        var config = new ModelConfig
        {
            Kind = "dlrm", DenseFeatures = 13, TableRows = new[] { 50, 9, 300, 17 }, EmbeddingDim = 16, BottomMlp = new[] { 24 }, TopMlp = new[] { 20 },
        };
        var model = RankingModel.Create(config, new Rng(3));
        var batch = new Batch();
        batch.Resize(37, 13, 4);
        TestData.Floats(37 * 13, 4).CopyTo(batch.Dense, 0);
        var ids = TestData.Ints(37 * 4, 9, 5);
        for (int i = 0; i < ids.Length; i++) ids[i] = ids[i] * 31 % config.TableRows[i % 4];
        ids.CopyTo(batch.Ids, 0);
        batch.BuildSparseFromIds();
        return (model, batch);
    }

    [Test]
    public void DlrmPredict_EqualsTheTrainingForwardBitwise()
    {
        var (model, batch) = SmallDlrm();
        var tape = new Tape();
        var expected = model.Forward(tape, batch).ToArray();
        var logits = new float[37];
        new Trainer(model, new TrainingOptions()).Predict(batch, logits);
        Assert.That(logits, Is.EqualTo(expected));
    }
}

using NUnit.Framework;
using Recsys.Engine.Data;

namespace Recsys.Tests.Engine.Data;

public class InMemoryDatasetTests
{
    /// <summary>N rows, 2 dense, 3 sparse; row r has dense (r, -r), ids (r % 5, r % 7, 0), label r % 2.</summary>
    private static InMemoryDataset Make(int n)
    {
        var dense = new float[n * 2];
        var ids = new int[n * 3];
        var labels = new float[n];
        for (int r = 0; r < n; r++)
        {
            dense[r * 2] = r; dense[r * 2 + 1] = -r;
            ids[r * 3] = r % 5; ids[r * 3 + 1] = r % 7;
            labels[r] = r % 2;
        }
        return new InMemoryDataset(n, 2, 3, dense, ids, labels, new[] { 5, 7, 1 });
    }

    [Test]
    public void SplitTrainTest_FileOrder_FirstFloor90PercentTrain()
    {
        var (train, test) = Make(25).SplitTrainTest(0.9);
        Assert.That(train.Count, Is.EqualTo(22));
        Assert.That(train.Rows.ToArray(), Is.EqualTo(Enumerable.Range(0, 22)));
        Assert.That(test.Rows.ToArray(), Is.EqualTo(Enumerable.Range(22, 3)));
    }

    [Test]
    public void KFold_ContiguousFolds_CoverEveryRowOnceAsTest()
    {
        var folds = Make(10).KFold(3);
        Assert.That(folds.Select(f => f.Test.Count), Is.EqualTo(new[] { 3, 3, 4 }));
        var tested = folds.SelectMany(f => f.Test.Rows.ToArray()).ToArray();
        Assert.That(tested, Is.EqualTo(Enumerable.Range(0, 10)));
        Assert.That(folds[1].Train.Rows.ToArray(), Is.EqualTo(new[] { 0, 1, 2, 6, 7, 8, 9 }));
    }

    [Test]
    public void FillBatch_Rows_CopiesDenseIdsLabelsAndSparse()
    {
        var ds = Make(10);
        var batch = new Batch();
        ds.FillBatch(batch, new[] { 7, 2 });
        Assert.That(batch.Size, Is.EqualTo(2));
        Assert.That(batch.DenseSpan.ToArray(), Is.EqualTo(new[] { 7f, -7f, 2f, -2f }));
        Assert.That(batch.IdSpan.ToArray(), Is.EqualTo(new[] { 2, 0, 0, 2, 2, 0 }));
        Assert.That(batch.LabelSpan.ToArray(), Is.EqualTo(new[] { 1f, 0f }));
        // Feature-major sparse view: feature 1 of sample 0 is at position 1*B + 0.
        Assert.That(batch.Sparse.Values[2], Is.EqualTo(0));
        Assert.That(batch.Sparse.Values[3], Is.EqualTo(2));
    }

    [Test]
    public void FillBatch_RowOutOfRange_ThrowsNamingIndex()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Make(4).FillBatch(new Batch(), new[] { 1, 9 }));
        Assert.That(ex!.Message, Does.Contain("9").And.Contain("4 rows"));
    }

    [Test]
    public void Constructor_IdOutsideTable_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => new InMemoryDataset(1, 0, 1, Array.Empty<float>(), new[] { 3 }, new[] { 0f }, new[] { 3 }));
        Assert.That(ex!.Message, Does.Contain("id 3").And.Contain("rows 3"));
    }

    [Test]
    public void Shuffled_SameSeed_SamePermutation_DifferentSeed_Different()
    {
        var all = Make(100).All;
        var a = all.Shuffled(1).Rows.ToArray();
        Assert.That(all.Shuffled(1).Rows.ToArray(), Is.EqualTo(a));
        Assert.That(all.Shuffled(2).Rows.ToArray(), Is.Not.EqualTo(a));
        Assert.That(a.OrderBy(x => x), Is.EqualTo(Enumerable.Range(0, 100)));
    }

    [Test]
    public void Batches_ReuseOneBatch_LastSmaller()
    {
        var view = Make(10).Slice(2, 7);
        var sizes = new List<int>();
        var labels = new List<float>();
        Batch? first = null;
        foreach (var b in view.Batches(3))
        {
            first ??= b;
            Assert.That(b, Is.SameAs(first));
            sizes.Add(b.Size);
            labels.AddRange(b.LabelSpan.ToArray());
        }
        Assert.That(sizes, Is.EqualTo(new[] { 3, 3, 1 }));
        Assert.That(labels, Is.EqualTo(view.Labels()));
    }
}

using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Tests.Engine.Nn;

/// <summary>
/// Large tables start on a 256-byte boundary (a 64-float row in two whole 128-byte line pairs); lookups and fused updates
/// still address the right rows.
/// </summary>
public class EmbeddingTableAlignmentTests
{
    [Test]
    public unsafe void LargeTables_RowZero_On256ByteBoundary()
    {
        // Several live tables: the heap put every one at 64 mod 256 before tables asked for 256.
        var tables = Enumerable.Range(0, 4).Select(i => new EmbeddingTable($"big{i}", 20_000, 64, new Rng(1))).ToArray(); // 5 MB each
        foreach (var t in tables)
            fixed (float* p = t.Weight.Span) Assert.That((long)p % 256, Is.EqualTo(0), t.Name);
    }

    [Test]
    public void LargeTable_ForwardAndSgdUpdate_UseTheAlignedRows()
    {
        const int rows = 20_000, dim = 64, batch = 7;
        var ebc = new EmbeddingBagCollection(new[] { new EmbeddingTableConfig("big", rows, dim) }, PoolingMode.Sum, new Rng(2));
        var weight = ebc.Tables[0].Weight;
        var ids = new[] { 0, rows - 1, 5, 5, 17, 19_999, 123 };
        var jagged = new KeyedJagged(1, batch, ids, Enumerable.Range(0, batch + 1).ToArray());
        var before = weight.ToArray();

        var tape = new Tape();
        var y = ebc.Forward(tape, jagged);
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < dim; c++)
                Assert.That(y.Span[b * dim + c], Is.EqualTo(before[ids[b] * dim + c]), $"bag {b} col {c}");

        ebc.Optimizer = new SparseSgd(0.5f);
        var seed = new Tensor(y.Shape, Enumerable.Repeat(1f, y.Length).ToArray());
        tape.Backward(y, seed);
        var after = weight.ToArray();
        for (int r = 0; r < rows; r++)
        {
            int hits = ids.Count(i => i == r);
            for (int c = 0; c < dim; c++)
                Assert.That(after[r * dim + c], Is.EqualTo(before[r * dim + c] - 0.5f * hits).Within(1e-6), $"row {r} col {c}");
        }
    }
}

using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// Pooled lookups of all tables of <paramref name="collection"/>: y[b, f, :] = pool(W_f[ids(f, b)]), shape [B, F, D].
    /// Backward (when the tape records) is sparse and fused with the collection's optimizer; <paramref name="ids"/>
    /// must not be modified until backward has run.
    /// </summary>
    public static Tensor EmbeddingBags(Tape tape, EmbeddingBagCollection collection, KeyedJagged ids)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(collection);
        collection.CheckIds(ids);
        // A device collection on a host tape also goes here, to fail naming both devices.
        if (tape.Device.IsGpu || collection.Device.IsGpu) return EmbeddingBagsGpu(tape, collection, ids);
        var y = tape.Arena.Allocate(new Shape(ids.BatchSize, collection.Tables.Count, collection.Dim));
        collection.ForwardInto(ids, y.Span);
        if (tape.RecordingEnabled)
        {
            // The backward needs the collection and the ids it looked up: one State slot each, no holder object.
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) => EmbeddingBagsBackward(e.Output!, (EmbeddingBagCollection)e.State!, (KeyedJagged)e.State2!),
                // Lookups of several collections in a row (one per feature) update their tables together, each
                // collection whole on one thread: see EmbeddingBackwardGroup.
                BackwardGroup = static (t, entries) => EmbeddingBagsBackwardGroup(entries),
                Output = y,
                State = collection,
                State2 = ids,
            });
        }
        return y;
    }

    private static void EmbeddingBagsBackward(Tensor y, EmbeddingBagCollection collection, KeyedJagged ids)
    {
        if (y.Grad is null) return;
        collection.Backward(ids, y.Grad.ReadOnlySpan);
    }

    private static void EmbeddingBagsBackwardGroup(ReadOnlySpan<TapeEntry> entries)
    {
        var group = EmbeddingBackwardGroup.Begin();
        // The tape passes them in recording order; one by one they would run from the last.
        for (int k = entries.Length - 1; k >= 0; k--)
            group.Add((EmbeddingBagCollection)entries[k].State!, (KeyedJagged)entries[k].State2!, entries[k].Output!.Grad!);
        group.Run();
    }
}

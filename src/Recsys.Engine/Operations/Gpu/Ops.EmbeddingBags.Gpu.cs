using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// GPU path of <see cref="EmbeddingBags"/>: the ids are uploaded once into the step's arena, all tables are looked up
    /// in one launch, and the backward is the collection's fused sparse optimizer on the device.
    /// </summary>
    private static Tensor EmbeddingBagsGpu(Tape tape, EmbeddingBagCollection collection, KeyedJagged ids)
    {
        if (!ReferenceEquals(collection.Device, tape.Device))
            throw new InvalidOperationException(
                $"EmbeddingBags: the tables of '{collection.Tables[0].Name}'.. live on '{collection.Device.Name}' but the tape runs on '{tape.Device.Name}'; move the model with To(device).");
        var y = tape.Arena.Allocate(new Shape(ids.BatchSize, collection.Tables.Count, collection.Dim));
        var saved = collection.ForwardDevice(tape.Arena, ids, y);
        if (tape.RecordingEnabled)
            tape.Record(new TapeEntry
            {
                Backward = static (t, in e) =>
                {
                    if (e.Output!.Grad is { } dy)
                    {
                        var s = (DeviceIds)e.State!;
                        s.Collection.BackwardDevice(s, dy);
                    }
                },
                Output = y,
                State = saved,
            });
        return y;
    }
}

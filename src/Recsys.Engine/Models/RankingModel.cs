using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Nn;

namespace Recsys.Engine.Models;

/// <summary>
/// A click-through-rate model: dense features and sparse ids of a <see cref="Batch"/> in, one logit per
/// sample out ([B, 1]). Embedding tables are updated inside backward by their sparse optimizer; the
/// remaining (dense) parameters are returned by <see cref="Module.Parameters"/>.
/// </summary>
public abstract class RankingModel : Module
{
    public ModelConfig Config { get; }
    public abstract EmbeddingBagCollection Embeddings { get; }

    protected RankingModel(ModelConfig config)
    {
        config.Validate();
        Config = config;
    }

    /// <summary>The device holding the model (the CPU until <see cref="To"/>).</summary>
    public Device Device { get; private set; } = Device.Cpu;

    /// <summary>Moves the dense parameters and the embedding tables to <paramref name="device"/>; train it with a tape on the same device.</summary>
    public override void To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (ReferenceEquals(device, Device)) return;
        base.To(device);
        Embeddings.To(device);
        Device = device;
    }

    /// <summary>Logits [B, 1] for the batch.</summary>
    public abstract Tensor Forward(Tape tape, Batch batch);

    /// <summary>The batch's dense features as an arena tensor [B, DenseFeatures].</summary>
    protected Tensor DenseInput(Tape tape, Batch batch)
    {
        if (batch.DenseFeatures != Config.DenseFeatures)
            throw new ArgumentException($"{Config.Kind}: batch has {batch.DenseFeatures} dense features, the model expects {Config.DenseFeatures}.");
        if (batch.SparseFeatures != Config.TableRows.Length)
            throw new ArgumentException($"{Config.Kind}: batch has {batch.SparseFeatures} sparse features, the model has {Config.TableRows.Length} embedding tables.");
        var x = tape.Arena.Allocate(new Shape(batch.Size, batch.DenseFeatures));
        if (x.IsOnDevice) x.CopyFrom(batch.DenseSpan); // the step's one upload of dense features
        else batch.DenseSpan.CopyTo(x.Span);
        return x;
    }

    /// <summary>Builds the model a config describes, initialised from <paramref name="rng"/>.</summary>
    /// <summary>Builds the model on <paramref name="device"/>: initialised on the host from <paramref name="rng"/> (same values as on the CPU), then moved.</summary>
    public static RankingModel Create(ModelConfig config, Rng rng, Device device)
    {
        var model = Create(config, rng);
        model.To(device);
        return model;
    }

    public static RankingModel Create(ModelConfig config, Rng rng) => config.Kind switch
    {
        "dlrm" => new Dlrm(config, rng),
        "dcnv2" => new DcnV2(config, rng),
        _ => throw new ArgumentException($"Unknown model kind '{config.Kind}': expected dlrm or dcnv2."),
    };
}

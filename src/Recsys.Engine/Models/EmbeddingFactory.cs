using Recsys.Engine.Core;
using Recsys.Engine.Nn;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Engine.Models;

/// <summary>The sum-pooled embedding tables of a ranking model: one per sparse feature, named <c>emb.C{n}</c> (n 1-based, as Criteo's columns).</summary>
internal static class EmbeddingFactory
{
    public static EmbeddingBagCollection Tables(ModelConfig config, Rng rng) =>
        new(config.TableRows.Select((rows, t) => new EmbeddingTableConfig($"emb.C{t + 1}", rows, config.EmbeddingDim)).ToArray(), PoolingMode.Sum, rng);
}

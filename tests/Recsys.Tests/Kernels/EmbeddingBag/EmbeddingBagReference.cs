namespace Recsys.Tests.Kernels.EmbeddingBag;

/// <summary>Float64 scalar reference of embedding-bag pooling and of its coalesced row gradients, plus random bag generators.</summary>
public static class EmbeddingBagReference
{
    /// <summary>out[b, :] = s_b Σ_j w_j W[id_j, :] for bags given by absolute <paramref name="offsets"/> [bags+1].</summary>
    public static double[] Forward(float[] weight, int dim, int[] indices, int[] offsets, float[]? psw, bool mean)
    {
        int bags = offsets.Length - 1;
        var o = new double[bags * dim];
        for (int b = 0; b < bags; b++)
        {
            int s = offsets[b], e = offsets[b + 1];
            for (int p = s; p < e; p++)
            {
                double wj = psw is null ? 1.0 : psw[p];
                for (int c = 0; c < dim; c++) o[b * dim + c] += wj * weight[(long)indices[p] * dim + c];
            }
            if (mean && e > s)
                for (int c = 0; c < dim; c++) o[b * dim + c] /= e - s;
        }
        return o;
    }

    /// <summary>Σ over positions j of id r of s_b(j) w_j dOut[b(j), :], per distinct id, ids ascending. dOut is dense [bags, dim].</summary>
    public static SortedDictionary<int, double[]> RowGradients(int dim, int[] indices, int[] offsets, float[]? psw, bool mean, float[] dOut)
    {
        var g = new SortedDictionary<int, double[]>();
        int bags = offsets.Length - 1;
        for (int b = 0; b < bags; b++)
        {
            int s = offsets[b], e = offsets[b + 1];
            for (int p = s; p < e; p++)
            {
                double scale = (psw is null ? 1.0 : psw[p]) / (mean ? e - s : 1);
                if (!g.TryGetValue(indices[p], out var row)) g[indices[p]] = row = new double[dim];
                for (int c = 0; c < dim; c++) row[c] += scale * dOut[b * dim + c];
            }
        }
        return g;
    }

    /// <summary>
    /// Random bags: lengths 0..maxLen (empty bags included), ids in [0, rows) with many duplicates when rows is small.
    /// Offsets start at <paramref name="baseOffset"/> (the ids before it are junk and never read... but valid).
    /// </summary>
    public static (int[] Indices, int[] Offsets, float[] Weights) Bags(int bags, int maxLen, int rows, int seed, int baseOffset = 0)
    {
        var r = new Random(seed);
        var offsets = new int[bags + 1];
        offsets[0] = baseOffset;
        for (int b = 0; b < bags; b++) offsets[b + 1] = offsets[b] + r.Next(maxLen + 1);
        var indices = new int[offsets[bags] + 3];
        var weights = new float[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            indices[i] = r.Next(rows);
            weights[i] = (float)(r.NextDouble() * 1.5 - 0.5);
        }
        return (indices, offsets, weights);
    }

    /// <summary>
    /// Random bags of 0..<paramref name="maxLen"/> ids for <paramref name="rows"/>.Length tables, feature-major
    /// (bag (f, b) at f·batch + b); table f's ids lie in [0, min(rows[f], idCap)). Returns the ids trimmed to the last
    /// offset, the offsets, and one weight per id.
    /// </summary>
    public static (int[] Indices, int[] Offsets, float[] Weights) TableBags(int[] rows, int batch, int maxLen, int seed, int idCap = int.MaxValue)
    {
        var (idx, off, w) = Bags(rows.Length * batch, maxLen, rows: 1000, seed);
        int n = off[^1];
        for (int f = 0; f < rows.Length; f++)
            for (int p = off[f * batch]; p < off[(f + 1) * batch]; p++) idx[p] %= Math.Min(rows[f], idCap);
        return (idx[..n], off, w[..n]);
    }
}

using System.Text.Json.Nodes;

namespace Recsys.Cli.Bench;

/// <summary>
/// Puts the engine's summary beside a peer's results.json (the libtorch harness format:
/// <c>summary.{key}.{best|tuned|stock}</c>). Ratios are engine speed over peer speed, so &gt; 1 means the
/// engine is faster: peer/engine for times (<c>_ms</c>, <c>_us</c>), engine/peer for rates. Where the
/// peer measured two layouts or implementations of one variant, the engine is compared with the faster.
/// </summary>
public static class PeerComparison
{
    public sealed record Row(string Workload, string Metric, double Engine, double Peer, string PeerKey, double Ratio);

    /// <summary>Engine metric → peer metrics it is compared with (the peer's best of them is used).</summary>
    private static IEnumerable<(string Engine, string[] Peer)> Pairs()
    {
        foreach (var layout in new[] { "fused", "per_table" })
            foreach (var pf in new[] { 1, 32 })
                foreach (var kind in new[] { "fwd", "train" })
                {
                    var key = $"W1_{layout}_pf{pf}_{kind}_Mlookups_per_s";
                    yield return (key, new[] { key });
                }
        yield return ("W2_mlp_ms", new[] { "W2_mlp_ms" });
        yield return ("W3_interaction_ms", new[] { "W3_interaction_ms" });
        yield return ("W4_dcnv2_ms", new[] { "W4_dcnv2_ms" });
        yield return ("W5_attention_ms", new[] { "W5_attention_ms", "W5_attention_mha_module_ms" });
        foreach (var b in new[] { "b4096", "b256" })
            yield return ($"W6_dlrm_train_fused_{b}_examples_per_s", new[] { $"W6_dlrm_train_fused_{b}_examples_per_s", $"W6_dlrm_train_per_table_{b}_examples_per_s" });
        yield return ("W7_kmeans_step_ms", new[] { "W7_kmeans_step_ms" });
        yield return ("W8_dlrm_infer_fused_b1_latency_us", new[] { "W8_dlrm_infer_fused_b1_latency_us", "W8_dlrm_infer_per_table_b1_latency_us" });
        yield return ("W8_dlrm_infer_fused_b4096_examples_per_s", new[] { "W8_dlrm_infer_fused_b4096_examples_per_s", "W8_dlrm_infer_per_table_b4096_examples_per_s" });
    }

    private static bool LowerIsBetter(string key) => key.EndsWith("_ms", StringComparison.Ordinal) || key.EndsWith("_us", StringComparison.Ordinal);

    /// <summary>
    /// Reads the peer's summary values for <paramref name="config"/> ("best", "tuned" or "stock"). A run of one
    /// configuration (<c>run.sh --configs tuned</c>) has no "best" entry: "best" is then the better of those present.
    /// </summary>
    public static Dictionary<string, double> ReadPeer(string path, string config)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"peer results file not found: {path}");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})."); }
        if (root?["summary"] is not JsonObject summary)
            throw new InvalidDataException($"{path}: no 'summary' object; expected the peer harness's results.json.");
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (key, node) in summary)
        {
            var v = node is JsonObject o ? o[config] : node;
            if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) result[key] = d;
            else if (config == "best" && node is JsonObject configs && BestOf(configs, LowerIsBetter(key)) is { } best) result[key] = best;
        }
        if (result.Count == 0) throw new InvalidDataException($"{path}: summary has no '{config}' values.");
        return result;
    }

    /// <summary>The better of a summary entry's per-configuration values, or null when it has none.</summary>
    private static double? BestOf(JsonObject configs, bool lower)
    {
        double? best = null;
        foreach (var (_, node) in configs)
            if (node is JsonValue jv && jv.TryGetValue<double>(out var d) && (best is null || (lower ? d < best : d > best))) best = d;
        return best;
    }

    public static List<Row> Compare(IReadOnlyDictionary<string, double> engine, IReadOnlyDictionary<string, double> peer)
    {
        var rows = new List<Row>();
        foreach (var (key, peerKeys) in Pairs())
        {
            if (!engine.TryGetValue(key, out var e)) continue;
            bool lower = LowerIsBetter(key);
            string? bestKey = null;
            double best = lower ? double.MaxValue : double.MinValue;
            foreach (var pk in peerKeys)
                if (peer.TryGetValue(pk, out var pv) && (lower ? pv < best : pv > best)) { best = pv; bestKey = pk; }
            if (bestKey is null) continue;
            double ratio = lower ? best / e : e / best;
            rows.Add(new Row(key[..2], key, e, best, bestKey, ratio));
        }
        return rows;
    }

    /// <summary>Per workload, the worst ratio over its variants.</summary>
    public static SortedDictionary<string, double> WorstPerWorkload(IEnumerable<Row> rows)
    {
        var r = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var row in rows)
            r[row.Workload] = r.TryGetValue(row.Workload, out var v) ? Math.Min(v, row.Ratio) : row.Ratio;
        return r;
    }
}

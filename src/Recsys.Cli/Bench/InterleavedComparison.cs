using System.Text.Json.Nodes;

namespace Recsys.Cli.Bench;

/// <summary>
/// Engine and peer measured workload by workload, one right after the other (<c>recsys bench --peer-command</c>), over
/// one or more rounds. Each round's ratio compares two runs made seconds apart; the reported ratio is the median over
/// rounds, with the range beside it, so one drifted pair cannot decide it.
/// </summary>
public static class InterleavedComparison
{
    /// <summary>One workload of one round: the engine's and the peer's summary values, and which of them ran first.</summary>
    public sealed record Pair(int Round, string Workload, bool PeerFirst, IReadOnlyDictionary<string, double> Engine,
        IReadOnlyDictionary<string, double> Peer);

    /// <summary>A metric over the rounds: medians of the engine's and the peer's values, and of the per-round ratios.</summary>
    public sealed record Row(string Workload, string Metric, double Engine, double Peer, string PeerKey, double Ratio, double RatioMin,
        double RatioMax, double[] RoundRatios);

    /// <summary>
    /// Per metric, in the order <see cref="PeerComparison.Compare"/> lists them: the ratio of each round's pair (engine
    /// over peer speed, &gt; 1 = engine faster), and their median.
    /// </summary>
    public static List<Row> Aggregate(IReadOnlyList<Pair> pairs)
    {
        var byMetric = new Dictionary<string, List<PeerComparison.Row>>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var pair in pairs)
            foreach (var row in PeerComparison.Compare(pair.Engine, pair.Peer))
            {
                if (!byMetric.TryGetValue(row.Metric, out var list)) { byMetric[row.Metric] = list = new(); order.Add(row.Metric); }
                list.Add(row);
            }
        var result = new List<Row>();
        foreach (var metric in order)
        {
            var rounds = byMetric[metric];
            var ratios = rounds.Select(r => r.Ratio).ToArray();
            result.Add(new Row(rounds[0].Workload, metric, BenchProtocol.Median(rounds.Select(r => r.Engine)), BenchProtocol.Median(rounds.Select(r => r.Peer)),
                rounds[^1].PeerKey, BenchProtocol.Median(ratios), ratios.Min(), ratios.Max(), ratios));
        }
        return result;
    }

    /// <summary>
    /// Adds to the bench's JSON: <c>ratios</c> (per workload, the worst variant's median ratio), <c>ratio_rows</c> (each
    /// metric's medians, range and per-round ratios) and <c>interleaved</c> (the command, and every pair's figures).
    /// </summary>
    public static void AddToJson(JsonObject output, IReadOnlyList<Row> rows, IReadOnlyList<Pair> pairs, string peerCommand, string peerConfig, int rounds)
    {
        var worst = PeerComparison.WorstPerWorkload(rows.Select(r => new PeerComparison.Row(r.Workload, r.Metric, r.Engine, r.Peer, r.PeerKey, r.Ratio)));
        output["ratios"] = new JsonObject(worst.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(Math.Round(kv.Value, 4)))));
        output["ratio_rows"] = new JsonArray(rows.Select(r => (JsonNode?)new JsonObject
        {
            ["metric"] = r.Metric, ["engine"] = r.Engine, ["peer"] = r.Peer, ["peer_key"] = r.PeerKey, ["ratio"] = r.Ratio,
            ["ratio_min"] = r.RatioMin, ["ratio_max"] = r.RatioMax,
            ["ratio_per_round"] = new JsonArray(r.RoundRatios.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
        }).ToArray());
        output["interleaved"] = new JsonObject
        {
            ["peer_command"] = peerCommand, ["peer_config"] = peerConfig, ["rounds"] = rounds,
            ["pairs"] = new JsonArray(pairs.Select(p => (JsonNode?)new JsonObject
            {
                ["round"] = p.Round, ["workload"] = p.Workload, ["peer_first"] = p.PeerFirst,
                ["engine"] = new JsonObject(p.Engine.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(Math.Round(kv.Value, 5))))),
                // The peer's file holds every workload's keys when it ran them all; a pair keeps those of its workload.
                ["peer"] = new JsonObject(p.Peer.Where(kv => kv.Key.StartsWith(p.Workload + "_", StringComparison.Ordinal))
                    .Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            }).ToArray()),
        };
    }

    /// <summary>Per summary key, the median of the engine's values over the rounds.</summary>
    public static Dictionary<string, double> EngineMedians(IReadOnlyList<Pair> pairs)
    {
        var values = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        foreach (var pair in pairs)
            foreach (var (k, v) in pair.Engine)
            {
                if (!values.TryGetValue(k, out var list)) values[k] = list = new();
                list.Add(v);
            }
        return values.ToDictionary(kv => kv.Key, kv => BenchProtocol.Median(kv.Value), StringComparer.Ordinal);
    }
}

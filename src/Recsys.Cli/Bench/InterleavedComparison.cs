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
            result.Add(new Row(rounds[0].Workload, metric, Median(rounds.Select(r => r.Engine)), Median(rounds.Select(r => r.Peer)),
                rounds[^1].PeerKey, Median(ratios), ratios.Min(), ratios.Max(), ratios));
        }
        return result;
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
        return values.ToDictionary(kv => kv.Key, kv => Median(kv.Value), StringComparer.Ordinal);
    }

    /// <summary>The median (the mean of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0) throw new ArgumentException("Median of no values.", nameof(values));
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}

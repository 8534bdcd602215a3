using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recsys.Cli.Bench;
using Recsys.Engine.Checkpoints;
using Recsys.Engine.Core;
using Recsys.Kernels.Common;
using Spectre.Console;

namespace Recsys.Cli;

/// <summary>`recsys bench`: the peer's workloads W1–W8 through the engine, optionally side by side with a peer results.json.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var workloads = new Option<string>("--workloads") { Description = "Comma-separated subset of W1..W8.", DefaultValueFactory = _ => string.Join(',', Workloads.All) };
        var peer = new Option<string?>("--peer") { Description = "The peer's results.json: adds engine/peer speed ratios (> 1 = engine faster)." };
        var peerConfig = new Option<string>("--peer-config") { Description = "Which peer configuration to compare with: best | tuned | stock.", DefaultValueFactory = _ => "best" };
        var json = new Option<string?>("--json") { Description = "Write results (summary, details, ratios) as JSON to this file." };
        var quick = new Option<bool>("--quick") { Description = "Tiny sizes and short timing: a smoke test, numbers meaningless." };
        var threads = new Option<int>("--threads") { Description = "CPU threads for kernels.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var device = new Option<string>("--device") { Description = "Device: cpu | gpu (CUDA) | ilgpu-cpu (the GPU kernels on the CPU).", DefaultValueFactory = _ => "cpu" };
        var profile = new Option<bool>("--profile") { Description = "Also print where the W6 step's time goes, per op (forward, backward, optimizer)." };
        var w1Rows = new Option<int?>("--w1-rows") { Description = "Rows per W1 table (default 100,000): table-size sweeps from cache-resident to DRAM-bound." };
        var w1Tables = new Option<int?>("--w1-tables") { Description = "Number of W1 tables (default 26)." };
        var peerCommand = new Option<string?>("--peer-command")
        {
            Description = "A command that runs the peer for one workload, called as 'CMD --workloads W --out FILE' right before or after "
                + "each engine workload (alternating), so each ratio compares runs made seconds apart.",
        };
        var rounds = new Option<int>("--rounds") { Description = "With --peer-command: repeat the interleaved runs this many times; ratios are the median over rounds.", DefaultValueFactory = _ => 1 };
        var cmd = new Command("bench", "Time the workloads W1–W8 (same shapes and protocol as the libtorch peer).")
        {
            workloads, peer, peerConfig, peerCommand, rounds, json, quick, threads, device, profile, w1Rows, w1Tables,
        };
        cmd.SetAction(pr =>
        {
            using var dev = Device.Parse(pr.GetValue(device)!);
            KernelParallelism.MaxThreads = Options.Threads(pr.GetValue(threads));
            var ids = pr.GetValue(workloads)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToUpperInvariant()).ToArray();
            if (ids.Length == 0)
                throw new ArgumentException($"--workloads: expected some of {string.Join(",", Workloads.All)}, got '{pr.GetValue(workloads)}'.");
            foreach (var id in ids)
                if (!Workloads.All.Contains(id)) throw new ArgumentException($"--workloads: unknown workload '{id}', expected some of {string.Join(",", Workloads.All)}.");
            string? peerCmd = pr.GetValue(peerCommand);
            int roundCount = pr.GetValue(rounds);
            if (peerCmd is not null && pr.GetValue(peer) is not null)
                throw new ArgumentException("--peer and --peer-command: give one of them (the peer's results file, or a command that runs the peer beside each workload).");
            if (roundCount < 1) throw new ArgumentException($"--rounds: expected a positive integer, got {roundCount}.");
            if (roundCount > 1 && peerCmd is null)
                throw new ArgumentException($"--rounds {roundCount}: rounds repeat the interleaved runs of --peer-command, which was not given.");
            string config = pr.GetValue(peerConfig)!;
            // Checked before any workload runs: a run can take many minutes, and its results must not be lost at the end.
            if (pr.GetResult(peerConfig) is { Implicit: false } && pr.GetValue(peer) is null && peerCmd is null)
                throw new ArgumentException($"--peer-config {config}: it selects the peer configuration to compare with, which needs --peer or --peer-command.");
            string? jsonPath = pr.GetValue(json);
            if (jsonPath is not null) OutputFile.Check("--json", jsonPath);
            Dictionary<string, double>? peerSummary = pr.GetValue(peer) is { } peerPath ? PeerComparison.ReadPeer(peerPath, config) : null;

            bool isQuick = pr.GetValue(quick);
            BenchProtocol.Scale = isQuick ? 0.05 : 1.0;
            if (pr.GetValue(w1Rows) is < 1) throw new ArgumentException($"--w1-rows: expected a positive integer, got {pr.GetValue(w1Rows)}.");
            if (pr.GetValue(w1Tables) is < 1) throw new ArgumentException($"--w1-tables: expected a positive integer, got {pr.GetValue(w1Tables)}.");
            var w = new Workloads(isQuick, line => Console.Error.WriteLine(line))
            {
                Profile = pr.GetValue(profile), W1Rows = pr.GetValue(w1Rows), W1Tables = pr.GetValue(w1Tables), Device = dev,
            };
            if (w.Tiny) Console.Error.WriteLine($"bench: quick on '{dev.Name}' uses tiny shapes (batch 32, 4 tables, dim 8): a smoke test, not a measurement.");
            double probeStart = CoreToCoreProbe.RoundTripNs();
            if (double.IsFinite(probeStart)) Console.Error.WriteLine($"bench: core-to-core round trip {probeStart:F0} ns at the start");
            var pairs = new List<InterleavedComparison.Pair>();
            if (peerCmd is null)
            {
                foreach (var id in ids) w.Run(id);
            }
            else
            {
                for (int round = 1; round <= roundCount; round++)
                    for (int i = 0; i < ids.Length; i++)
                    {
                        // Who goes first alternates, so a drift during the pair does not always favour the same side.
                        bool peerFirst = (round + i) % 2 == 1;
                        Dictionary<string, double>? peerValues = null;
                        if (peerFirst) peerValues = RunPeer(peerCmd, ids[i], config, round, roundCount);
                        w.Run(ids[i]);
                        var engineValues = w.Summary.Where(kv => kv.Key.StartsWith(ids[i] + "_", StringComparison.Ordinal))
                            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
                        peerValues ??= RunPeer(peerCmd, ids[i], config, round, roundCount);
                        pairs.Add(new InterleavedComparison.Pair(round, ids[i], peerFirst, engineValues, peerValues));
                    }
                // The summary is the engine's median over the rounds.
                foreach (var (k, v) in InterleavedComparison.EngineMedians(pairs)) w.Summary[k] = v;
            }

            var output = new JsonObject
            {
                ["harness"] = "recsys bench",
                ["generated_utc"] = DateTime.UtcNow.ToString("O"),
                ["threads"] = KernelParallelism.MaxThreads,
                ["quick"] = isQuick,
                ["device"] = dev.Name,
                ["tiny_shapes"] = w.Tiny,
                ["env"] = new JsonObject
                {
                    ["dotnet"] = Environment.Version.ToString(), ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
                    ["cpu_count"] = Environment.ProcessorCount,
                    ["vector512"] = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated,
                    ["vector256"] = System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated,
                    // Bimodal on a virtualised host (~50-140 or ~300-600 ns): latency-bound workloads (random row updates,
                    // small-batch steps) are up to 2x slower in the second mode. Keyed by workload: measured right after it.
                    ["core_to_core_round_trip_ns_start"] = double.IsFinite(probeStart) ? probeStart : null,
                    ["core_to_core_round_trip_ns_after"] = new JsonObject(w.CoreToCoreAfter.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(Math.Round(kv.Value))))),
                },
                ["summary"] = new JsonObject(w.Summary.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(Math.Round(kv.Value, 5))))),
                ["workloads"] = w.Details,
            };

            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 120);
            var table = new Table().AddColumn("metric").AddColumn(new TableColumn("engine").RightAligned());
            if (pairs.Count > 0)
            {
                var rows = InterleavedComparison.Aggregate(pairs);
                table.AddColumn(new TableColumn("peer").RightAligned()).AddColumn(new TableColumn("ratio (>1 = faster)").RightAligned())
                    .AddColumn(new TableColumn($"range over {roundCount} round{(roundCount == 1 ? "" : "s")}").RightAligned());
                foreach (var r in rows) table.AddRow(r.Metric, $"{r.Engine:G4}", $"{r.Peer:G4}", $"{r.Ratio:F2}", $"{r.RatioMin:F2}–{r.RatioMax:F2}");
                InterleavedComparison.AddToJson(output, rows, pairs, peerCmd!, config, roundCount);
            }
            else if (peerSummary is not null)
            {
                var rows = PeerComparison.Compare(w.Summary, peerSummary);
                table.AddColumn(new TableColumn("peer").RightAligned()).AddColumn(new TableColumn("ratio (>1 = faster)").RightAligned());
                foreach (var r in rows) table.AddRow(r.Metric, $"{r.Engine:G4}", $"{r.Peer:G4}", $"{r.Ratio:F2}");
                var worst = PeerComparison.WorstPerWorkload(rows);
                output["ratios"] = new JsonObject(worst.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(Math.Round(kv.Value, 4)))));
                output["ratio_rows"] = new JsonArray(rows.Select(r => (JsonNode?)new JsonObject
                {
                    ["metric"] = r.Metric, ["engine"] = r.Engine, ["peer"] = r.Peer, ["peer_key"] = r.PeerKey, ["ratio"] = r.Ratio,
                }).ToArray());
            }
            else
            {
                foreach (var (k, v) in w.Summary) table.AddRow(k, $"{v:G4}");
            }
            AnsiConsole.Write(table);
            if (jsonPath is not null)
                AtomicFile.WriteAllText(jsonPath, output.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return cmd;
    }

    private static Dictionary<string, double> RunPeer(string command, string workload, string config, int round, int rounds)
    {
        Console.Error.WriteLine($"bench: peer {workload} (round {round} of {rounds}): {command} --workloads {workload}");
        return PeerCommand.Run(command, workload, config);
    }
}

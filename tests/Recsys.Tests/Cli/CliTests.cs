using System.CommandLine;
using System.Text.Json.Nodes;
using NUnit.Framework;
using Recsys.Cli;
using Recsys.Tests.Support;

namespace Recsys.Tests.Cli;

/// <summary>End-to-end runs of the `recsys` command through its real parser and actions.</summary>
[NonParallelizable]
public class CliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "recsys-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Out, string Err) Run(params string[] args) => CliHarness.Run(args);

    private string WriteCriteo(int rows, int seed, string name = "train.txt") => CliHarness.WriteCriteo(_dir, rows, seed, name);

    [Test]
    public void Train_CriteoFileWithOut_WritesMetricsAndCheckpointThatEvalReloads()
    {
        var data = WriteCriteo(3000, 1);
        var outDir = Path.Combine(_dir, "run");
        var (code, _, err) = Run("train", "--data", data, "--epochs", "2", "--batch-size", "64", "--lr", "0.01", "--out", outDir, "--quiet");
        Assert.That(code, Is.EqualTo(0), err);
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "metrics.json")))!;
        foreach (var key in new[] { "auc", "logloss", "ne", "examples_per_second", "train_seconds" })
            Assert.That(metrics[key], Is.Not.Null, key);
        Assert.That(metrics["auc"]!.GetValue<double>(), Is.GreaterThan(0.7), "the planted signal is strong");
        Assert.That(File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")), Is.Not.Empty);
        Assert.That(File.Exists(Path.Combine(outDir, "model.safetensors")));
        Assert.That(File.Exists(Path.Combine(outDir, "config.json")));
        Assert.That(Directory.GetFiles(outDir).Where(f => f.Contains(".tmp")), Is.Empty, "no temporary files left behind");

        var evalOut = Path.Combine(_dir, "eval.json");
        (code, _, err) = Run("eval", "--checkpoint", outDir, "--data", data, "--out", evalOut);
        Assert.That(code, Is.EqualTo(0), err);
        var eval = JsonNode.Parse(File.ReadAllText(evalOut))!;
        Assert.That(eval["auc"]!.GetValue<double>(), Is.GreaterThan(0.7));
        Assert.That(eval["rows"]!.GetValue<int>(), Is.EqualTo(3000));
    }

    [Test]
    public void Train_FoldsOption_ReportsMeanAndStd()
    {
        var data = WriteCriteo(1500, 2);
        var outDir = Path.Combine(_dir, "cv");
        var (code, _, err) = Run("train", "--data", data, "--folds", "3", "--batch-size", "64", "--lr", "0.01", "--model", "dcnv2", "--out", outDir, "--quiet");
        Assert.That(code, Is.EqualTo(0), err);
        var cv = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "metrics.json")))!["cross_validation"]!;
        Assert.That(cv["folds"]!.GetValue<int>(), Is.EqualTo(3));
        Assert.That(cv["auc"]!["std"]!.GetValue<double>(), Is.GreaterThanOrEqualTo(0));
        Assert.That(cv["auc"]!["mean"]!.GetValue<double>(), Is.GreaterThan(0.6));
    }

    [TestCase("--optimizer", "rmsprop", "--optimizer")]
    [TestCase("--model", "wide", "--model")]
    [TestCase("--batch-size", "0", "batch size")]
    [TestCase("--test-fraction", "1.5", "test fraction")]
    [TestCase("--threads", "0", "--threads")]
    [TestCase("--device", "tpu", "device")]
    public void Train_BadArgument_OneClearLineAndNonZeroExit(string option, string value, string mentioned)
    {
        var (code, _, err) = Run("train", option, value, "--synthetic-rows", "100", "--quiet");
        Assert.That(code, Is.Not.EqualTo(0));
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), err);
        Assert.That(lines[0], Does.Contain(mentioned));
        Assert.That(err, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public void Train_UnknownOption_UsageErrorExit2()
    {
        var (code, _, err) = Run("train", "--frobnicate");
        Assert.That(code, Is.EqualTo(CliRunner.ExitUsage));
        Assert.That(err, Does.Contain("--frobnicate"));
    }

    [Test]
    public void Train_MissingDataFile_NamesThePath()
    {
        var missing = Path.Combine(_dir, "nope.txt");
        var (code, _, err) = Run("train", "--data", missing, "--quiet");
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain(missing));
    }

    [Test]
    public void Train_MalformedLine_ReportsLineNumber()
    {
        var data = WriteCriteo(50, 3);
        var lines = File.ReadAllLines(data);
        lines[16] = "1\t2\t3"; // line 17: 3 fields
        File.WriteAllLines(data, lines);
        var (code, _, err) = Run("train", "--data", data, "--quiet");
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain("17"));
    }

    [Test]
    public void Train_OutIsAFile_ClearError_FileLeftAlone()
    {
        var file = Path.Combine(_dir, "a-file");
        File.WriteAllText(file, "x");
        var (code, _, err) = Run("train", "--synthetic-rows", "200", "--out", file, "--quiet");
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain($"output directory '{file}': a file of that name exists"));
        Assert.That(File.ReadAllText(file), Is.EqualTo("x"), "the file is left alone");
    }

    [Test]
    public void Eval_OutIsADirectory_FailsBeforeEvaluating()
    {
        var dir = Path.Combine(_dir, "a-directory");
        Directory.CreateDirectory(dir);
        // The checkpoint does not exist either: --out is checked first.
        var (code, _, err) = Run("eval", "--checkpoint", Path.Combine(_dir, "none"), "--data", WriteCriteo(10, 4), "--out", dir);
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain($"--out {dir}: is a directory; expected a file path"));
    }

    [Test]
    public void Eval_MissingCheckpoint_ClearError()
    {
        var data = WriteCriteo(10, 4);
        var (code, _, err) = Run("eval", "--checkpoint", Path.Combine(_dir, "none"), "--data", data);
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain("checkpoint"));
    }

    [Test]
    public void Eval_TruncatedCheckpoint_ClearError()
    {
        var data = WriteCriteo(400, 5);
        var outDir = Path.Combine(_dir, "run");
        Assert.That(Run("train", "--data", data, "--batch-size", "64", "--out", outDir, "--quiet").Code, Is.EqualTo(0));
        var st = Path.Combine(outDir, "model.safetensors");
        var bytes = File.ReadAllBytes(st);
        File.WriteAllBytes(st, bytes.AsSpan(0, bytes.Length - 100).ToArray());
        var (code, _, err) = Run("eval", "--checkpoint", outDir, "--data", data);
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain("model.safetensors"));
    }

    [Test]
    public void Bench_QuickWithPeer_WritesRatiosForEachWorkload()
    {
        var peer = Path.Combine(_dir, "peer.json");
        File.WriteAllText(peer, """{"summary": {"W2_mlp_ms": {"best": 50.0}, "W3_interaction_ms": {"best": 18.0}, "W7_kmeans_step_ms": {"best": 70.0}}}""");
        var json = Path.Combine(_dir, "bench.json");
        var (code, _, err) = Run("bench", "--quick", "--workloads", "W2,W3,W7", "--peer", peer, "--json", json);
        Assert.That(code, Is.EqualTo(0), err);
        var o = JsonNode.Parse(File.ReadAllText(json))!;
        foreach (var w in new[] { "W2", "W3", "W7" })
            Assert.That(o["ratios"]![w]!.GetValue<double>(), Is.GreaterThan(0), w);
        Assert.That(o["summary"]!["W2_mlp_GFLOPs"]!.GetValue<double>(), Is.GreaterThan(0));
        if (Environment.ProcessorCount >= 2)
        {
            // The host's core-to-core latency, at the start and after each workload, to tell a slow host from a slow engine.
            Assert.That(o["env"]!["core_to_core_round_trip_ns_start"]!.GetValue<double>(), Is.GreaterThan(0));
            foreach (var w in new[] { "W2", "W3", "W7" })
                Assert.That(o["env"]!["core_to_core_round_trip_ns_after"]![w]!.GetValue<double>(), Is.GreaterThan(0), w);
        }
    }

    /// <summary>
    /// A stand-in for the peer harness: answers 'SCRIPT --workloads W --out FILE' with a results file of one configuration
    /// ("tuned", as run.sh --configs tuned writes), and logs each call. Exits 3 for a workload named in <paramref name="failFor"/>.
    /// </summary>
    private string WriteFakePeer(string failFor = "none")
    {
        var script = Path.Combine(_dir, "peer.sh");
        var log = Path.Combine(_dir, "peer-calls.log");
        File.WriteAllText(script, """
            #!/usr/bin/env bash
            while [ $# -gt 0 ]; do case "$1" in --workloads) w="$2"; shift 2 ;; --out) out="$2"; shift 2 ;; *) shift ;; esac; done
            echo "$w" >> '@LOG@'
            if [ "$w" = "@FAIL@" ]; then echo "peer exploded on $w" >&2; exit 3; fi
            case "$w" in
              W3) echo '{"summary": {"W3_interaction_ms": {"tuned": 18.0}}}' > "$out" ;;
              W7) echo '{"summary": {"W7_kmeans_step_ms": {"tuned": 70.0}}}' > "$out" ;;
            esac
            echo '{"printed": "to stdout too"}'
            """.Replace("@LOG@", log).Replace("@FAIL@", failFor).Replace("\r\n", "\n"));
        return script;
    }

    [Test]
    public void Bench_PeerCommand_RunsPeerBesideEachWorkloadPerRound_MedianRatios()
    {
        var script = WriteFakePeer();
        var json = Path.Combine(_dir, "bench.json");
        var (code, _, err) = Run("bench", "--quick", "--workloads", "W3,W7", "--peer-command", $"bash {script}", "--rounds", "2", "--json", json);
        Assert.That(code, Is.EqualTo(0), err);
        // One peer call per workload per round, in the workloads' order.
        Assert.That(File.ReadAllLines(Path.Combine(_dir, "peer-calls.log")), Is.EqualTo(new[] { "W3", "W7", "W3", "W7" }));
        var o = JsonNode.Parse(File.ReadAllText(json))!;
        var pairs = o["interleaved"]!["pairs"]!.AsArray();
        Assert.That(pairs.Count, Is.EqualTo(4));
        // Who runs first alternates from pair to pair.
        Assert.That(pairs.Select(p => p!["peer_first"]!.GetValue<bool>()), Is.EqualTo(new[] { true, false, false, true }));
        foreach (var row in o["ratio_rows"]!.AsArray())
        {
            var perRound = row!["ratio_per_round"]!.AsArray().Select(x => x!.GetValue<double>()).OrderBy(x => x).ToArray();
            Assert.That(perRound.Length, Is.EqualTo(2));
            // "best" of a one-configuration peer run is its only configuration.
            double peerMs = row["metric"]!.GetValue<string>() == "W3_interaction_ms" ? 18.0 : 70.0;
            Assert.That(row["peer"]!.GetValue<double>(), Is.EqualTo(peerMs));
            Assert.That(row["ratio"]!.GetValue<double>(), Is.EqualTo((perRound[0] + perRound[1]) / 2).Within(1e-9));
        }
        // Each round's ratio is that round's peer time over that round's engine time.
        var w3 = pairs.Where(p => p!["workload"]!.GetValue<string>() == "W3").Select(p => p!["engine"]!["W3_interaction_ms"]!.GetValue<double>()).ToArray();
        var w3Row = o["ratio_rows"]!.AsArray().First(r => r!["metric"]!.GetValue<string>() == "W3_interaction_ms")!;
        Assert.That(w3Row["ratio_per_round"]!.AsArray().Select(x => x!.GetValue<double>()), Is.EqualTo(w3.Select(e => 18.0 / e)).Within(1e-6));
        Assert.That(o["ratios"]!["W3"]!.GetValue<double>(), Is.GreaterThan(0));
        Assert.That(o["ratios"]!["W7"]!.GetValue<double>(), Is.GreaterThan(0));
    }

    [Test]
    public void Bench_PeerCommandFails_ClearErrorWithItsOutput()
    {
        var script = WriteFakePeer(failFor: "W7");
        var (code, _, err) = Run("bench", "--quick", "--workloads", "W3,W7", "--peer-command", $"bash {script}");
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain("--peer-command failed for W7 (exit code 3)"));
        Assert.That(err, Does.Contain("peer exploded on W7"));
    }

    [Test]
    public void Bench_PeerCommandWritesNothing_ClearError()
    {
        var (code, _, err) = Run("bench", "--quick", "--workloads", "W3", "--peer-command", "true");
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain("wrote no results for W3"));
    }

    [Test]
    public void Bench_PeerCommandHangs_StoppedWithClearError()
    {
        var saved = Recsys.Cli.Bench.PeerCommand.Timeout;
        Recsys.Cli.Bench.PeerCommand.Timeout = TimeSpan.FromSeconds(2);
        try
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var (code, _, err) = Run("bench", "--quick", "--workloads", "W3", "--peer-command", "sleep 600;");
            Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
            Assert.That(err, Does.Contain("did not finish W3 within"));
            Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(120), "stopped at the timeout, not after the command");
        }
        finally { Recsys.Cli.Bench.PeerCommand.Timeout = saved; }
    }

    [TestCase("--rounds", "0", "--peer-command", "true", "--rounds: expected a positive integer, got 0")]
    [TestCase("--rounds", "2", "--workloads", "W3", "--rounds 2: rounds repeat the interleaved runs of --peer-command")]
    [TestCase("--peer", "p.json", "--peer-command", "true", "give one of them")]
    public void Bench_PeerCommandOptions_Misused_ClearError(string a, string b, string c, string d, string message)
    {
        var (code, _, err) = Run("bench", "--quick", a, b, c, d);
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain(message));
    }

    [Test]
    public void Bench_BadOptions_FailBeforeAnyWorkloadRuns()
    {
        string dirAsFile = Path.Combine(_dir, "a-directory");
        Directory.CreateDirectory(dirAsFile);
        string fileAsParent = Path.Combine(_dir, "a-file");
        File.WriteAllText(fileAsParent, "x");
        var cases = new (string[] Args, string Message)[]
        {
            (new[] { "--workloads", "" }, "--workloads: expected some of W1,W2,W3,W4,W5,W6,W7,W8, got ''"),
            (new[] { "--workloads", " , " }, "--workloads: expected some of"),
            (new[] { "--peer-config", "tuned" }, "--peer-config tuned: it selects the peer configuration to compare with, which needs --peer or --peer-command"),
            (new[] { "--json", dirAsFile }, "is a directory; expected a file path"),
            (new[] { "--json", Path.Combine(fileAsParent, "out.json") }, "cannot create its directory"),
        };
        foreach (var (args, message) in cases)
        {
            var (code, _, err) = Run(new[] { "bench", "--quick" }.Concat(args).ToArray());
            Assert.That(code, Is.EqualTo(CliRunner.ExitFailure), string.Join(" ", args));
            Assert.That(err, Does.Contain(message), string.Join(" ", args));
            // Nothing ran: the bench logs each workload it times.
            Assert.That(err, Does.Not.Contain("W1 ").And.Not.Contain("W2 MLP").And.Not.Contain("W3 dot"), string.Join(" ", args));
        }
    }

    /// <summary>Runs <c>bench --quick --profile</c> on one workload; returns that workload's JSON details and the log.</summary>
    private (JsonNode Details, string Err) BenchProfile(string workload)
    {
        var json = Path.Combine(_dir, "bench.json");
        var (code, _, err) = Run("bench", "--quick", "--workloads", workload, "--profile", "--json", json);
        Assert.That(code, Is.EqualTo(0), err);
        return (JsonNode.Parse(File.ReadAllText(json))!["workloads"]![workload]!, err);
    }

    [Test]
    public void Bench_ProfileW6_ListsEveryOpOfTheDlrmStep()
    {
        var (w6, err) = BenchProfile("W6");
        var profile = w6["b4096_profile"]!.AsArray();
        var ops = profile.Select(r => r!["op"]!.GetValue<string>()).ToArray();
        Assert.That(ops, Is.SupersetOf(new[] { "Linear", "EmbeddingBags", "DotInteraction", "BceWithLogits", "optimizer (dense)" }));
        Assert.That(profile.Sum(r => r!["share"]!.GetValue<double>()), Is.EqualTo(1.0).Within(1e-6));
        Assert.That(profile.First(r => r!["op"]!.GetValue<string>() == "EmbeddingBags")!["backward_ms_per_step"]!.GetValue<double>(), Is.GreaterThan(0));
        // The same time per op and shapes: every Linear layer its own row, adding up to the Linear row above.
        var byShape = w6["b4096_profile_by_shape"]!.AsArray();
        var linears = byShape.Where(r => r!["op"]!.GetValue<string>() == "Linear").ToArray();
        Assert.That(linears.Select(r => r!["shapes"]!.GetValue<string>()).Distinct().Count(), Is.EqualTo(6), "one row per Linear shape (two layers share 512 → 256)");
        Assert.That(linears.Sum(r => r!["calls_per_step"]!.GetValue<double>()), Is.EqualTo(7.0), "the DLRM's seven Linear layers");
        double Total(IEnumerable<JsonNode?> rows) => rows.Sum(r => r!["forward_ms_per_step"]!.GetValue<double>() + r!["backward_ms_per_step"]!.GetValue<double>());
        Assert.That(Total(linears), Is.EqualTo(Total(profile.Where(r => r!["op"]!.GetValue<string>() == "Linear"))).Within(1e-9));
        Assert.That(byShape.Sum(r => r!["share"]!.GetValue<double>()), Is.EqualTo(1.0).Within(1e-6));
        Assert.That(err, Does.Contain("by op and shapes"));
    }

    [Test]
    public void Bench_ProfileW2_ListsEachLayerOfTheMlp()
    {
        var (w2, err) = BenchProfile("W2");
        var rows = w2["profile"]!.AsArray();
        // The top MLP 415-512-512-256-1 (--quick: batch 256): four Linear layers, each its own row, one call a step, both
        // directions timed.
        Assert.That(rows.Select(r => r!["shapes"]!.GetValue<string>()).ToArray(), Is.EquivalentTo(new[]
            { "[256, 415] → [256, 512]", "[256, 512] → [256, 512]", "[256, 512] → [256, 256]", "[256, 256] → [256, 1]" }));
        foreach (var r in rows)
        {
            Assert.That(r!["op"]!.GetValue<string>(), Is.EqualTo("Linear"));
            Assert.That(r["calls_per_step"]!.GetValue<double>(), Is.EqualTo(1.0));
            Assert.That(r["forward_ms_per_step"]!.GetValue<double>(), Is.GreaterThan(0));
            Assert.That(r["backward_ms_per_step"]!.GetValue<double>(), Is.GreaterThan(0));
        }
        Assert.That(rows.Sum(r => r!["share"]!.GetValue<double>()), Is.EqualTo(1.0).Within(1e-6));
        Assert.That(err, Does.Contain("W2 batch 256: time per step by layer"));
    }

    [Test]
    public void Bench_W1TableSweepOptions_RecordedInDetails()
    {
        var json = Path.Combine(_dir, "bench.json");
        var (code, _, err) = Run("bench", "--quick", "--workloads", "W1", "--w1-rows", "3000", "--w1-tables", "2", "--json", json);
        Assert.That(code, Is.EqualTo(0), err);
        var w1 = JsonNode.Parse(File.ReadAllText(json))!["workloads"]!["W1"]!;
        Assert.That(w1["rows_per_table"]!.GetValue<int>(), Is.EqualTo(3000));
        Assert.That(w1["tables"]!.GetValue<int>(), Is.EqualTo(2));
        // Engine-only rows: fused training with the optimizers that coalesce each row's gradient first.
        foreach (var key in new[] { "fused_pf1_train_rowwise_adagrad", "fused_pf32_train_adam" })
            Assert.That(w1[key]!["median_ms"]!.GetValue<double>(), Is.GreaterThan(0), key);
        // Every variant carries the core-to-core round trip measured right before and after it (two CPUs or more).
        if (Environment.ProcessorCount >= 2)
            foreach (var key in new[] { "fused_pf1_forward", "per_table_pf32_train", "fused_pf32_train_adam" })
                foreach (var side in new[] { "before", "after" })
                    Assert.That(w1[key]![$"core_to_core_round_trip_ns_{side}"]!.GetValue<double>(), Is.GreaterThan(0), $"{key} {side}");
    }

    [Test]
    public void Bench_UnknownWorkload_ClearError()
    {
        var (code, _, err) = Run("bench", "--workloads", "W9");
        Assert.That(code, Is.EqualTo(CliRunner.ExitFailure));
        Assert.That(err, Does.Contain("W9"));
    }
}

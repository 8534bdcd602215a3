using System.Text.Json.Nodes;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Models;
using Recsys.Engine.Nn;
using Recsys.Engine.Operations;
using Recsys.Engine.Training;
using Recsys.Kernels.Clustering;
using Recsys.Kernels.Common;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Kernels.Gpu;

namespace Recsys.Cli.Bench;

/// <summary>
/// The workloads W1–W8 of the libtorch peer (shapes and definitions from its README), run through the
/// engine. Each returns headline metrics under the peer's summary keys plus per-variant details.
/// <c>quick</c> shrinks every size for smoke tests (numbers then mean nothing).
/// </summary>
public sealed class Workloads
{
    private readonly bool _quick;
    private readonly Action<string> _log;
    public SortedDictionary<string, double> Summary { get; } = new(StringComparer.Ordinal);
    public JsonObject Details { get; } = new();

    public Workloads(bool quick, Action<string> log)
    {
        _quick = quick;
        _log = log;
    }

    /// <summary>Where the workloads run (W7 calls the k-means GPU kernels directly on a GPU device).</summary>
    public Device Device { get; init; } = Device.Cpu;

    /// <summary>
    /// Quick runs on ILGPU's CPU accelerator (which simulates every GPU thread) shrink the shapes further, to a smoke test
    /// that finishes in seconds: batch 32, 4 tables of 1,000 rows, dim 8, MLP widths of 8 to 16 (W5: batch 8, 5 tokens, d 8; W7: 2,000 points, 16 centroids, d 8).
    /// </summary>
    public bool Tiny => _quick && Device.IsGpu && Device.Gpu.Backend == GpuBackend.IlgpuCpu;

    private int Batch => Tiny ? 32 : _quick ? 256 : 4096;
    private int Rows => Tiny ? 1_000 : _quick ? 10_000 : 100_000;
    private int Tables => Tiny ? 4 : 26;

    /// <summary>W1 table rows and table count (default: the peer's 26 x 100,000), for the table-size sweep.</summary>
    public int? W1Rows { get; init; }
    public int? W1Tables { get; init; }

    /// <summary>Profile W2 layer by layer, W5 per op and the W6 step per op (forward, backward incl. fused sparse updates, optimizer).</summary>
    public bool Profile { get; init; }
    private int Dim => Tiny ? 8 : 64;

    public static readonly string[] All = { "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8" };

    /// <summary>Core-to-core round trip measured right after each workload ran (see <see cref="CoreToCoreProbe"/>).</summary>
    public Dictionary<string, double> CoreToCoreAfter { get; } = new();

    public void Run(string id)
    {
        CollectGarbage();
        RunWorkload(id);
        double probe = CoreToCoreProbe.RoundTripNs();
        if (double.IsFinite(probe))
        {
            CoreToCoreAfter[id] = probe;
            _log($"{id}: core-to-core round trip after it {probe:F0} ns");
        }
    }

    private void RunWorkload(string id)
    {
        switch (id)
        {
            case "W1": W1(); break;
            case "W2": W2(); break;
            case "W3": W3(); break;
            case "W4": W4(); break;
            case "W5": W5(); break;
            case "W6": W6(); break;
            case "W7": W7(); break;
            case "W8": W8(); break;
            default: throw new ArgumentException($"Unknown workload '{id}': expected one of {string.Join(", ", All)}.");
        }
    }

    /// <summary>
    /// Frees the previous workload's tables and buffers (hundreds of MB) before the next one allocates its own, so no
    /// background collection of them runs on the second core while a workload is being timed.
    /// </summary>
    private static void CollectGarbage()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
    }

    private JsonObject Detail(StepStats s, params (string Key, double Value)[] extra)
    {
        var o = new JsonObject
        {
            ["median_ms"] = s.MedianMs, ["min_ms"] = s.MinMs, ["mean_ms"] = s.MeanMs, ["p10_ms"] = s.P10Ms,
            ["p90_ms"] = s.P90Ms, ["max_ms"] = s.MaxMs, ["iters"] = s.Iters, ["warmup_iters"] = s.WarmupIters, ["warmup_s"] = Math.Round(s.WarmupSeconds, 3),
        };
        foreach (var (k, v) in extra) if (double.IsFinite(v)) o[k] = v; // a probe that could not run (NaN) is left out
        return o;
    }

    /// <summary>
    /// A measurement with the core-to-core round trip taken right before and right after it. W1's per-table training runs
    /// 2.2x slower while the host's transfers between the two cores are slow (~300 ns round trips against ~65–95), and
    /// the host can switch within seconds, so a probe per variant tells a slow phase from a slow engine.
    /// </summary>
    private static ProbedStats Probed(Action step)
    {
        double before = CoreToCoreProbe.RoundTripNs();
        var s = BenchProtocol.Measure(step);
        return new ProbedStats(s, before, CoreToCoreProbe.RoundTripNs());
    }

    private readonly record struct ProbedStats(StepStats Stats, double ProbeBefore, double ProbeAfter)
    {
        public override string ToString() =>
            $"{Stats.MedianMs:F2} ms" + (double.IsFinite(ProbeBefore) ? $" [core-to-core {ProbeBefore:F0}/{ProbeAfter:F0} ns]" : "");
    }

    private Tensor Random(Shape shape, Rng rng, bool requiresGrad = false)
    {
        var t = new Tensor(shape, requiresGrad);
        rng.FillUniform(t.Span, -1, 1);
        if (!Device.IsGpu) return t;
        var d = new Tensor(shape, Device, requiresGrad);
        d.CopyFrom(t.Span);
        return d;
    }

    /// <summary>K = 4 pre-generated jagged batches of uniform ids, pooling factor <paramref name="pf"/>, table-major.</summary>
    private KeyedJagged[] IdBatches(int pf, Rng rng, int tables, int batch, int rows)
    {
        var result = new KeyedJagged[4];
        for (int k = 0; k < 4; k++)
        {
            int n = tables * batch * pf;
            var values = new int[n];
            var offsets = new int[tables * batch + 1];
            for (int i = 0; i < n; i++) values[i] = rng.NextInt(rows);
            for (int i = 0; i <= tables * batch; i++) offsets[i] = i * pf;
            result[k] = new KeyedJagged(tables, batch, values, offsets);
        }
        return result;
    }

    private EmbeddingBagCollection Collection(string prefix, int tables, int rows, Rng rng)
    {
        var c = new EmbeddingBagCollection(Enumerable.Range(0, tables).Select(t => new EmbeddingTableConfig($"{prefix}{t}", rows, Dim)).ToArray(), PoolingMode.Sum, rng);
        c.To(Device);
        return c;
    }

    // W1: 26 tables x rows x 64, batch 4096, pooling 1 and 32; forward, and forward + backward + fused sparse SGD(0.01).
    private void W1()
    {
        var rng = new Rng(1);
        int rows = W1Rows ?? Rows, tables = W1Tables ?? Tables;
        var fused = Collection("t", tables, rows, rng);
        fused.Optimizer = new SparseSgd(0.01f);
        // per_table: one single-table collection per feature, called one after another (facebookresearch/dlrm style).
        var perTable = Enumerable.Range(0, tables).Select(t => Collection($"p{t}_", 1, rows, rng)).ToArray();
        foreach (var c in perTable) c.Optimizer = new SparseSgd(0.01f);
        var w1 = new JsonObject();
        foreach (int pf in new[] { 1, 32 })
        {
            var batches = IdBatches(pf, rng, tables, Batch, rows);
            var single = batches.Select(b => SplitTables(b)).ToArray();
            var upstream = Random(new Shape(Batch, tables, Dim), rng);
            // per_table: one upstream gradient per table, as the peer (torch.autograd.backward over the 26 outputs).
            var upstreamPer = Enumerable.Range(0, tables).Select(_ => Random(new Shape(Batch, 1, Dim), rng)).ToArray();
            var outsPer = new Tensor[tables];
            double lookups = (double)Batch * tables * pf;
            var tape = new Tape(Device);
            var infer = new Tape(Device) { RecordingEnabled = false };
            int cycle = 0;

            var fwd = Probed(() =>
            {
                infer.Reset();
                fused.Forward(infer, batches[cycle++ & 3]);
            });
            var train = Probed(() =>
            {
                tape.Reset();
                var y = fused.Forward(tape, batches[cycle++ & 3]);
                tape.Backward(y, upstream);
            });
            var fwdPer = Probed(() =>
            {
                infer.Reset();
                var parts = single[cycle++ & 3];
                for (int t = 0; t < tables; t++) perTable[t].Forward(infer, parts[t]);
            });
            var trainPer = Probed(() =>
            {
                tape.Reset();
                var parts = single[cycle++ & 3];
                // All forwards, then one backward from every output (the peer's order): a table's rows are updated
                // after the other tables' lookups, not right after its own.
                for (int t = 0; t < tables; t++) outsPer[t] = perTable[t].Forward(tape, parts[t]);
                tape.Backward(outsPer, upstreamPer);
            });
            // Engine-only: the optimizers whose update needs each row's whole gradient (bucketed coalescing, no peer run).
            var trainAdagrad = TrainWith(new RowwiseAdagrad(0.01f));
            var trainAdam = TrainWith(new SparseAdam(0.001f));
            fused.Optimizer = new SparseSgd(0.01f);
            ProbedStats TrainWith(SparseOptimizer optimizer)
            {
                fused.Optimizer = optimizer;
                return Probed(() =>
                {
                    tape.Reset();
                    var y = fused.Forward(tape, batches[cycle++ & 3]);
                    tape.Backward(y, upstream);
                });
            }
            foreach (var (layout, kind, p) in new[] { ("fused", "fwd", fwd), ("fused", "train", train), ("per_table", "fwd", fwdPer), ("per_table", "train", trainPer),
                         ("fused", "train_rowwise_adagrad", trainAdagrad), ("fused", "train_adam", trainAdam) })
            {
                double perS = lookups / (p.Stats.MedianMs / 1e3);
                Summary[$"W1_{layout}_pf{pf}_{kind}_Mlookups_per_s"] = perS / 1e6;
                Summary[$"W1_{layout}_pf{pf}_{kind}_GBps"] = perS * Dim * 4 / 1e9;
                w1[$"{layout}_pf{pf}_{(kind == "fwd" ? "forward" : kind)}"] = Detail(p.Stats, ("lookups", lookups), ("lookups_per_s", perS),
                    ("bytes_per_s", perS * Dim * 4), ("core_to_core_round_trip_ns_before", p.ProbeBefore), ("core_to_core_round_trip_ns_after", p.ProbeAfter));
            }
            _log($"W1 {tables} x {rows} rows, pf{pf}: fused fwd {fwd}, train {train}; per-table fwd {fwdPer}, train {trainPer}; " +
                 $"fused train with row-wise Adagrad {trainAdagrad}, with Adam {trainAdam}");
        }
        w1["tables"] = tables;
        w1["rows_per_table"] = rows;
        Details["W1"] = w1;
    }

    private static KeyedJagged[] SplitTables(KeyedJagged b)
    {
        var parts = new KeyedJagged[b.Features];
        for (int t = 0; t < b.Features; t++)
        {
            int start = b.Offsets[t * b.BatchSize], end = b.Offsets[(t + 1) * b.BatchSize];
            var values = b.Values.AsSpan(start, end - start).ToArray();
            var offsets = new int[b.BatchSize + 1];
            for (int i = 0; i <= b.BatchSize; i++) offsets[i] = b.Offsets[t * b.BatchSize + i] - start;
            parts[t] = new KeyedJagged(1, b.BatchSize, values, offsets);
        }
        return parts;
    }

    // W2: top MLP 415-512-512-256-1 fwd+bwd at batch 4096, input requires grad, no optimizer step.
    private void W2()
    {
        var rng = new Rng(2);
        int[] sizes = Tiny ? new[] { DotInteraction.OutputDim(Tables, Dim), 16, 16, 8, 1 } : new[] { 415, 512, 512, 256, 1 };
        var mlp = new Mlp("top", sizes, rng, Activation.Relu, Activation.None);
        mlp.To(Device);
        var x = Random(new Shape(Batch, sizes[0]), rng, requiresGrad: true);
        var dy = Random(new Shape(Batch, 1), rng);
        var tape = new Tape(Device);
        void Step()
        {
            tape.Reset();
            x.Grad = null;
            var y = mlp.Forward(tape, x);
            tape.Backward(y, dy);
            foreach (var p in mlp.Parameters()) p.ZeroGrad();
        }
        var s = BenchProtocol.Measure(Step);
        double flops = 0;
        for (int i = 0; i + 1 < sizes.Length; i++) flops += 3.0 * 2 * Batch * sizes[i] * (double)sizes[i + 1];
        Summary["W2_mlp_ms"] = s.MedianMs;
        Summary["W2_mlp_GFLOPs"] = flops / (s.MedianMs / 1e3) / 1e9;
        Details["W2"] = Detail(s, ("gflops", flops / 1e9), ("GFLOPs", Summary["W2_mlp_GFLOPs"]));
        _log($"W2 MLP fwd+bwd: {s.MedianMs:F2} ms, {Summary["W2_mlp_GFLOPs"]:F1} GFLOP/s");
        if (Profile)
        {
            // Layer by layer, to set beside W6's profile: its top MLP has these shapes.
            var profile = new TapeProfile { ByShape = true };
            tape.Profile = profile;
            for (int i = 0; i < 20; i++) { Step(); profile.Steps++; }
            tape.Profile = null;
            Details["W2"]!["profile"] = ProfileByShapeTable(profile, $"W2 batch {Batch}: time per step by layer ({profile.Steps} profiled steps)");
        }
    }

    // W3: dot interaction fwd+bwd, dense [B,64] + emb [B,26,64] -> [B,415].
    private void W3()
    {
        var rng = new Rng(3);
        var dense = Random(new Shape(Batch, Dim), rng, true);
        var emb = Random(new Shape(Batch, Tables, Dim), rng, true);
        var dy = Random(new Shape(Batch, DotInteraction.OutputDim(Tables, Dim)), rng);
        var tape = new Tape(Device);
        var s = BenchProtocol.Measure(() =>
        {
            tape.Reset();
            dense.Grad = null; emb.Grad = null;
            var y = Ops.DotInteraction(tape, dense, emb);
            tape.Backward(y, dy);
        });
        Summary["W3_interaction_ms"] = s.MedianMs;
        Details["W3"] = Detail(s, ("examples_per_s", Batch / (s.MedianMs / 1e3)));
        _log($"W3 dot interaction fwd+bwd: {s.MedianMs:F2} ms");
    }

    // W4: DCNv2 cross network d = 429, 3 full-rank layers, batch 4096, x0 requires grad.
    private void W4()
    {
        var rng = new Rng(4);
        int d = Tiny ? 13 + Tables * Dim : 429;
        var cross = new CrossNet("cross", d, 3, rng);
        cross.To(Device);
        var x0 = Random(new Shape(Batch, d), rng, true);
        var dy = Random(new Shape(Batch, d), rng);
        var tape = new Tape(Device);
        var s = BenchProtocol.Measure(() =>
        {
            tape.Reset();
            x0.Grad = null;
            var y = cross.Forward(tape, x0);
            tape.Backward(y, dy);
            foreach (var p in cross.Parameters()) p.ZeroGrad();
        });
        double flops = 3.0 * 3 * 2 * Batch * d * (double)d;
        Summary["W4_dcnv2_ms"] = s.MedianMs;
        Summary["W4_dcnv2_GFLOPs"] = flops / (s.MedianMs / 1e3) / 1e9;
        Details["W4"] = Detail(s, ("gflops", flops / 1e9));
        _log($"W4 DCNv2 cross fwd+bwd: {s.MedianMs:F2} ms, {Summary["W4_dcnv2_GFLOPs"]:F1} GFLOP/s");
    }

    // W5: self-attention block, batch 1024, 27 tokens, d_model 64, 2 heads, residual + LayerNorm, fwd+bwd.
    private void W5()
    {
        var rng = new Rng(5);
        int b = Tiny ? 8 : _quick ? 64 : 1024, tokens = Tiny ? 5 : 27, dModel = Tiny ? 8 : 64;
        var block = new SelfAttentionInteraction("attn", dModel, 2, rng);
        block.To(Device);
        var x = Random(new Shape(b, tokens, dModel), rng, true);
        var dy = Random(new Shape(b, tokens, dModel), rng);
        var tape = new Tape(Device);
        var s = BenchProtocol.Measure(() =>
        {
            tape.Reset();
            x.Grad = null;
            var y = block.Forward(tape, x);
            tape.Backward(y, dy);
            foreach (var p in block.Parameters()) p.ZeroGrad();
        });
        Summary["W5_attention_ms"] = s.MedianMs;
        Details["W5"] = Detail(s, ("examples_per_s", b / (s.MedianMs / 1e3)));
        _log($"W5 attention block fwd+bwd: {s.MedianMs:F2} ms");
        if (Profile)
        {
            var profile = new TapeProfile();
            tape.Profile = profile;
            for (int i = 0; i < 20; i++)
            {
                tape.Reset();
                x.Grad = null;
                var y = block.Forward(tape, x);
                tape.Backward(y, dy);
                foreach (var p in block.Parameters()) p.ZeroGrad();
                profile.Steps++;
            }
            tape.Profile = null;
            Details["W5"]!["profile"] = ProfileTable(profile, $"W5 batch {b}: time per step by op ({profile.Steps} profiled steps)");
        }
    }

    /// <summary>Random Criteo-shaped batches: dense = log(1 + U[0,1000)), uniform ids, labels Bernoulli(0.25).</summary>
    private Batch[] CriteoBatches(int batch, int rows, Rng rng, int count = 4)
    {
        var result = new Batch[count];
        for (int k = 0; k < count; k++)
        {
            var bt = new Batch();
            bt.Resize(batch, 13, Tables);
            for (int i = 0; i < batch * 13; i++) bt.Dense[i] = (float)Math.Log(1 + rng.Uniform(0, 1000));
            for (int i = 0; i < batch * Tables; i++) bt.Ids[i] = rng.NextInt(rows);
            for (int i = 0; i < batch; i++) bt.Labels[i] = rng.NextDouble() < 0.25 ? 1f : 0f;
            bt.BuildSparseFromIds();
            result[k] = bt;
        }
        return result;
    }

    private ModelConfig W6Config() => new()
    {
        Kind = "dlrm", DenseFeatures = 13, TableRows = Enumerable.Repeat(Rows, Tables).ToArray(), EmbeddingDim = Dim,
        BottomMlp = Tiny ? new[] { 16 } : new[] { 512, 256 }, TopMlp = Tiny ? new[] { 16, 8 } : new[] { 512, 512, 256 },
    };

    // W6: full DLRM training step (SGD lr 0.1 over everything, sparse embedding updates), batch 4096 and 256.
    private void W6()
    {
        var w6 = new JsonObject();
        foreach (int b in new[] { Batch, Tiny ? 16 : _quick ? 32 : 256 })
        {
            CollectGarbage();
            var rng = new Rng(6);
            var model = RankingModel.Create(W6Config(), rng, Device);
            var trainer = new Trainer(model, new TrainingOptions { Optimizer = OptimizerKind.Sgd, LearningRate = 0.1f, BatchSize = b });
            var batches = CriteoBatches(b, Rows, rng);
            int cycle = 0;
            double lossSum = 0;
            double probeBefore = CoreToCoreProbe.RoundTripNs();
            var s = BenchProtocol.Measure(() => lossSum += trainer.TrainStep(batches[cycle++ & 3]));
            double probeAfter = CoreToCoreProbe.RoundTripNs();
            double eps = b / (s.MedianMs / 1e3);
            string key = b == Batch ? "b4096" : "b256";
            // Steady-state managed allocation per step, all threads (the arena should make it ~0): the least of three
            // windows of 20 steps. An allocation made every step shows in all three; a one-off of the runtime does not
            // (a late tier-up of dynamic PGO allocated ~80 bytes in one window; with DOTNET_TieredPGO=0 every window was 0).
            const int allocSteps = 20;
            double allocPerStep = double.MaxValue;
            for (int window = 0; window < 3; window++)
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                for (int i = 0; i < allocSteps; i++) trainer.TrainStep(batches[cycle++ & 3]);
                allocPerStep = Math.Min(allocPerStep, (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)allocSteps);
            }
            if (Profile)
            {
                w6[$"{key}_profile"] = ProfileSteps(trainer, batches, b, out var byShape);
                w6[$"{key}_profile_by_shape"] = byShape;
            }
            Summary[$"W6_dlrm_train_fused_{key}_examples_per_s"] = eps;
            w6[key] = Detail(s, ("examples_per_s", eps), ("mean_sampled_loss", lossSum / cycle), ("allocated_bytes_per_step", allocPerStep),
                ("core_to_core_round_trip_ns_before", probeBefore), ("core_to_core_round_trip_ns_after", probeAfter));
            _log($"W6 DLRM train step batch {b}: {s.MedianMs:F2} ms, {eps:F0} examples/s, {allocPerStep:F0} bytes allocated per step " +
                $"(core-to-core round trip {probeBefore:F0} ns before, {probeAfter:F0} ns after)");
        }
        Details["W6"] = w6;
    }

    /// <summary>
    /// Per-op time of 20 profiled W6 steps: ms per step in forward and backward, and the share of the step; then the same
    /// per op and shapes (each layer its own row), into <paramref name="byShape"/>.
    /// </summary>
    private JsonArray ProfileSteps(Trainer trainer, Batch[] batches, int batch, out JsonArray byShape)
    {
        var profile = new TapeProfile { ByShape = true };
        trainer.Profile = profile;
        for (int i = 0; i < 20; i++) trainer.TrainStep(batches[i & 3]);
        trainer.Profile = null;
        var rows = ProfileTable(profile, $"W6 batch {batch}: time per step by op ({profile.Steps} profiled steps; embedding updates are fused into EmbeddingBags' backward)");
        byShape = ProfileByShapeTable(profile, $"W6 batch {batch}: the same by op and shapes (first input → output; calls per step)");
        return rows;
    }

    /// <summary>Logs a profile as a table per op (ms per step forward and backward, share of the step) and returns it as JSON rows.</summary>
    private JsonArray ProfileTable(TapeProfile profile, string title)
    {
        var ops = profile.Entries.GroupBy(e => e.Op)
            .Select(g => (Op: g.Key, ForwardMs: g.Sum(e => e.ForwardMs), BackwardMs: g.Sum(e => e.BackwardMs)))
            .OrderByDescending(o => o.ForwardMs + o.BackwardMs).ToArray();
        double total = ops.Sum(o => o.ForwardMs + o.BackwardMs);
        var rows = new JsonArray();
        _log(title);
        _log($"  {"op",-22} {"forward ms",11} {"backward ms",12} {"share",7}");
        foreach (var o in ops)
        {
            double f = o.ForwardMs / profile.Steps, bw = o.BackwardMs / profile.Steps, share = (o.ForwardMs + o.BackwardMs) / total;
            _log($"  {o.Op,-22} {f,11:F3} {bw,12:F3} {share,7:P1}");
            rows.Add(new JsonObject { ["op"] = o.Op, ["forward_ms_per_step"] = f, ["backward_ms_per_step"] = bw, ["share"] = share });
        }
        return rows;
    }

    /// <summary>Logs a shape-keyed profile (<see cref="TapeProfile.ByShape"/>) one row per op and shapes, and returns it as JSON rows.</summary>
    private JsonArray ProfileByShapeTable(TapeProfile profile, string title)
    {
        double total = profile.Entries.Sum(e => e.ForwardMs + e.BackwardMs);
        var rows = new JsonArray();
        _log(title);
        _log($"  {"op",-22} {"shapes",-36} {"calls",5} {"forward ms",11} {"backward ms",12} {"share",7}");
        foreach (var e in profile.Entries.OrderByDescending(e => e.ForwardMs + e.BackwardMs))
        {
            double f = e.ForwardMs / profile.Steps, bw = e.BackwardMs / profile.Steps, share = (e.ForwardMs + e.BackwardMs) / total;
            // Phases that are not ops (the optimizer) have no calls or shapes.
            double? calls = e.Calls == 0 ? null : (double)e.Calls / profile.Steps;
            _log($"  {e.Op,-22} {e.Shapes ?? "",-36} {(calls is { } c ? c.ToString("0.#") : ""),5} {f,11:F3} {bw,12:F3} {share,7:P1}");
            rows.Add(new JsonObject
            {
                ["op"] = e.Op, ["shapes"] = e.Shapes, ["calls_per_step"] = calls,
                ["forward_ms_per_step"] = f, ["backward_ms_per_step"] = bw, ["share"] = share,
            });
        }
        return rows;
    }

    // W7: k-means step, 200,000 x 64 points from a 256-component Gaussian mixture, 256 centroids.
    private void W7()
    {
        var rng = new Rng(7);
        int n = Tiny ? 2_000 : _quick ? 20_000 : 200_000, k = Tiny ? 16 : 256, d = Tiny ? 8 : 64;
        var means = new float[k * d];
        rng.FillNormal(means, 0, 3);
        var x = new float[n * d];
        for (int i = 0; i < n; i++)
        {
            int c = rng.NextInt(k);
            for (int p = 0; p < d; p++) x[i * d + p] = means[c * d + p] + (float)rng.Normal();
        }
        var centroids = new float[k * d];
        Array.Copy(x, centroids, k * d);
        var assignment = new int[n];
        var counts = new int[k];
        StepStats s;
        if (Device.IsGpu)
        {
            // The GPU kernels on device copies; each timed step waits for the device. Update scatters with atomics.
            var gpu = Device.Gpu;
            var points = new Tensor(new Shape(n * d), Device);
            points.CopyFrom(x);
            var cents = new Tensor(new Shape(k * d), Device);
            cents.CopyFrom(centroids);
            using var assign = gpu.Accelerator.Allocate1D<int>(n);
            using var cnt = gpu.Accelerator.Allocate1D<int>(k);
            s = BenchProtocol.Measure(() =>
            {
                KMeansGpuKernels.Assign(gpu, points.View, cents.View, n, k, d, assign.View, default);
                KMeansGpuKernels.Update(gpu, points.View, assign.View, n, k, d, cents.View, cnt.View);
                gpu.Synchronize();
            });
        }
        else
        {
            s = BenchProtocol.Measure(() =>
            {
                KMeansKernels.Assign(x, centroids, n, k, d, assignment);
                KMeansKernels.Update(x, assignment, n, k, d, centroids, counts);
            });
        }
        double flops = 2.0 * n * k * d;
        Summary["W7_kmeans_step_ms"] = s.MedianMs;
        Details["W7"] = Detail(s, ("gemm_gflops_per_s", flops / (s.MedianMs / 1e3) / 1e9));
        _log($"W7 k-means step: {s.MedianMs:F2} ms");
    }

    // W8: DLRM inference (forward + sigmoid): batch-1 latency over 64 cycled inputs, batch-4096 throughput.
    private void W8()
    {
        var rng = new Rng(8);
        var model = RankingModel.Create(W6Config(), rng, Device);
        var trainer = new Trainer(model, new TrainingOptions { Optimizer = OptimizerKind.Sgd, LearningRate = 0.1f });
        var ones = CriteoBatches(1, Rows, rng, 64);
        var big = CriteoBatches(Batch, Rows, rng);
        var outOne = new float[1];
        var outBig = new float[Batch];
        int cycle = 0;
        var s1 = BenchProtocol.Measure(() => { trainer.Predict(ones[cycle++ & 63], outOne); outOne[0] = 1f / (1f + MathF.Exp(-outOne[0])); });
        var sb = BenchProtocol.Measure(() =>
        {
            trainer.Predict(big[cycle++ & 3], outBig);
            for (int i = 0; i < outBig.Length; i++) outBig[i] = 1f / (1f + MathF.Exp(-outBig[i]));
        });
        Summary["W8_dlrm_infer_fused_b1_latency_us"] = s1.MedianMs * 1e3;
        Summary["W8_dlrm_infer_fused_b4096_examples_per_s"] = Batch / (sb.MedianMs / 1e3);
        Details["W8"] = new JsonObject { ["batch1"] = Detail(s1), ["batch4096"] = Detail(sb) };
        _log($"W8 DLRM inference: batch 1 {s1.MedianMs * 1e3:F1} us, batch {Batch} {Batch / (sb.MedianMs / 1e3):F0} examples/s");
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recsys.Engine.Checkpoints;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Metrics;
using Recsys.Engine.Models;

namespace Recsys.Engine.Training;

/// <summary>What a training job reads, builds and writes; the `recsys train` options map onto it 1:1.</summary>
public sealed record TrainJobSpec
{
    /// <summary>Criteo TSV (optionally .gz); null trains on the built-in synthetic click data.</summary>
    public string? DataPath { get; init; }
    public CriteoOptions Criteo { get; init; } = new() { Encoding = CategoricalEncoding.Vocabulary };
    public SyntheticOptions Synthetic { get; init; } = new();
    /// <summary>Architecture; TableRows is filled from the data.</summary>
    public ModelConfig Model { get; init; } = new();
    public TrainingOptions Training { get; init; } = new();
    /// <summary>Last fraction of rows (file order) held out for testing when <see cref="Folds"/> is 0.</summary>
    public double TestFraction { get; init; } = 0.1;
    /// <summary>K-fold cross-validation (contiguous folds) when ≥ 2.</summary>
    public int Folds { get; init; }
    /// <summary>Output directory for metrics.json, metrics.jsonl and the checkpoint; null writes nothing.</summary>
    public string? OutDir { get; init; }

    public void Validate()
    {
        Training.Validate();
        if (!(TestFraction > 0 && TestFraction < 1)) throw new ArgumentException($"test fraction must be in (0, 1), got {TestFraction}.");
        if (Folds == 1 || Folds < 0) throw new ArgumentException($"folds must be 0 (no cross-validation) or >= 2, got {Folds}.");
        if (DataPath is not null && !File.Exists(DataPath)) throw new FileNotFoundException($"data file not found: {DataPath}");
    }
}

/// <summary>Result of one train/test run (or of one fold).</summary>
public sealed record RunResult(EvaluationResult Test, double TrainSeconds, double ExamplesPerSecond, long Steps, double FinalTrainLoss);

/// <summary>Result of a whole job.</summary>
public sealed record TrainJobResult(RunResult Run, IReadOnlyList<RunResult> Folds, EvaluationSummary? CrossValidation,
    double? PlantedTestAuc, int TrainRows, int TestRows, string DataDescription);

/// <summary>
/// Loads data, splits it (file order, or K contiguous folds), trains, evaluates and writes metrics and a
/// checkpoint. The engine-side body of `recsys train`, usable from any host.
/// </summary>
public static class TrainingJob
{
    /// <summary>
    /// Creates the output directory at the start of a job, or throws saying why it cannot be one (empty, an existing
    /// file, or not creatable), before any data is loaded or any step is trained.
    /// </summary>
    private static void CreateOutDir(string dir)
    {
        if (string.IsNullOrWhiteSpace(dir)) throw new ArgumentException("output directory: expected a path, got an empty string.");
        if (File.Exists(dir)) throw new IOException($"output directory '{dir}': a file of that name exists; expected a directory (or a path that can be created).");
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output directory '{dir}': cannot be created ({e.Message}).", e);
        }
    }

    public static TrainJobResult Run(TrainJobSpec spec, Action<TrainProgress>? progress = null, Action<string>? log = null)
    {
        spec.Validate();
        log ??= _ => { };
        // One device for the whole job (every fold), released at the end; opened first so a missing GPU fails fast.
        using var device = Device.Parse(spec.Training.Device);
        log($"device: {device.Name}{(device.IsGpu ? $" ({device.Gpu})" : "")}");
        // Before the data is loaded and the model trained: a job's results must not be lost to a bad output path at the end.
        if (spec.OutDir is not null) CreateOutDir(spec.OutDir);
        InMemoryDataset data;
        SyntheticClickModel? synthetic = null;
        string description;
        if (spec.DataPath is null)
        {
            synthetic = SyntheticClickModel.Generate(spec.Synthetic);
            data = synthetic.Data;
            description = $"synthetic click data ({data.Count} rows, seed {spec.Synthetic.Seed})";
        }
        else
        {
            data = CriteoDataset.Load(spec.DataPath, spec.Criteo);
            description = $"{Path.GetFileName(spec.DataPath)} ({data.Count} rows{(data.SkippedLines > 0 ? $", {data.SkippedLines} malformed lines skipped" : "")})";
        }
        if (data.Count < 2) throw new InvalidDataException($"{description}: need at least 2 rows to train and test, got {data.Count}.");
        log($"data: {description}, positive rate {data.PositiveRate:F4}");

        var model = spec.Model with { TableRows = data.TableRows, DenseFeatures = data.DenseFeatures };
        model.Validate();

        JsonLinesWriter? jsonl = null;
        if (spec.OutDir is not null)
        {
            string path = Path.Combine(spec.OutDir, "metrics.jsonl");
            if (File.Exists(path)) File.Delete(path);
            jsonl = new JsonLinesWriter(path);
        }
        try
        {
            var folds = new List<RunResult>();
            EvaluationSummary? cv = null;
            if (spec.Folds >= 2)
            {
                var splits = data.KFold(spec.Folds);
                for (int k = 0; k < splits.Count; k++)
                {
                    log($"fold {k + 1}/{splits.Count}: train {splits[k].Train.Count}, test {splits[k].Test.Count}");
                    var (r, _) = TrainAndTest(model, spec.Training, device, splits[k].Train, splits[k].Test, progress, jsonl, fold: k + 1);
                    folds.Add(r);
                }
                cv = EvaluationSummary.Of(folds.Select(f => f.Test));
            }

            var (train, test) = data.SplitTrainTest(1 - spec.TestFraction);
            var (run, trainer) = TrainAndTest(model, spec.Training, device, train, test, progress, jsonl, fold: 0);
            double? planted = synthetic?.PlantedAuc(test.Rows);
            var result = new TrainJobResult(run, folds, cv, planted, train.Count, test.Count, description);
            if (spec.OutDir is not null)
            {
                WriteMetrics(spec, result);
                SaveCheckpoint(spec.OutDir, trainer.Model, spec, data);
            }
            return result;
        }
        finally
        {
            jsonl?.Dispose();
        }
    }

    private static (RunResult, Trainer) TrainAndTest(ModelConfig config, TrainingOptions options, Device device, DataView train, DataView test,
        Action<TrainProgress>? progress, JsonLinesWriter? jsonl, int fold)
    {
        // Initialised on the host from the seed, then moved: the same starting weights on every device.
        var model = RankingModel.Create(config, new Rng(options.Seed), device);
        var trainer = new Trainer(model, options);
        var sw = Stopwatch.StartNew();
        double lastLoss = double.NaN;
        var batch = new Batch();
        for (int epoch = 1; epoch <= options.Epochs; epoch++)
        {
            var view = options.Shuffle ? train.Shuffled(options.Seed + (ulong)epoch) : train;
            trainer.TrainEpoch(view.Batches(options.BatchSize, batch), epoch, p =>
            {
                lastLoss = p.MeanLossSinceLast;
                jsonl?.Write(new { fold, epoch = p.Epoch, step = p.Step, examples = p.Examples, loss = p.MeanLossSinceLast, examples_per_second = p.ExamplesPerSecond, seconds = sw.Elapsed.TotalSeconds });
                progress?.Invoke(p);
            });
        }
        double seconds = sw.Elapsed.TotalSeconds;
        var eval = Evaluate(trainer, test, options.BatchSize);
        long examples = (long)train.Count * options.Epochs;
        return (new RunResult(eval, seconds, examples / Math.Max(seconds, 1e-9), trainer.Step, lastLoss), trainer);
    }

    /// <summary>Scores <paramref name="rows"/> with the trainer's model and computes the metrics.</summary>
    public static EvaluationResult Evaluate(Trainer trainer, DataView rows, int batchSize)
    {
        var logits = Predict(trainer, rows, batchSize);
        return EvaluationResult.FromLogits(logits, rows.Labels());
    }

    public static float[] Predict(Trainer trainer, DataView rows, int batchSize)
    {
        var logits = new float[rows.Count];
        int at = 0;
        foreach (var b in rows.Batches(Math.Max(batchSize, 1024)))
        {
            trainer.Predict(b, logits.AsSpan(at, b.Size));
            at += b.Size;
        }
        return logits;
    }

    private static void WriteMetrics(TrainJobSpec spec, TrainJobResult r)
    {
        var t = r.Run.Test;
        var o = new JsonObject
        {
            ["auc"] = t.Auc, ["logloss"] = t.LogLoss, ["ne"] = t.NormalizedEntropy, ["calibration"] = t.Calibration,
            ["auc_stderr"] = t.AucStdErr, ["base_rate"] = t.BaseRate, ["test_rows"] = r.TestRows, ["train_rows"] = r.TrainRows,
            ["examples_per_second"] = r.Run.ExamplesPerSecond, ["train_seconds"] = r.Run.TrainSeconds, ["steps"] = r.Run.Steps,
            ["model"] = spec.Model.Kind, ["data"] = r.DataDescription, ["device"] = spec.Training.Device, ["threads"] = Recsys.Kernels.Common.KernelParallelism.MaxThreads,
        };
        if (r.PlantedTestAuc is { } p) o["planted_auc"] = p;
        if (r.CrossValidation is { } cv)
        {
            JsonObject Ms(MeanStd m) => new() { ["mean"] = m.Mean, ["std"] = m.Std, ["n"] = m.Count };
            o["cross_validation"] = new JsonObject
            {
                ["folds"] = cv.Runs, ["auc"] = Ms(cv.Auc), ["logloss"] = Ms(cv.LogLoss), ["ne"] = Ms(cv.NormalizedEntropy), ["calibration"] = Ms(cv.Calibration),
            };
        }
        AtomicFile.WriteAllText(Path.Combine(spec.OutDir!, "metrics.json"), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static void SaveCheckpoint(string dir, RankingModel model, TrainJobSpec spec, InMemoryDataset data)
    {
        var config = new JsonObject
        {
            ["model"] = JsonNode.Parse(model.Config.ToJson()),
            ["data"] = new JsonObject
            {
                ["format"] = spec.DataPath is null ? "synthetic" : "criteo",
                ["encoding"] = spec.Criteo.Encoding.ToString().ToLowerInvariant(),
                ["table_size"] = spec.Criteo.TableSize,
            },
        };
        var tensors = model.StateTensors().ToList();
        if (spec.DataPath is not null && data.Vocabularies is { } vocab)
        {
            // Hashed values are < TableSize <= 2^24, so float32 holds them exactly.
            if (spec.Criteo.TableSize > 1 << 24)
                throw new ArgumentException($"vocabulary encoding with a table size of {spec.Criteo.TableSize} (> 2^24) cannot be saved in a checkpoint; use --encoding hash or a smaller --table-size.");
            for (int c = 0; c < vocab.Count; c++)
            {
                var values = new float[vocab[c].Length];
                for (int i = 0; i < values.Length; i++) values[i] = vocab[c][i];
                tensors.Add(new($"vocab.C{c + 1}", new Tensor(new Shape(values.Length), values)));
            }
        }
        Checkpoint.Save(dir, tensors, config);
    }
}

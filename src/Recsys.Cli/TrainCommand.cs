using System.CommandLine;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Models;
using Recsys.Engine.Training;
using Recsys.Kernels.Common;
using Spectre.Console;

namespace Recsys.Cli;

/// <summary>`recsys train`: with no arguments trains DLRM on the built-in synthetic click data.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "Criteo TSV file (.gz read transparently). Omit to use the built-in synthetic click data." };
        var format = new Option<string>("--format") { Description = "Data format: criteo.", DefaultValueFactory = _ => "criteo" };
        var encoding = new Option<string>("--encoding") { Description = "Categorical encoding: vocab (rank of distinct hashed values, exact table sizes) or hash (mod --table-size).", DefaultValueFactory = _ => "vocab" };
        var tableSize = new Option<int>("--table-size") { Description = "Hash buckets per categorical feature (values are taken mod this).", DefaultValueFactory = _ => 100_000 };
        var skipMalformed = new Option<bool>("--skip-malformed") { Description = "Skip and count malformed lines instead of failing on the first one." };
        var model = new Option<string>("--model") { Description = "Model: dlrm or dcnv2.", DefaultValueFactory = _ => "dlrm" };
        var bottomMlp = new Option<string?>("--bottom-mlp") { Description = "DLRM bottom MLP hidden sizes, comma-separated (default 512,256; the embedding dim is appended)." };
        var topMlp = new Option<string?>("--top-mlp") { Description = "DLRM top MLP / DCNv2 deep tower hidden sizes, comma-separated (default 512,512,256; a 1-unit layer is appended)." };
        var dim = new Option<int>("--embedding-dim") { Description = "Embedding dimension.", DefaultValueFactory = _ => 16 };
        var batch = new Option<int>("--batch-size") { Description = "Mini-batch size.", DefaultValueFactory = _ => 256 };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training rows.", DefaultValueFactory = _ => 1 };
        var lr = new Option<float>("--lr") { Description = "Learning rate (dense parameters and embedding tables).", DefaultValueFactory = _ => 1e-3f };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd | adagrad (row-wise on tables) | adam (SparseAdam on tables).", DefaultValueFactory = _ => "adam" };
        var testFraction = new Option<double>("--test-fraction") { Description = "Last fraction of rows (file order) held out for testing.", DefaultValueFactory = _ => 0.1 };
        var folds = new Option<int>("--folds") { Description = "K-fold cross-validation (contiguous folds); reports mean ± std. 0 = off.", DefaultValueFactory = _ => 0 };
        var seed = new Option<ulong>("--seed") { Description = "Seed for initialisation, shuffling and synthetic data.", DefaultValueFactory = _ => 42UL };
        var shuffle = new Option<bool>("--shuffle") { Description = "Shuffle training rows every epoch (default: file order)." };
        var threads = new Option<int>("--threads") { Description = "CPU threads for kernels (default: all cores).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var rows = new Option<int>("--synthetic-rows") { Description = "Rows of synthetic data when --data is omitted.", DefaultValueFactory = _ => new SyntheticOptions().Rows };
        var device = new Option<string>("--device") { Description = "Device: cpu | gpu (CUDA) | ilgpu-cpu (the GPU kernels on the CPU).", DefaultValueFactory = _ => "cpu" };
        var gpuAtomics = new Option<bool>("--gpu-atomics") { Description = "On a GPU, scatter sparse SGD gradients with atomics (faster, not bit-reproducible)." };
        var outDir = new Option<string?>("--out") { Description = "Directory for metrics.json, metrics.jsonl, model.safetensors and config.json." };
        var quiet = new Option<bool>("--quiet") { Description = "No progress bar." };

        var cmd = new Command("train", "Train a ranking model and report test AUC, log loss, NE and throughput.")
        {
            data, format, encoding, tableSize, skipMalformed, model, bottomMlp, topMlp, dim, batch, epochs, lr, optimizer, testFraction, folds, seed, shuffle, threads, rows, device, gpuAtomics, outDir, quiet,
        };
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(format) is var f && f != "criteo") throw new ArgumentException($"--format: expected criteo, got '{f}'.");
            Device.ValidateName(pr.GetValue(device)!);
            KernelParallelism.MaxThreads = Options.Threads(pr.GetValue(threads));
            var spec = new TrainJobSpec
            {
                DataPath = pr.GetValue(data),
                Criteo = new CriteoOptions
                {
                    Encoding = Options.Encoding(pr.GetValue(encoding)!),
                    TableSize = Options.Positive(pr.GetValue(tableSize), "--table-size"),
                    Malformed = pr.GetValue(skipMalformed) ? MalformedPolicy.Skip : MalformedPolicy.Fail,
                },
                Synthetic = new SyntheticOptions { Rows = Options.Positive(pr.GetValue(rows), "--synthetic-rows"), Seed = pr.GetValue(seed) },
                Model = new ModelConfig
                {
                    Kind = Options.ModelKind(pr.GetValue(model)!), EmbeddingDim = Options.Positive(pr.GetValue(dim), "--embedding-dim"), TableRows = new[] { 1 },
                    BottomMlp = Options.Sizes(pr.GetValue(bottomMlp), "--bottom-mlp") ?? new ModelConfig().BottomMlp,
                    TopMlp = Options.Sizes(pr.GetValue(topMlp), "--top-mlp") ?? new ModelConfig().TopMlp,
                },
                Training = new TrainingOptions
                {
                    BatchSize = pr.GetValue(batch), Epochs = pr.GetValue(epochs), LearningRate = pr.GetValue(lr),
                    Optimizer = Options.Optimizer(pr.GetValue(optimizer)!), Seed = pr.GetValue(seed), Shuffle = pr.GetValue(shuffle),
                    Device = pr.GetValue(device)!, GpuAtomics = pr.GetValue(gpuAtomics),
                },
                TestFraction = pr.GetValue(testFraction),
                Folds = pr.GetValue(folds),
                OutDir = pr.GetValue(outDir),
            };
            var result = Run(spec, pr.GetValue(quiet));
            Report.Print(result, spec);
            return 0;
        });
        return cmd;
    }

    private static TrainJobResult Run(TrainJobSpec spec, bool quiet)
    {
        void Log(string line) => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]");
        if (quiet || Console.IsOutputRedirected)
            return TrainingJob.Run(spec, p => { if (!quiet) Console.WriteLine($"epoch {p.Epoch} step {p.Step}: loss {p.MeanLossSinceLast:F4}, {p.ExamplesPerSecond:F0} examples/s"); }, quiet ? null : Console.WriteLine);

        TrainJobResult? result = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: 1);
                result = TrainingJob.Run(spec, p =>
                {
                    task.Description = $"epoch {p.Epoch} step {p.Step} loss {p.MeanLossSinceLast:F4} {p.ExamplesPerSecond:F0} ex/s";
                    task.Value = Math.Min(1, task.Value + 0.01);
                }, Log);
                task.Value = 1;
            });
        return result!;
    }
}

/// <summary>Parsing of enumerated option values with messages that list the accepted ones.</summary>
internal static class Options
{
    public static int Positive(int v, string name) => v >= 1 ? v : throw new ArgumentException($"{name}: expected a positive integer, got {v}.");

    /// <summary>Comma-separated positive layer sizes, or null when the option was not given.</summary>
    public static int[]? Sizes(string? v, string name)
    {
        if (v is null) return null;
        var parts = v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out sizes[i]) || sizes[i] < 1)
                throw new ArgumentException($"{name}: expected comma-separated positive integers (e.g. 64,32), got '{v}'.");
        if (sizes.Length == 0) throw new ArgumentException($"{name}: expected at least one layer size, got '{v}'.");
        return sizes;
    }

    public static int Threads(int v) => v >= 1 && v <= 1024 ? v : throw new ArgumentException($"--threads: expected 1..1024, got {v}.");

    public static string ModelKind(string v) => v.ToLowerInvariant() switch
    {
        "dlrm" => "dlrm",
        "dcnv2" or "dcn" or "dcn-v2" => "dcnv2",
        _ => throw new ArgumentException($"--model: expected dlrm or dcnv2, got '{v}'."),
    };

    public static OptimizerKind Optimizer(string v) => v.ToLowerInvariant() switch
    {
        "sgd" => OptimizerKind.Sgd,
        "adagrad" => OptimizerKind.Adagrad,
        "adam" => OptimizerKind.Adam,
        _ => throw new ArgumentException($"--optimizer: expected sgd, adagrad or adam, got '{v}'."),
    };

    public static CategoricalEncoding Encoding(string v) => v.ToLowerInvariant() switch
    {
        "vocab" or "vocabulary" => CategoricalEncoding.Vocabulary,
        "hash" => CategoricalEncoding.Hash,
        _ => throw new ArgumentException($"--encoding: expected vocab or hash, got '{v}'."),
    };
}

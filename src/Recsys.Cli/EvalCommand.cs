using System.CommandLine;
using System.Text.Json.Nodes;
using Recsys.Engine.Checkpoints;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Metrics;
using Recsys.Engine.Models;
using Recsys.Engine.Training;
using Recsys.Kernels.Common;

namespace Recsys.Cli;

/// <summary>`recsys eval`: reloads a checkpoint and scores a data file with the same metrics as `train`.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Directory written by `recsys train --out`.", Required = true };
        var data = new Option<string>("--data") { Description = "Criteo TSV file to score (.gz read transparently).", Required = true };
        var skipMalformed = new Option<bool>("--skip-malformed") { Description = "Skip and count malformed lines instead of failing." };
        var threads = new Option<int>("--threads") { Description = "CPU threads for kernels.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var device = new Option<string>("--device") { Description = "Device: cpu | gpu (CUDA) | ilgpu-cpu (the GPU kernels on the CPU).", DefaultValueFactory = _ => "cpu" };
        var outFile = new Option<string?>("--out") { Description = "Write the metrics as JSON to this file." };
        var cmd = new Command("eval", "Score a data file with a trained checkpoint.") { checkpoint, data, skipMalformed, threads, device, outFile };
        cmd.SetAction(pr =>
        {
            using var dev = Device.Parse(pr.GetValue(device)!);
            KernelParallelism.MaxThreads = Options.Threads(pr.GetValue(threads));
            string? outPath = pr.GetValue(outFile);
            if (outPath is not null) OutputFile.Check("--out", outPath);
            var result = Evaluate(pr.GetValue(checkpoint)!, pr.GetValue(data)!, pr.GetValue(skipMalformed) ? MalformedPolicy.Skip : MalformedPolicy.Fail, dev);
            Report.Print(result, $"{Path.GetFileName(pr.GetValue(data))} scored by {pr.GetValue(checkpoint)}");
            if (outPath is not null)
            {
                var json = new JsonObject
                {
                    ["auc"] = result.Auc, ["logloss"] = result.LogLoss, ["ne"] = result.NormalizedEntropy, ["calibration"] = result.Calibration,
                    ["auc_stderr"] = result.AucStdErr, ["rows"] = result.Count, ["base_rate"] = result.BaseRate,
                };
                AtomicFile.WriteAllText(outPath, json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>Loads the checkpoint in <paramref name="dir"/>, encodes <paramref name="dataPath"/> as at training time, and evaluates.</summary>
    public static EvaluationResult Evaluate(string dir, string dataPath, MalformedPolicy malformed, Device? device = null)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"checkpoint directory not found: {dir}");
        if (!File.Exists(dataPath)) throw new FileNotFoundException($"data file not found: {dataPath}");
        var loaded = Checkpoint.Load(dir);
        var configNode = JsonNode.Parse(loaded.ConfigJson) ?? throw new CheckpointException(Path.Combine(dir, Checkpoint.ConfigFile), "empty.");
        var modelNode = configNode["model"] ?? throw new CheckpointException(Path.Combine(dir, Checkpoint.ConfigFile), "no 'model' section.");
        var config = ModelConfig.FromJson(modelNode.ToJsonString(), $"{dir}/config.json");
        string encoding = configNode["data"]?["encoding"]?.GetValue<string>() ?? "hash";
        int tableSize = configNode["data"]?["table_size"]?.GetValue<int>() ?? 100_000;

        var options = new CriteoOptions { TableSize = tableSize, Malformed = malformed, Encoding = CategoricalEncoding.Hash };
        if (encoding == "vocabulary")
        {
            var vocab = new int[config.TableRows.Length][];
            for (int c = 0; c < vocab.Length; c++)
            {
                if (!loaded.Weights.Tensors.TryGetValue($"vocab.C{c + 1}", out var v))
                    throw new CheckpointException(Path.Combine(dir, Checkpoint.WeightsFile), $"the model was trained with vocabulary encoding but the checkpoint has no 'vocab.C{c + 1}'.");
                vocab[c] = Array.ConvertAll(v.Floats, x => (int)x);
            }
            options = options with { Encoding = CategoricalEncoding.Vocabulary, FixedVocabularies = vocab };
        }
        var data = CriteoDataset.Load(dataPath, options);
        for (int t = 0; t < config.TableRows.Length && t < data.TableRows.Length; t++)
            if (data.TableRows[t] > config.TableRows[t])
                throw new InvalidDataException($"{dataPath}: feature C{t + 1} needs {data.TableRows[t]} table rows, the checkpoint's table has {config.TableRows[t]}.");

        var model = RankingModel.Create(config, new Rng(0), device ?? Device.Cpu);
        Checkpoint.LoadInto(dir, model.StateTensors());
        var trainer = new Trainer(model, new TrainingOptions());
        return TrainingJob.Evaluate(trainer, data.All, 4096);
    }
}

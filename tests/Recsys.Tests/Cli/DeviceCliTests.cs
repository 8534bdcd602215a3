using System.CommandLine;
using System.Text.Json.Nodes;
using NUnit.Framework;
using Recsys.Cli;
using Recsys.Tests.Support;
using Recsys.Kernels.Gpu;

namespace Recsys.Tests.Cli;

/// <summary>`--device` on train, eval and bench, end to end through the real parser (GPU runs use ILGPU's CPU accelerator).</summary>
[NonParallelizable]
[Category("Gpu")]
public class DeviceCliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "recsys-devcli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Out, string Err) Run(params string[] args) => CliHarness.Run(args);

    /// <summary>Small tables (8 values per categorical column) keep the CPU-accelerator runs fast.</summary>
    private string WriteCriteo(int rows, int seed) => CliHarness.WriteCriteo(_dir, rows, seed, categoricalValues: 8);

    private static readonly string[] Tiny = { "--batch-size", "100", "--embedding-dim", "4", "--bottom-mlp", "8", "--top-mlp", "8", "--quiet" };

    [Test]
    public void Train_IlgpuCpu_TinySynthetic_WritesMetricsJson()
    {
        var outDir = Path.Combine(_dir, "out");
        var (code, _, err) = Run(["train", "--device", "ilgpu-cpu", "--synthetic-rows", "600", "--out", outDir, .. Tiny]);
        Assert.That(code, Is.EqualTo(0), err);
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "metrics.json")))!;
        Assert.That(metrics["device"]!.GetValue<string>(), Is.EqualTo("ilgpu-cpu"));
        Assert.That(double.IsFinite(metrics["auc"]!.GetValue<double>()) && double.IsFinite(metrics["logloss"]!.GetValue<double>()), Is.True);
        Assert.That(File.Exists(Path.Combine(outDir, "model.safetensors")), Is.True);
    }

    [Test]
    public void TrainOnIlgpuCpu_ThenEvalOnCpuAndIlgpuCpu_GiveTheSameMetrics()
    {
        var data = WriteCriteo(500, 3);
        var ck = Path.Combine(_dir, "ck");
        var (code, _, err) = Run(["train", "--device", "ilgpu-cpu", "--data", data, "--out", ck, "--lr", "0.01", .. Tiny]);
        Assert.That(code, Is.EqualTo(0), err);
        var cpuOut = Path.Combine(_dir, "cpu.json");
        var gpuOut = Path.Combine(_dir, "gpu.json");
        Assert.That(Run("eval", "--checkpoint", ck, "--data", data, "--out", cpuOut).Code, Is.EqualTo(0));
        var (gpuCode, _, gpuErr) = Run("eval", "--device", "ilgpu-cpu", "--checkpoint", ck, "--data", data, "--out", gpuOut);
        Assert.That(gpuCode, Is.EqualTo(0), gpuErr);
        var c = JsonNode.Parse(File.ReadAllText(cpuOut))!;
        var g = JsonNode.Parse(File.ReadAllText(gpuOut))!;
        Assert.That(g["auc"]!.GetValue<double>(), Is.EqualTo(c["auc"]!.GetValue<double>()).Within(1e-4));
        Assert.That(g["logloss"]!.GetValue<double>(), Is.EqualTo(c["logloss"]!.GetValue<double>()).Within(1e-4));
        Assert.That(c["auc"]!.GetValue<double>(), Is.GreaterThan(0.6), "the device-trained model learned the planted signal");
    }

    [Test]
    public void Gpu_WithoutCuda_OneClearLineAndNonZeroExit()
    {
        if (GpuDevice.IsCudaAvailable(out var reason)) Assert.Ignore($"a CUDA device exists ({reason}): --device gpu would run.");
        foreach (var args in new[] { new[] { "train", "--device", "gpu", "--synthetic-rows", "100" }, new[] { "bench", "--device", "gpu", "--quick", "--workloads", "W6" } })
        {
            var (code, _, err) = Run(args);
            Assert.That(code, Is.Not.EqualTo(0), args[0]);
            var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.That(lines, Has.Length.EqualTo(1), $"{args[0]}: one line on stderr, got: {err}");
            Assert.That(lines[0], Does.Contain("gpu").And.Contain("no CUDA device"));
            Assert.That(err, Does.Not.Contain("   at "), "no stack trace");
        }
    }

    [TestCase("train")]
    [TestCase("bench")]
    public void UnknownDevice_ClearErrorListingTheNames(string command)
    {
        var (code, _, err) = Run(command, "--device", "tpu");
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(err, Does.Contain("Unknown device 'tpu'").And.Contain("cpu, gpu, ilgpu-cpu"));
        Assert.That(err.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(1));
    }

    [Test]
    public void Bench_IlgpuCpuQuick_RunsW5W6W7W8()
    {
        var json = Path.Combine(_dir, "bench.json");
        var (code, _, err) = Run("bench", "--device", "ilgpu-cpu", "--quick", "--workloads", "W6,W8,W5,W7", "--json", json);
        Assert.That(code, Is.EqualTo(0), err);
        var o = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.That(o["device"]!.GetValue<string>(), Is.EqualTo("ilgpu-cpu"));
        var summary = o["summary"]!.AsObject();
        Assert.That(summary.ContainsKey("W6_dlrm_train_fused_b4096_examples_per_s") && summary.ContainsKey("W8_dlrm_infer_fused_b1_latency_us"), Is.True);
        Assert.That(summary["W6_dlrm_train_fused_b4096_examples_per_s"]!.GetValue<double>(), Is.GreaterThan(0));
        Assert.That(summary["W5_attention_ms"]!.GetValue<double>(), Is.GreaterThan(0));
        Assert.That(summary["W7_kmeans_step_ms"]!.GetValue<double>(), Is.GreaterThan(0));
    }
}

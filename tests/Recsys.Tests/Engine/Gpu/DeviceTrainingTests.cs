using NUnit.Framework;
using Recsys.Engine.Checkpoints;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Models;
using Recsys.Engine.Training;
using Recsys.Kernels.Gpu;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Gpu;

/// <summary>
/// Whole training runs on a GPU device against the same runs on the CPU (same seed, same data), and checkpoints moving
/// between the two. Tiny models and data: the CPU accelerator simulates every GPU thread.
/// </summary>
public abstract class DeviceTrainingTests : DeviceTestBase
{
    protected DeviceTrainingTests(GpuBackend backend) : base(backend) { }

    private static readonly SyntheticOptions TinyData = new() { Rows = 2000, Seed = 3, Cardinalities = new[] { 7, 20, 3, 50 } };

    private static ModelConfig TinyModel(string kind, int? crossRank = null) => new()
    {
        Kind = kind, EmbeddingDim = 4, BottomMlp = new[] { 8 }, TopMlp = new[] { 8 }, CrossLayers = 1, CrossRank = crossRank, TableRows = new[] { 1 },
    };

    private static TrainJobSpec Spec(string kind, string device, OptimizerKind optimizer, int? crossRank = null) => new()
    {
        Synthetic = TinyData,
        Model = TinyModel(kind, crossRank),
        Training = new TrainingOptions
        {
            BatchSize = 100, Optimizer = optimizer, Device = device, Epochs = 2, LogEvery = 5,
            LearningRate = optimizer switch { OptimizerKind.Sgd => 0.3f, OptimizerKind.Adagrad => 0.05f, _ => 0.02f },
        },
        TestFraction = 0.25,
    };

    [TestCase("dlrm", OptimizerKind.Adam, null)]
    [TestCase("dcnv2", OptimizerKind.Adagrad, null)]
    [TestCase("dcnv2", OptimizerKind.Adam, 2)]
    public void TrainingJob_GpuAndCpu_GiveTheSameTestAuc(string kind, OptimizerKind optimizer, int? crossRank)
    {
        var losses = new List<double>();
        var cpu = TrainingJob.Run(Spec(kind, "cpu", optimizer, crossRank));
        var gpu = TrainingJob.Run(Spec(kind, Gpu.Name, optimizer, crossRank), p => losses.Add(p.MeanLossSinceLast));
        TestContext.Out.WriteLine($"{kind} {optimizer}: cpu AUC {cpu.Run.Test.Auc:F5} loss {cpu.Run.FinalTrainLoss:F5}; {Gpu.Name} AUC {gpu.Run.Test.Auc:F5} loss {gpu.Run.FinalTrainLoss:F5}");
        Assert.That(gpu.Run.Test.Auc, Is.EqualTo(cpu.Run.Test.Auc).Within(1e-3));
        Assert.That(gpu.Run.FinalTrainLoss, Is.EqualTo(cpu.Run.FinalTrainLoss).Within(1e-3));
        Assert.That(gpu.Run.Test.Auc, Is.GreaterThan(0.55), "the model learned something (else equal AUCs would mean little)");
        Assert.That(losses, Is.Not.Empty.And.All.Matches<double>(double.IsFinite), "progress reports carry the device-reduced loss");
    }

    [Test]
    public void Checkpoint_FromDeviceModel_LoadsOnCpu_AndBack()
    {
        string dir = Path.Combine(Path.GetTempPath(), "recsys-gpu-ckpt-" + Guid.NewGuid().ToString("N"));
        try
        {
            var config = TinyModel("dlrm") with { TableRows = new[] { 5, 9 } };
            var onDevice = RankingModel.Create(config, new Rng(1), Gpu);
            var trainer = new Trainer(onDevice, new TrainingOptions { Optimizer = OptimizerKind.Sgd, LearningRate = 0.1f });
            var batch = new Batch();
            batch.Resize(6, 13, 2);
            TestData.Floats(6 * 13, 4).CopyTo(batch.Dense, 0);
            TestData.Ints(12, 5, 5).CopyTo(batch.Ids, 0);
            for (int i = 0; i < 6; i++) batch.Labels[i] = i % 2;
            batch.BuildSparseFromIds();
            trainer.TrainStep(batch); // the device copy now differs from a fresh initialisation
            var deviceState = onDevice.StateTensors().ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
            Checkpoint.Save(dir, onDevice.StateTensors(), config.ToJson());

            var onCpu = RankingModel.Create(config, new Rng(99));
            Checkpoint.LoadInto(dir, onCpu.StateTensors());
            foreach (var (name, t) in onCpu.StateTensors())
                Assert.That(t.ToArray(), Is.EqualTo(deviceState[name]), $"{name} on the CPU");

            var logitsCpu = new float[6];
            new Trainer(onCpu, new TrainingOptions()).Predict(batch, logitsCpu);
            var back = RankingModel.Create(config, new Rng(7), Gpu);
            Checkpoint.LoadInto(dir, back.StateTensors());
            foreach (var (name, t) in back.StateTensors())
                Assert.That(t.ToArray(), Is.EqualTo(deviceState[name]), $"{name} back on {Gpu.Name}");
            var logitsGpu = new float[6];
            new Trainer(back, new TrainingOptions()).Predict(batch, logitsGpu);
            TestData.AssertClose(logitsGpu, logitsCpu, 1e-4, 1e-5, "logits of the reloaded models");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void SteadyStateSteps_AllocateNoDeviceMemory_AndLoadNoKernels()
    {
        var config = TinyModel("dlrm") with { TableRows = new[] { 6, 4 } };
        var model = RankingModel.Create(config, new Rng(5), Gpu);
        var trainer = new Trainer(model, new TrainingOptions { Optimizer = OptimizerKind.Adam, LearningRate = 0.01f });
        var batch = new Batch();
        batch.Resize(8, 13, 2);
        TestData.Floats(8 * 13, 9).CopyTo(batch.Dense, 0);
        TestData.Ints(16, 4, 10).CopyTo(batch.Ids, 0);
        batch.BuildSparseFromIds();
        for (int i = 0; i < 2; i++) trainer.TrainStep(batch); // first steps: kernels load, optimizer state and slabs appear
        long bytes = Gpu.PersistentBytes;
        int loads = Gpu.Gpu.KernelSetLoads;
        int pooled = Gpu.Gpu.Pool.Allocations;
        var losses = new List<float>();
        for (int i = 0; i < 3; i++) losses.Add(trainer.TrainStep(batch));
        Assert.That(Gpu.PersistentBytes, Is.EqualTo(bytes), "device memory taken by steady-state steps");
        Assert.That(Gpu.Gpu.KernelSetLoads, Is.EqualTo(loads), "kernels loaded again");
        Assert.That(Gpu.Gpu.Pool.Allocations, Is.EqualTo(pooled), "pool buffers created by steady-state steps");
        Assert.That(losses[2], Is.LessThan(losses[0]), "the repeated batch's loss goes down");
    }

    [Test]
    public void DenseOptimizers_OnDevice_SkipUntouchedParameters()
    {
        var config = TinyModel("dcnv2") with { TableRows = new[] { 4 } };
        var model = RankingModel.Create(config, new Rng(2), Gpu);
        var trainer = new Trainer(model, new TrainingOptions { Optimizer = OptimizerKind.Adam, LearningRate = 0.05f });
        var frozen = model.Parameters().First();
        frozen.Frozen = true;
        var before = frozen.Value.ToArray();
        var others = model.Parameters().Skip(1).Select(p => p.Value.ToArray()).ToArray();
        var batch = new Batch();
        batch.Resize(3, 13, 1);
        TestData.Floats(3 * 13, 8).CopyTo(batch.Dense, 0);
        batch.Labels[0] = 1;
        batch.BuildSparseFromIds();
        trainer.TrainStep(batch);
        Assert.That(frozen.Value.ToArray(), Is.EqualTo(before), "a frozen parameter must not change");
        Assert.That(model.Parameters().Skip(1).Select(p => p.Value.ToArray()).Zip(others).Any(p => !p.First.SequenceEqual(p.Second)), Is.True,
            "trainable parameters were updated");
    }
}

[TestFixture]
public sealed class DeviceTrainingIlgpuCpu : DeviceTrainingTests
{
    public DeviceTrainingIlgpuCpu() : base(GpuBackend.IlgpuCpu) { }
}

[TestFixture]
public sealed class DeviceTrainingCuda : DeviceTrainingTests
{
    public DeviceTrainingCuda() : base(GpuBackend.Cuda) { }
}

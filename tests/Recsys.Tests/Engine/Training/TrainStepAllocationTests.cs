using NUnit.Framework;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Engine.Models;
using Recsys.Engine.Training;

namespace Recsys.Tests.Engine.Training;

/// <summary>Steady-state training steps of whole models allocate no managed memory on any thread (tape arena, workspaces, pooled scratch).</summary>
public class TrainStepAllocationTests
{
    [Test]
    public void SteadyStateTrainSteps_AllocateNothing(
        [Values("dlrm", "dcnv2")] string kind, [Values(OptimizerKind.Sgd, OptimizerKind.Adagrad, OptimizerKind.Adam)] OptimizerKind optimizer)
    {
        const int batch = 64, tables = 5, rows = 300;
        var config = new ModelConfig
        {
            Kind = kind, DenseFeatures = 13, TableRows = Enumerable.Repeat(rows, tables).ToArray(), EmbeddingDim = 16,
            BottomMlp = new[] { 32, 16 }, TopMlp = new[] { 32, 16 }, CrossLayers = 2,
        };
        var rng = new Rng(9);
        var model = RankingModel.Create(config, rng, Device.Cpu);
        var trainer = new Trainer(model, new TrainingOptions { Optimizer = optimizer, LearningRate = 0.05f, BatchSize = batch });
        var batches = new Batch[3];
        for (int k = 0; k < batches.Length; k++)
        {
            var b = new Batch();
            b.Resize(batch, 13, tables);
            for (int i = 0; i < batch * 13; i++) b.Dense[i] = (float)rng.Uniform(0, 3);
            for (int i = 0; i < batch * tables; i++) b.Ids[i] = rng.NextInt(rows);
            for (int i = 0; i < batch; i++) b.Labels[i] = rng.NextDouble() < 0.3 ? 1f : 0f;
            b.BuildSparseFromIds();
            batches[k] = b;
        }
        // Earlier tests' finalizers would otherwise run (and may allocate) on the finalizer thread while this one measures;
        // collecting first also lets pools trim now rather than between the measured steps.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        for (int i = 0; i < 10; i++) trainer.TrainStep(batches[i % 3]); // optimizer state, workspaces and arena blocks appear
        // All threads are counted (the kernel workers too), so the runtime's and the test runner's own threads can add a
        // one-off allocation to a window (once 10.9 KB in a whole-suite run). The least of three windows is asserted: a
        // step that allocates shows in every window, and one small object per step (24 x 24+ bytes) cannot hide under the
        // bound.
        const int steps = 24;
        var windows = new List<long>();
        for (int w = 0; w < 3 && (windows.Count == 0 || windows.Min() >= steps * 24); w++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < steps; i++) trainer.TrainStep(batches[i % 3]);
            windows.Add(GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        Assert.That(windows.Min(), Is.LessThan(steps * 24),
            $"bytes allocated by {steps} steady-state {kind} steps with {optimizer}, all threads, in each window: {string.Join(", ", windows)}");
    }
}

using ILGPU;
using ILGPU.Runtime;
using Recsys.Engine.Core;
using Recsys.Engine.Data;
using Recsys.Kernels.EmbeddingBag;
using Device = Recsys.Engine.Core.Device;

namespace Recsys.Engine.Nn;

/// <summary>The ids of one lookup, uploaded to the device once per step (arena memory), kept for the fused backward.</summary>
internal sealed class DeviceIds(EmbeddingBagCollection collection, ArrayView<int> values, ArrayView<int> offsets, ArrayView<float> weights, int batchSize)
{
    public readonly EmbeddingBagCollection Collection = collection;
    public readonly ArrayView<int> Values = values;
    public readonly ArrayView<int> Offsets = offsets;
    /// <summary>Per-value weights, or an empty view for unweighted pooling.</summary>
    public readonly ArrayView<float> Weights = weights;
    public readonly int BatchSize = batchSize;
}

/// <summary>
/// The GPU half of the collection. On a device all tables are stacked in one buffer (table f owns global rows
/// [rowStart[f], rowStart[f+1])), so one launch serves every table; each table's <see cref="EmbeddingTable.Weight"/>
/// becomes a device tensor over its slice. Optimizer state is stacked the same way and lives on the device.
/// </summary>
public sealed partial class EmbeddingBagCollection
{
    private Device? _device;
    private ArrayView<float> _deviceWeights;
    private ArrayView<int> _deviceRowStart;
    private ArrayView<float> _deviceState1;
    private ArrayView<float> _deviceState2;
    private SparseUpdateKind _deviceStateKind;
    private long _totalRows;

    /// <summary>
    /// On a GPU device: true (the default) makes sparse SGD use the deterministic kernel (stable sort of (row, position),
    /// each touched row summed in position order: bit-reproducible); false uses the faster atomic scatter, whose float
    /// summation order varies run to run. Row-wise Adagrad and Adam are always deterministic. Ignored on the CPU.
    /// </summary>
    public bool DeterministicOnDevice { get; set; } = true;

    /// <summary>The device holding the tables (the CPU until <see cref="To"/> moves them).</summary>
    public Device Device => _device ?? Device.Cpu;

    /// <summary>
    /// Moves every table (and any optimizer state already allocated) to <paramref name="device"/>. Moving to the CPU is a
    /// no-op for a host collection; a device collection cannot move back (save a checkpoint and load it into a host model).
    /// </summary>
    public override void To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (ReferenceEquals(device, Device)) return;
        if (!device.IsGpu || _device is not null)
            throw new NotSupportedException($"EmbeddingBagCollection: moving tables from '{Device.Name}' to '{device.Name}' is not supported; load a checkpoint into a model on '{device.Name}' instead.");
        int dim = Dim; // throws when the tables differ: the stacked layout needs one D
        var rowStart = new int[_tables.Length + 1];
        long total = 0;
        for (int f = 0; f < _tables.Length; f++)
        {
            rowStart[f] = checked((int)total);
            total += _tables[f].Rows;
        }
        rowStart[^1] = checked((int)total);
        _totalRows = total;
        _deviceWeights = device.AllocatePersistent<float>(total * dim);
        _deviceRowStart = device.AllocatePersistent<int>(rowStart.Length);
        ((ArrayView1D<int, Stride1D.Dense>)_deviceRowStart).CopyFromCPU(device.Gpu.Stream, rowStart);
        // Host optimizer state of one kind moves along, so training can continue where it was.
        var kind = _tables[0].StateKind;
        bool moveState = kind is SparseUpdateKind.RowwiseAdagrad or SparseUpdateKind.Adam && _tables.All(t => t.StateKind == kind);
        if (moveState) AllocateDeviceState(device, kind, dim);
        for (int f = 0; f < _tables.Length; f++)
        {
            var t = _tables[f];
            long start = (long)rowStart[f] * dim;
            t.Weight.MoveTo(device, _deviceWeights.SubView(start, (long)t.Rows * dim));
            if (moveState)
            {
                if (kind == SparseUpdateKind.RowwiseAdagrad)
                    Upload(device, t.State1!.AsSpan(0, t.Rows), _deviceState1.SubView(rowStart[f], t.Rows));
                else
                {
                    Upload(device, t.State1!.AsSpan(0, t.Rows * dim), _deviceState1.SubView(start, (long)t.Rows * dim));
                    Upload(device, t.State2!.AsSpan(0, t.Rows * dim), _deviceState2.SubView(start, (long)t.Rows * dim));
                }
            }
            t.ReleaseHost();
            _weights[f] = Array.Empty<float>();
            _weightStarts[f] = 0;
        }
        device.Synchronize();
        _device = device;
    }

    private static void Upload(Device device, ReadOnlySpan<float> source, ArrayView<float> target) =>
        ((ArrayView1D<float, Stride1D.Dense>)target).CopyFromCPU(device.Gpu.Stream, source);

    private void AllocateDeviceState(Device device, SparseUpdateKind kind, int dim)
    {
        _deviceStateKind = kind;
        _deviceState1 = kind == SparseUpdateKind.RowwiseAdagrad ? device.AllocatePersistent<float>(_totalRows) : device.AllocatePersistent<float>(_totalRows * dim);
        _deviceState2 = kind == SparseUpdateKind.Adam ? device.AllocatePersistent<float>(_totalRows * dim) : default;
    }

    private static EmbeddingBagGpuKernels.Pooling GpuPooling(PoolingMode mode) =>
        mode == PoolingMode.Mean ? EmbeddingBagGpuKernels.Pooling.Mean : EmbeddingBagGpuKernels.Pooling.Sum;

    /// <summary>Uploads <paramref name="ids"/> into the step's arena and writes the pooled bags into <paramref name="output"/> [B, F, D] (device).</summary>
    internal DeviceIds ForwardDevice(TensorArena arena, KeyedJagged ids, Tensor output)
    {
        var device = _device!;
        var gpu = device.Gpu;
        int b = ids.BatchSize, bags = _tables.Length * b, nnz = ids.ValueCount;
        var offsets = arena.AllocateInts(bags + 1);
        var values = arena.AllocateInts(nnz);
        ((ArrayView1D<int, Stride1D.Dense>)offsets).CopyFromCPU(gpu.Stream, ids.Offsets.AsSpan(0, bags + 1));
        if (nnz > 0) ((ArrayView1D<int, Stride1D.Dense>)values).CopyFromCPU(gpu.Stream, ids.Values.AsSpan(0, nnz));
        ArrayView<float> weights = default;
        if (ids.Weights is not null)
        {
            var w = arena.Allocate(new Shape(nnz));
            w.CopyFrom(ids.Weights.AsSpan(0, nnz));
            weights = w.View;
        }
        // The forward waits for its launch (to read the out-of-table flag), so the uploads above are complete when it returns.
        EmbeddingBagGpuKernels.Forward(gpu, _deviceWeights, _deviceRowStart, values, offsets, weights, output.View, b, _tables.Length, Dim, GpuPooling(Pooling));
        return new DeviceIds(this, values, offsets, weights, b);
    }

    /// <summary>The fused sparse backward on the device: the collection's optimizer updates the touched rows of all tables in one pass.</summary>
    internal void BackwardDevice(DeviceIds ids, Tensor dOutput)
    {
        var device = _device!;
        var opt = Optimizer ?? throw new NotSupportedException(
            $"EmbeddingBags backward without a sparse optimizer (collecting gradients) has no GPU path on device '{device.Name}'; set the collection's Optimizer.");
        var update = opt.NextStep();
        var gpu = device.Gpu;
        int dim = Dim, f = _tables.Length;
        var pooling = GpuPooling(Pooling);
        switch (update.Kind)
        {
            case SparseUpdateKind.Sgd:
                if (DeterministicOnDevice)
                    EmbeddingBagGpuKernels.BackwardSgdDeterministic(gpu, _deviceWeights, _deviceRowStart, ids.Values, ids.Offsets, ids.Weights,
                        dOutput.View, ids.BatchSize, f, dim, pooling, update.LearningRate);
                else
                    EmbeddingBagGpuKernels.BackwardSgdAtomic(gpu, _deviceWeights, _deviceRowStart, ids.Values, ids.Offsets, ids.Weights,
                        dOutput.View, ids.BatchSize, f, dim, pooling, update.LearningRate);
                break;
            case SparseUpdateKind.RowwiseAdagrad:
                if (_deviceStateKind != SparseUpdateKind.RowwiseAdagrad) AllocateDeviceState(device, SparseUpdateKind.RowwiseAdagrad, dim);
                EmbeddingBagGpuKernels.BackwardRowwiseAdagradDeterministic(gpu, _deviceWeights, _deviceState1, _deviceRowStart, ids.Values, ids.Offsets,
                    ids.Weights, dOutput.View, ids.BatchSize, f, dim, pooling, update.LearningRate, update.Eps);
                break;
            case SparseUpdateKind.Adam:
                if (_deviceStateKind != SparseUpdateKind.Adam) AllocateDeviceState(device, SparseUpdateKind.Adam, dim);
                EmbeddingBagGpuKernels.BackwardAdamDeterministic(gpu, _deviceWeights, _deviceState1, _deviceState2, _deviceRowStart, ids.Values,
                    ids.Offsets, ids.Weights, dOutput.View, ids.BatchSize, f, dim, pooling, update.LearningRate, update.Beta1, update.Beta2,
                    update.Eps, update.Step);
                break;
            default:
                throw new NotSupportedException($"EmbeddingBags: sparse update {update.Kind} has no GPU path on device '{device.Name}'.");
        }
    }
}

using BenchmarkDotNet.Attributes;
using Recsys.Engine.Core;
using Recsys.Kernels.EmbeddingBag;
using Recsys.Kernels.Interaction;

namespace Recsys.Perf;

/// <summary>
/// DLRM inference's lookups and dot interaction at W8's shapes (26 tables of 100,000 x 64, batch 4096, one id per bag):
/// the two kernels one after the other (the [B, F, D] embeddings, 27 MB, written and read back) against the fused
/// kernel that pools each sample into L1 and interacts it there.
/// </summary>
[MemoryDiagnoser]
public class InferenceInteractionBenchmarks
{
    private const int Batch = 4096, Tables = 26, Rows = 100_000, Dim = 64;
    private float[][] _weights = null!;
    private int[] _rows = null!, _ids = null!, _offsets = null!;
    private float[] _dense = null!, _embeddings = null!, _output = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Rng(8);
        float[] Random(int n) { var a = new float[n]; rng.FillUniform(a, -1, 1); return a; }
        _weights = Enumerable.Range(0, Tables).Select(_ => Random(Rows * Dim)).ToArray();
        _rows = Enumerable.Repeat(Rows, Tables).ToArray();
        _ids = Enumerable.Range(0, Tables * Batch).Select(_ => rng.NextInt(Rows)).ToArray();
        _offsets = Enumerable.Range(0, Tables * Batch + 1).ToArray();
        _dense = Random(Batch * Dim);
        _embeddings = new float[Batch * Tables * Dim];
        _output = new float[Batch * DotInteractionKernels.OutputDim(Tables, Dim)];
    }

    [Benchmark(Baseline = true)]
    public void W8_LookupsThenInteraction_TwoKernels()
    {
        EmbeddingBagKernels.ForwardTables(_weights, _rows, Dim, Batch, _ids, _offsets, default, PoolingMode.Sum, _embeddings, Tables * Dim, 0);
        DotInteractionKernels.Forward(_dense, _embeddings, _output, Batch, Tables, Dim);
    }

    [Benchmark]
    public void W8_LookupsThenInteraction_Fused() =>
        DotInteractionKernels.ForwardFromTables(_dense, _weights, _rows, Dim, Batch, _ids, _offsets, default, PoolingMode.Sum, _output);
}

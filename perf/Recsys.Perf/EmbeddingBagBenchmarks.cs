using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Recsys.Kernels.EmbeddingBag;

namespace Recsys.Perf;

/// <summary>
/// Workload W1 of the torch baseline: 26 tables x 100,000 rows x 64 dims, batch 4096, pooling factor 1
/// and 32; forward, and forward + backward + sparse SGD. Four pre-generated batches are cycled, as in the
/// baseline; training is also timed with row-wise Adagrad and SparseAdam. Columns: lookups/s and GB/s (one lookup reads
/// one 256-byte row).
/// </summary>
[Config(typeof(Config))]
public class EmbeddingBagBenchmarks
{
    public const int Tables = 26, Rows = 100_000, Dim = 64, Batch = 4096;

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            this.AddSimdJobs();
            AddColumn(new ThroughputColumn("Mlookups/s", 1e-6), new ThroughputColumn("GB/s", Dim * 4 * 1e-9));
        }
    }

    [Params(1, 32)]
    public int PoolingFactor { get; set; }

    private float[][] _weights = null!;
    private int[] _rows = null!;
    private (int[] Indices, int[] Offsets)[] _batches = null!;
    private float[] _output = null!;
    private float[] _dOutput = null!;
    private readonly EmbeddingBagWorkspace _workspace = new();
    private int _next;

    public static long Lookups(int poolingFactor) => (long)Tables * Batch * poolingFactor;

    [GlobalSetup]
    public void Setup()
    {
        var r = new Random(1);
        _weights = new float[Tables][];
        for (int f = 0; f < Tables; f++)
        {
            _weights[f] = new float[Rows * Dim];
            for (int i = 0; i < _weights[f].Length; i++) _weights[f][i] = (float)(r.NextDouble() - 0.5) * 0.01f;
        }
        _rows = Enumerable.Repeat(Rows, Tables).ToArray();
        int n = Tables * Batch * PoolingFactor;
        _batches = new (int[], int[])[4];
        for (int k = 0; k < _batches.Length; k++)
        {
            var idx = new int[n];
            for (int i = 0; i < n; i++) idx[i] = r.Next(Rows);
            var off = new int[Tables * Batch + 1];
            for (int i = 0; i < off.Length; i++) off[i] = i * PoolingFactor;
            _batches[k] = (idx, off);
        }
        _output = new float[Batch * Tables * Dim];
        _dOutput = new float[Batch * Tables * Dim];
        for (int i = 0; i < _dOutput.Length; i++) _dOutput[i] = (float)(r.NextDouble() - 0.5) * 1e-3f;
    }

    private (int[] Indices, int[] Offsets) NextBatch() => _batches[_next++ & 3];

    /// <summary>Scalar single-threaded pooling, one table after another: the reference formula.</summary>
    [Benchmark(Baseline = true)]
    public void ForwardScalar()
    {
        var (idx, off) = NextBatch();
        for (int f = 0; f < Tables; f++)
        {
            var w = _weights[f];
            for (int b = 0; b < Batch; b++)
            {
                int o = (b * Tables + f) * Dim;
                Array.Clear(_output, o, Dim);
                for (int p = off[f * Batch + b]; p < off[f * Batch + b + 1]; p++)
                {
                    int row = idx[p] * Dim;
                    for (int c = 0; c < Dim; c++) _output[o + c] += w[row + c];
                }
            }
        }
    }

    /// <summary>All 26 tables in one parallel region, SIMD rows, written into [B, F, D].</summary>
    [Benchmark]
    public void ForwardFused()
    {
        var (idx, off) = NextBatch();
        EmbeddingBagKernels.ForwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _output, Tables * Dim, 0);
    }

    /// <summary>Forward, then backward fused with SGD on the touched rows.</summary>
    [Benchmark]
    public void TrainSgd()
    {
        var (idx, off) = NextBatch();
        EmbeddingBagKernels.ForwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _output, Tables * Dim, 0);
        EmbeddingBagKernels.BackwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _dOutput, Tables * Dim, 0,
            SparseUpdate.Sgd(0.01f), default, default, _workspace);
    }

    /// <summary>Forward, then backward fused with row-wise Adagrad: each touched row's gradient is coalesced first (bucketed).</summary>
    [Benchmark]
    public void TrainRowwiseAdagrad()
    {
        var (idx, off) = NextBatch();
        EmbeddingBagKernels.ForwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _output, Tables * Dim, 0);
        EmbeddingBagKernels.BackwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _dOutput, Tables * Dim, 0,
            SparseUpdate.RowwiseAdagrad(0.01f, 1e-8f), _adagradState ??= _rows.Select(r => new float[r]).ToArray(), default, _workspace);
    }

    /// <summary>Forward, then backward fused with SparseAdam (two state rows per touched row).</summary>
    [Benchmark]
    public void TrainAdam()
    {
        var (idx, off) = NextBatch();
        EmbeddingBagKernels.ForwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _output, Tables * Dim, 0);
        _adamM ??= _rows.Select(r => new float[r * Dim]).ToArray();
        _adamV ??= _rows.Select(r => new float[r * Dim]).ToArray();
        EmbeddingBagKernels.BackwardTables(_weights, _rows, Dim, Batch, idx, off, default, PoolingMode.Sum, _dOutput, Tables * Dim, 0,
            SparseUpdate.Adam(0.001f, 0.9f, 0.999f, 1e-8f, ++_adamStep), _adamM, _adamV, _workspace);
    }

    // Optimizer state, made on first use so that the other benchmarks do not carry it.
    private float[][]? _adagradState, _adamM, _adamV;
    private long _adamStep;

    /// <summary>Lookups (or bytes) per second from the mean time and the case's pooling factor.</summary>
    private sealed class ThroughputColumn(string name, double scale) : IColumn
    {
        public string Id => nameof(ThroughputColumn) + name;
        public string ColumnName => name;
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => name == "GB/s" ? "Rows read per second x 256 B" : "Million embedding lookups per second";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var stats = summary[benchmarkCase]?.ResultStatistics;
            if (stats is null || benchmarkCase.Parameters["PoolingFactor"] is not int pf) return "-";
            double perSecond = Lookups(pf) / (stats.Mean * 1e-9);
            return (perSecond * scale).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        }
    }
}

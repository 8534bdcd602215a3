using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Recsys.Kernels.Common;
using Recsys.Kernels.Gemm;

namespace Recsys.Perf;

/// <summary>One GEMM call of an MLP step: layout and C[m, n] (+)= op(A)·op(B) over k.</summary>
public sealed record GemmShape(string Layout, int M, int N, int K, string Role)
{
    public double Flops => 2.0 * M * N * K;
    public override string ToString() => $"{Layout} {M}x{N}x{K} ({Role})";
}

/// <summary>
/// The GEMMs of a DLRM / DCNv2 training step at batch 4096 (the shapes that dominate dense compute),
/// plus batch-1 inference. The GFLOP/s column is 2·m·n·k / mean time; compare it with the machine's
/// FMA peak (peers/limits). Forward is NT (X·Wᵀ, fused bias + ReLU), dX is NN (dY·W), dW is TN (dYᵀ·X).
/// </summary>
[Config(typeof(GemmConfig))]
public class GemmBenchmarks
{
    public static IEnumerable<GemmShape> Shapes() => new[]
    {
        new GemmShape("NT", 4096, 512, 512, "square reference"),
        new GemmShape("NT", 4096, 512, 415, "top.0 forward"),
        new GemmShape("NN", 4096, 415, 512, "top.0 dX"),
        new GemmShape("TN", 512, 415, 4096, "top.0 dW"),
        new GemmShape("NT", 4096, 256, 512, "top.2 forward"),
        new GemmShape("NT", 4096, 1, 256, "top.3 forward"),
        new GemmShape("TN", 1, 256, 4096, "top.3 dW"),
        new GemmShape("NT", 4096, 429, 429, "DCN cross"),
        new GemmShape("NT", 4096, 512, 13, "bottom.0 forward"),
        new GemmShape("NT", 4096, 64, 256, "bottom.2 forward"),
        new GemmShape("NT", 1, 512, 415, "batch-1 inference"),
    };

    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = null!;

    private float[] _a = null!, _b = null!, _c = null!, _bias = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rnd = new Random(1);
        float[] Fill(long n)
        {
            var x = new float[n];
            for (long i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() * 2 - 1);
            return x;
        }
        _a = Fill((long)Shape.M * Shape.K);
        _b = Fill((long)Shape.K * Shape.N);
        _c = Fill((long)Shape.M * Shape.N);
        _bias = Fill(Shape.N);
    }

    /// <summary>
    /// Scalar baseline: the formula C[i, j] (+)= Σ_p op(A)[i, p]·op(B)[p, j] as a plain i-p-j loop nest on one thread
    /// (the JIT does not vectorise it), so the table shows what packing, register tiling, SIMD and threads buy.
    /// </summary>
    [Benchmark(Baseline = true)]
    public void GemmScalar()
    {
        var s = Shape;
        int m = s.M, n = s.N, k = s.K;
        float[] a = _a, b = _b, c = _c;
        if (s.Layout == "NT") Array.Clear(c, 0, m * n);
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
            {
                // NN: A [m, k], B [k, n]; TN: A [k, m], B [k, n]; NT: A [m, k], B [n, k].
                float aip = s.Layout == "TN" ? a[p * m + i] : a[i * k + p];
                if (s.Layout == "NT")
                    for (int j = 0; j < n; j++) c[i * n + j] += aip * b[j * k + p];
                else
                    for (int j = 0; j < n; j++) c[i * n + j] += aip * b[p * n + j];
            }
    }

    /// <summary>The plain GEMM in the shape's layout (backward calls accumulate, as the tape does).</summary>
    [Benchmark]
    public void Gemm()
    {
        var s = Shape;
        switch (s.Layout)
        {
            case "NN": GemmKernels.MatMul(_a, _b, _c, s.M, s.N, s.K, accumulate: true); break;
            case "TN": GemmKernels.MatMulTN(_a, _b, _c, s.M, s.N, s.K, accumulate: true); break;
            default: GemmKernels.MatMulNT(_a, _b, _c, s.M, s.N, s.K, accumulate: false); break;
        }
    }

    /// <summary>Forward with the fused bias + ReLU epilogue (NT shapes only; others run the same GEMM).</summary>
    [Benchmark]
    public void LinearReluForward()
    {
        var s = Shape;
        if (s.Layout == "NT") GemmKernels.LinearForward(_a, _b, _bias, _c, s.M, s.N, s.K, Activation.Relu);
        else Gemm();
    }
}

internal sealed class GemmConfig : ManualConfig
{
    public GemmConfig() => this.AddSimdJobs().AddColumn(new GflopsColumn("2·m·n·k", c => c.Parameters["Shape"] is GemmShape s ? s.Flops : null));
}

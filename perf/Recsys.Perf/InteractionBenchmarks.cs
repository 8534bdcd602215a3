using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Recsys.Engine.Core;
using Recsys.Engine.Nn;
using Recsys.Kernels.Interaction;

namespace Recsys.Perf;

/// <summary>
/// Interaction workloads of the side-by-side harness, forward + backward from a fixed random output
/// gradient: W3 (DLRM dot interaction, B 4096, F 26, D 64), W4 (DCNv2, 3 full-rank layers, d 429,
/// B 4096; 13.57 GFLOP per step), W5 (self-attention block, B 1024, T 27, d 64, 2 heads).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(InteractionConfig))]
public class InteractionBenchmarks
{
    private const int W3Batch = 4096, W3Features = 26, W3Dim = 64;
    private float[] _dense = null!, _sparse = null!, _dotOut = null!, _dotGrad = null!, _dDense = null!, _dSparse = null!;

    private const int W4Batch = 4096, W4Dim = 429, W4Layers = 3;
    private CrossNet _cross = null!;
    private Tensor _x0 = null!, _crossSeed = null!;
    private Tape _crossTape = null!;

    private const int W5Batch = 1024, W5Tokens = 27, W5Dim = 64, W5Heads = 2;
    private SelfAttentionInteraction _attention = null!;
    private Tensor _tokens = null!, _attentionSeed = null!;
    private Tape _attentionTape = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Rng(42);
        float[] Random(int n) { var a = new float[n]; rng.FillUniform(a, -1, 1); return a; }

        _dense = Random(W3Batch * W3Dim);
        _sparse = Random(W3Batch * W3Features * W3Dim);
        int width = DotInteractionKernels.OutputDim(W3Features, W3Dim);
        _dotOut = new float[W3Batch * width];
        _dotGrad = Random(W3Batch * width);
        _dDense = new float[_dense.Length];
        _dSparse = new float[_sparse.Length];

        _cross = new CrossNet("cross", W4Dim, W4Layers, rng);
        _x0 = new Tensor(new Shape(W4Batch, W4Dim), Random(W4Batch * W4Dim), requiresGrad: true);
        _crossSeed = new Tensor(new Shape(W4Batch, W4Dim), Random(W4Batch * W4Dim));
        _crossTape = new Tape();

        _attention = new SelfAttentionInteraction("attn", W5Dim, W5Heads, rng);
        _tokens = new Tensor(new Shape(W5Batch, W5Tokens, W5Dim), Random(W5Batch * W5Tokens * W5Dim), requiresGrad: true);
        _attentionSeed = new Tensor(_tokens.Shape, Random(_tokens.Length));
        _attentionTape = new Tape();
    }

    /// <summary>
    /// Scalar baseline of W3: the formula written plainly, one thread. T = [dense, e_0..e_{F-1}]; out = [dense, ⟨T_i, T_j⟩ for
    /// i &gt; j]; backward dT_i += g_ij·T_j, dT_j += g_ij·T_i, plus the dense pass-through.
    /// </summary>
    [Benchmark(Baseline = true)]
    public void W3_DotInteraction_ForwardBackward_Scalar()
    {
        int b = W3Batch, f = W3Features, d = W3Dim, t = f + 1;
        int width = DotInteractionKernels.OutputDim(f, d);
        Array.Clear(_dDense);
        Array.Clear(_dSparse);
        for (int s = 0; s < b; s++)
        {
            float[] Row(int i, out int at) { if (i == 0) { at = s * d; return _dense; } at = (s * f + i - 1) * d; return _sparse; }
            float[] Grad(int i) => i == 0 ? _dDense : _dSparse;
            int o = s * width;
            for (int c = 0; c < d; c++) { _dotOut[o + c] = _dense[s * d + c]; _dDense[s * d + c] += _dotGrad[o + c]; }
            int k = d;
            for (int i = 1; i < t; i++)
                for (int j = 0; j < i; j++, k++)
                {
                    var ti = Row(i, out int ai); var tj = Row(j, out int aj);
                    float dot = 0;
                    for (int c = 0; c < d; c++) dot += ti[ai + c] * tj[aj + c];
                    _dotOut[o + k] = dot;
                    float g = _dotGrad[o + k];
                    var gi = Grad(i); var gj = Grad(j);
                    for (int c = 0; c < d; c++) { gi[ai + c] += g * tj[aj + c]; gj[aj + c] += g * ti[ai + c]; }
                }
        }
    }

    /// <summary>W3 kernel level: forward, then backward into zeroed gradients (as the tape's arena gives them).</summary>
    [Benchmark]
    public void W3_DotInteraction_ForwardBackward()
    {
        DotInteractionKernels.Forward(_dense, _sparse, _dotOut, W3Batch, W3Features, W3Dim);
        Array.Clear(_dDense);
        Array.Clear(_dSparse);
        DotInteractionKernels.Backward(_dense, _sparse, _dotGrad, _dDense, _dSparse, W3Batch, W3Features, W3Dim);
    }

    /// <summary>W4 through the engine: CrossNet forward, backward from a fixed seed gradient, tape reset.</summary>
    [Benchmark]
    public void W4_CrossNet_ForwardBackward()
    {
        _x0.Grad = null;
        foreach (var p in _cross.Parameters()) p.ZeroGrad();
        var y = _cross.Forward(_crossTape, _x0);
        _crossTape.Backward(y, _crossSeed);
        _crossTape.Reset();
    }

    /// <summary>W5 through the engine: projections, attention core, residual and LayerNorm, forward and backward.</summary>
    [Benchmark]
    public void W5_SelfAttention_ForwardBackward()
    {
        _tokens.Grad = null;
        foreach (var p in _attention.Parameters()) p.ZeroGrad();
        var y = _attention.Forward(_attentionTape, _tokens);
        _attentionTape.Backward(y, _attentionSeed);
        _attentionTape.Reset();
    }
}

internal sealed class InteractionConfig : ManualConfig
{
    public InteractionConfig() => this.AddSimdJobs();
}

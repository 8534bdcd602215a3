using Recsys.Kernels.Common;

namespace Recsys.Kernels.Interaction;

/// <summary>
/// Multi-head self-attention core over a packed projection qkv [B, T, 3d] (Q in columns [0, d),
/// K in [d, 2d), V in [2d, 3d); head h uses columns [h·dh, (h+1)·dh) of each, dh = d / H):
/// <code>S = Q·Kᵀ / sqrt(dh);  P = softmax_rows(S);  O = P·V</code>
/// Output [B, T, d] with heads concatenated. Work is per (b, h): the T x T scores stay in a stack
/// buffer (L1 at T = 27); only P ([B, H, T, T]) is written out, because backward needs it.
/// </summary>
public static unsafe class AttentionKernels
{
    // Per-chunk scratch up to 16K floats lives on the stack; larger T takes one array per chunk.
    private const int StackScratchLimit = 16 * 1024;

    /// <summary>Forward: output [B, T, d], probs [B, H, T, T] from qkv [B, T, 3d].</summary>
    public static void Forward(ReadOnlySpan<float> qkv, Span<float> output, Span<float> probs, int batch, int tokens, int dim, int heads)
    {
        Check(qkv.Length, output.Length, probs.Length, batch, tokens, dim, heads, nameof(Forward), nameof(output));
        if (batch == 0 || tokens == 0) return;
        fixed (float* pq = qkv, po = output, pp = probs)
        {
            var body = new ForwardBody { Qkv = pq, Output = po, Probs = pp, B = batch, T = tokens, Dim = dim, H = heads };
            long cost = 2L * tokens * tokens * dim;
            KernelParallelism.For(KernelParallelism.Chunks(batch, cost), ref body);
        }
    }

    /// <summary>
    /// Backward: dQkv [B, T, 3d] += gradients from dOutput [B, T, d], given forward's qkv and probs.
    /// dV = Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ⊙ (dP − rowsum(dP ⊙ P));  dQ = dS·K / sqrt(dh);  dK = dSᵀ·Q / sqrt(dh).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> qkv, ReadOnlySpan<float> probs, Span<float> dQkv,
        int batch, int tokens, int dim, int heads)
    {
        Check(qkv.Length, dOutput.Length, probs.Length, batch, tokens, dim, heads, nameof(Backward), nameof(dOutput));
        KernelGuard.AtLeast(dQkv, (long)batch * tokens * 3 * dim, nameof(dQkv), nameof(Backward));
        if (batch == 0 || tokens == 0) return;
        fixed (float* pg = dOutput, pq = qkv, pp = probs, pd = dQkv)
        {
            var body = new BackwardBody { DOutput = pg, Qkv = pq, Probs = pp, DQkv = pd, B = batch, T = tokens, Dim = dim, H = heads };
            long cost = 4L * tokens * tokens * dim;
            KernelParallelism.For(KernelParallelism.Chunks(batch, cost), ref body);
        }
    }

    private struct ForwardBody : IChunkBody
    {
        public float* Qkv, Output, Probs;
        public int B, T, Dim, H;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(B, chunks, chunk);
            int t = T, d = Dim, dh = d / H, stride = 3 * d;
            float scale = 1f / MathF.Sqrt(dh);
            for (int b = start; b < end; b++)
            {
                float* baseRow = Qkv + (long)b * t * stride;
                for (int h = 0; h < H; h++)
                {
                    float* q = baseRow + h * dh, k = baseRow + d + h * dh, v = baseRow + 2 * d + h * dh;
                    float* p = Probs + ((long)b * H + h) * t * t;
                    float* o = Output + (long)b * t * d + h * dh;
                    for (int i = 0; i < t; i++)
                    {
                        float* pi = p + i * t;
                        float* qi = q + (long)i * stride;
                        float max = float.NegativeInfinity;
                        for (int j = 0; j < t; j++)
                        {
                            float s = RowMath.Dot(qi, k + (long)j * stride, dh) * scale;
                            pi[j] = s;
                            if (s > max) max = s;
                        }
                        float sum = 0f;
                        for (int j = 0; j < t; j++)
                        {
                            float e = MathF.Exp(pi[j] - max);
                            pi[j] = e;
                            sum += e;
                        }
                        float inv = 1f / sum;
                        for (int j = 0; j < t; j++) pi[j] *= inv;
                        RowMath.WeightedRowSum(pi, 1, v, stride, t, o + (long)i * d, dh, accumulate: false);
                    }
                }
            }
        }
    }

    private struct BackwardBody : IChunkBody
    {
        public float* DOutput, Qkv, Probs, DQkv;
        public int B, T, Dim, H;

        public void Run(int chunk, int chunks)
        {
            int need = T * T;
            if (need <= StackScratchLimit)
            {
                float* scratch = stackalloc float[need];
                Rows(chunk, chunks, scratch);
            }
            else
            {
                fixed (float* scratch = new float[need]) Rows(chunk, chunks, scratch);
            }
        }

        private readonly void Rows(int chunk, int chunks, float* ds)
        {
            var (start, end) = KernelParallelism.Range(B, chunks, chunk);
            int t = T, d = Dim, dh = d / H, stride = 3 * d;
            float scale = 1f / MathF.Sqrt(dh);
            for (int b = start; b < end; b++)
            {
                float* baseRow = Qkv + (long)b * t * stride;
                float* dBase = DQkv + (long)b * t * stride;
                for (int h = 0; h < H; h++)
                {
                    int off = h * dh;
                    float* q = baseRow + off, k = baseRow + d + off, v = baseRow + 2 * d + off;
                    float* dq = dBase + off, dk = dBase + d + off, dv = dBase + 2 * d + off;
                    float* p = Probs + ((long)b * H + h) * t * t;
                    float* g = DOutput + (long)b * t * d + off;
                    // dS, with 1/sqrt(dh) folded in so dQ and dK need no extra pass.
                    for (int i = 0; i < t; i++)
                    {
                        float* pi = p + i * t, dsi = ds + i * t;
                        float* gi = g + (long)i * d;
                        float dot = 0f;
                        for (int j = 0; j < t; j++)
                        {
                            float dp = RowMath.Dot(gi, v + (long)j * stride, dh);
                            dsi[j] = dp;
                            dot += dp * pi[j];
                        }
                        for (int j = 0; j < t; j++) dsi[j] = pi[j] * (dsi[j] - dot) * scale;
                    }
                    for (int j = 0; j < t; j++)
                    {
                        // dV_j = Σ_i P_ij dO_i;  dK_j = Σ_i dS_ij Q_i (columns of P and dS: stride t).
                        RowMath.WeightedRowSum(p + j, t, g, d, t, dv + (long)j * stride, dh, accumulate: true);
                        RowMath.WeightedRowSum(ds + j, t, q, stride, t, dk + (long)j * stride, dh, accumulate: true);
                    }
                    for (int i = 0; i < t; i++)
                        RowMath.WeightedRowSum(ds + i * t, 1, k, stride, t, dq + (long)i * stride, dh, accumulate: true);
                }
            }
        }
    }

    private static void Check(int qkvLen, int outLen, int probsLen, int batch, int tokens, int dim, int heads, string op, string outName)
    {
        KernelGuard.NonNegative(batch, nameof(batch), op);
        KernelGuard.NonNegative(tokens, nameof(tokens), op);
        KernelGuard.Positive(dim, nameof(dim), op);
        KernelGuard.Positive(heads, nameof(heads), op);
        if (dim % heads != 0)
            throw new ArgumentException($"{op}: model dim {dim} is not divisible by {heads} heads.", nameof(heads));
        long rows = (long)batch * tokens;
        if (qkvLen < rows * 3 * dim)
            throw new ArgumentException($"{op}: 'qkv' needs {rows * 3 * dim} elements ([{batch}, {tokens}, {3 * dim}]), got {qkvLen}.", "qkv");
        if (outLen < rows * dim)
            throw new ArgumentException($"{op}: '{outName}' needs {rows * dim} elements ([{batch}, {tokens}, {dim}]), got {outLen}.", outName);
        long p = (long)batch * heads * tokens * tokens;
        if (probsLen < p)
            throw new ArgumentException($"{op}: 'probs' needs {p} elements ([{batch}, {heads}, {tokens}, {tokens}]), got {probsLen}.", "probs");
    }
}

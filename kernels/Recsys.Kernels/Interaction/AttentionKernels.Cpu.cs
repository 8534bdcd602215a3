using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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
    /// <summary>Forward: output [B, T, d], probs [B, H, T, T] from qkv [B, T, 3d].</summary>
    public static void Forward(ReadOnlySpan<float> qkv, Span<float> output, Span<float> probs, int batch, int tokens, int dim, int heads)
    {
        Check(qkv.Length, output.Length, probs.Length, batch, tokens, dim, heads, nameof(Forward), nameof(output));
        if (batch == 0 || tokens == 0) return;
        fixed (float* pq = qkv, po = output, pp = probs)
        {
            var body = new WithScratch<ForwardBody> { Body = new() { Qkv = pq, Output = po, Probs = pp, B = batch, T = tokens, Dim = dim, H = heads } };
            long cost = 2L * tokens * tokens * dim;
            KernelParallelism.For(KernelParallelism.Chunks(batch, cost), ref body);
        }
    }

    /// <summary>
    /// Backward: dQkv [B, T, 3d] += gradients from dOutput [B, T, d], given forward's qkv and probs
    /// (<paramref name="accumulate"/> false: dQkv is overwritten, so it need not be zeroed first).
    /// dV = Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ⊙ (dP − rowsum(dP ⊙ P));  dQ = dS·K / sqrt(dh);  dK = dSᵀ·Q / sqrt(dh).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> qkv, ReadOnlySpan<float> probs, Span<float> dQkv,
        int batch, int tokens, int dim, int heads, bool accumulate = true)
    {
        Check(qkv.Length, dOutput.Length, probs.Length, batch, tokens, dim, heads, nameof(Backward), nameof(dOutput));
        KernelGuard.AtLeast(dQkv, (long)batch * tokens * 3 * dim, nameof(dQkv), nameof(Backward));
        if (batch == 0 || tokens == 0) return;
        fixed (float* pg = dOutput, pq = qkv, pp = probs, pd = dQkv)
        {
            var body = new WithScratch<BackwardBody>
            {
                Body = new() { DOutput = pg, Qkv = pq, Probs = pp, DQkv = pd, B = batch, T = tokens, Dim = dim, H = heads, Accumulate = accumulate },
            };
            long cost = 4L * tokens * tokens * dim;
            KernelParallelism.For(KernelParallelism.Chunks(batch, cost), ref body);
        }
    }

    /// <summary>T rounded up to whole Vector512s: the row length of the transposed K / V and score scratch.</summary>
    private static int PadTokens(int t) => (t + 15) & ~15;

    /// <summary>Scratch floats of one chunk: a transposed head [dh, Tp] and a score block [T, Tp].</summary>
    private static int ScratchFloats(int t, int dh) => (dh + t) * PadTokens(t);

    /// <summary>dst[c·tp + j] = src[j·stride + c] for j &lt; t, c &lt; dh (columns j ≥ t stay as they are: zero).</summary>
    private static void TransposeHead(float* src, int stride, int t, int dh, float* dst, int tp) =>
        RowMath.Transpose(src, stride, t, dh, dst, tp);

    /// <summary>
    /// Asks for <paramref name="rows"/> rows of <paramref name="floats"/> floats at a stride to be brought into L2 (a
    /// hint: it never faults, so a row past the buffer is harmless). Each (b, h) reads fresh head slices of a qkv far
    /// larger than the caches, in a column pattern the hardware prefetchers do not follow; fetching the next sample's
    /// slices while this one computes halved the kernel's time (1 thread, T = 27: 26.5 → 13.6 ms forward + backward).
    /// </summary>
    private static void PrefetchRows(float* first, int rows, long strideFloats, int floats)
    {
        for (int r = 0; r < rows; r++) CachePrefetch.IntoL2(first + r * strideFloats, floats);
    }

    /// <summary>Lanes of the vector at column <paramref name="c"/> that hold one of the row's <paramref name="t"/> entries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ValidLanes(int c, int t) =>
        Vector512.LessThan(Vector512<int>.Indices + Vector512.Create(c), Vector512.Create(t)).AsSingle();

    /// <summary>
    /// dst[0..t) = softmax(scale · s[0..t)) (scale &gt; 0, so the max of s is the max of scale · s). <paramref name="s"/> is
    /// a padded row of <paramref name="tp"/> floats (a multiple of 16) used as scratch; lanes past t are masked to −∞,
    /// whose exponential is 0, so whole vectors are used throughout and the tail is written with a masked store.
    /// </summary>
    private static void SoftmaxRow(float* s, int t, int tp, float scale, float* dst)
    {
        if (!Avx512F.IsSupported)
        {
            var si = new ReadOnlySpan<float>(s, t);
            var di = new Span<float>(dst, t);
            float m = TensorPrimitives.Max(si);
            TensorPrimitives.Subtract(si, m, di);
            TensorPrimitives.Multiply(di, scale, di);
            TensorPrimitives.Exp(di, di);
            TensorPrimitives.Multiply(di, 1f / TensorPrimitives.Sum(di), di);
            return;
        }
        var negInf = Vector512.Create(float.NegativeInfinity);
        var mx = negInf;
        for (int c = 0; c < tp; c += 16)
            mx = Vector512.Max(mx, Vector512.ConditionalSelect(ValidLanes(c, t), Vector512.Load(s + c), negInf));
        var m256 = Vector256.Max(mx.GetLower(), mx.GetUpper());
        var m128 = Vector128.Max(m256.GetLower(), m256.GetUpper());
        float max = MathF.Max(MathF.Max(m128[0], m128[1]), MathF.Max(m128[2], m128[3]));
        var vm = Vector512.Create(max);
        var vs = Vector512.Create(scale);
        var sum = Vector512<float>.Zero;
        for (int c = 0; c < tp; c += 16)
        {
            var x = Vector512.ConditionalSelect(ValidLanes(c, t), (Vector512.Load(s + c) - vm) * vs, negInf);
            var e = VectorMath.ExpNonPositive(x);
            e.Store(s + c);
            sum += e;
        }
        var inv = Vector512.Create(1f / Vector512.Sum(sum));
        for (int c = 0; c < tp; c += 16)
        {
            var v = Vector512.Load(s + c) * inv;
            if (c + 16 <= t) v.Store(dst + c);
            else Avx512F.MaskStore(dst + c, ValidLanes(c, t), v);
        }
    }

    /// <summary>
    /// ds[0..t) = p ⊙ (ds − Σ_j ds_j p_j) · scale: the softmax backward of one row (ds holds dP on entry, padded to
    /// <paramref name="tp"/> with zeros). p's tail is read with a masked load (masked lanes never fault), so its padding is 0.
    /// </summary>
    private static void SoftmaxBackwardRow(float* ds, float* p, int t, int tp, float scale)
    {
        if (!Avx512F.IsSupported)
        {
            var dsi = new Span<float>(ds, t);
            var pi = new ReadOnlySpan<float>(p, t);
            float d = TensorPrimitives.Dot(dsi, pi);
            TensorPrimitives.Subtract(dsi, d, dsi);
            TensorPrimitives.Multiply(dsi, pi, dsi);
            TensorPrimitives.Multiply(dsi, scale, dsi);
            return;
        }
        var acc = Vector512<float>.Zero;
        for (int c = 0; c < tp; c += 16)
            acc = Vector512.FusedMultiplyAdd(Vector512.Load(ds + c), LoadRow(p, c, t), acc);
        var dot = Vector512.Create(Vector512.Sum(acc));
        var vs = Vector512.Create(scale);
        for (int c = 0; c < tp; c += 16)
            ((Vector512.Load(ds + c) - dot) * LoadRow(p, c, t) * vs).Store(ds + c);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> LoadRow(float* row, int c, int t) =>
        c + 16 <= t ? Vector512.Load(row + c) : Avx512F.MaskLoad(row + c, ValidLanes(c, t), Vector512<float>.Zero);

    /// <summary>
    /// Per (b, h): Kᵀ is copied into scratch so that each block of four score rows is a small matrix product
    /// (broadcast-FMA over Kᵀ's rows, no horizontal sums), the row softmax runs vectorised
    /// (TensorPrimitives), and O = P·V is the same kind of product over V's rows.
    /// </summary>
    private struct ForwardBody : IScratchChunkBody
    {
        public float* Qkv, Output, Probs;
        public int B, T, Dim, H;

        public readonly int ScratchFloats => AttentionKernels.ScratchFloats(T, Dim / H);

        public readonly void Run(int chunk, int chunks, float* scratch)
        {
            var (start, end) = KernelParallelism.Range(B, chunks, chunk);
            int t = T, d = Dim, dh = d / H, stride = 3 * d, tp = PadTokens(t);
            float scale = 1f / MathF.Sqrt(dh);
            float* kt = scratch, s = scratch + dh * tp;
            new Span<float>(kt, dh * tp).Clear(); // padding columns stay zero
            for (int b = start; b < end; b++)
            {
                float* baseRow = Qkv + (long)b * t * stride;
                for (int h = 0; h < H; h++)
                {
                    float* q = baseRow + h * dh, k = baseRow + d + h * dh, v = baseRow + 2 * d + h * dh;
                    float* p = Probs + ((long)b * H + h) * t * t;
                    float* o = Output + (long)b * t * d + h * dh;
                    if (b + 1 < end)
                    {
                        float* next = baseRow + (long)t * stride + h * dh;
                        PrefetchRows(next, t, stride, dh); PrefetchRows(next + d, t, stride, dh); PrefetchRows(next + 2 * d, t, stride, dh);
                    }
                    TransposeHead(k, stride, t, dh, kt, tp);
                    RowMath.WeightedRowSums(q, stride, 1, t, kt, tp, dh, s, tp, tp, accumulate: false); // Q·Kᵀ
                    for (int i = 0; i < t; i++) SoftmaxRow(s + i * tp, t, tp, scale, p + i * t);
                    RowMath.WeightedRowSums(p, t, 1, t, v, stride, t, o, d, dh, accumulate: false); // P·V
                }
            }
        }
    }

    /// <summary>
    /// Per (b, h): dP = dO·Vᵀ as a product over a transposed V, dS = P ⊙ (dP − rowsum(dP ⊙ P)) / sqrt(dh)
    /// vectorised, then dV = Pᵀ·dO, dK = dSᵀ·Q and dQ = dS·K as products that read P and dS transposed through strides.
    /// </summary>
    private struct BackwardBody : IScratchChunkBody
    {
        public float* DOutput, Qkv, Probs, DQkv;
        public int B, T, Dim, H;
        public bool Accumulate;

        public readonly int ScratchFloats => AttentionKernels.ScratchFloats(T, Dim / H);

        public readonly void Run(int chunk, int chunks, float* scratch)
        {
            var (start, end) = KernelParallelism.Range(B, chunks, chunk);
            int t = T, d = Dim, dh = d / H, stride = 3 * d, tp = PadTokens(t);
            float scale = 1f / MathF.Sqrt(dh);
            float* vt = scratch, ds = scratch + dh * tp;
            new Span<float>(vt, dh * tp).Clear();
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
                    if (b + 1 < end)
                    {
                        // Next sample: its q, k, v slices, dOutput slice and probabilities, and the dQkv slices written.
                        float* next = baseRow + (long)t * stride + off, nextD = dBase + (long)t * stride + off;
                        PrefetchRows(next, t, stride, dh); PrefetchRows(next + d, t, stride, dh); PrefetchRows(next + 2 * d, t, stride, dh);
                        PrefetchRows(g + (long)t * d, t, d, dh);
                        PrefetchRows(p + (long)H * t * t, 1, 0, t * t);
                        PrefetchRows(nextD, t, stride, dh); PrefetchRows(nextD + d, t, stride, dh); PrefetchRows(nextD + 2 * d, t, stride, dh);
                    }
                    TransposeHead(v, stride, t, dh, vt, tp);
                    RowMath.WeightedRowSums(g, d, 1, t, vt, tp, dh, ds, tp, tp, accumulate: false); // dP = dO·Vᵀ
                    for (int i = 0; i < t; i++) SoftmaxBackwardRow(ds + i * tp, p + i * t, t, tp, scale);
                    RowMath.WeightedRowSums(p, 1, t, t, g, d, t, dv, stride, dh, Accumulate);    // dV_j += Σ_i P_ij dO_i
                    RowMath.WeightedRowSums(ds, 1, tp, t, q, stride, t, dk, stride, dh, Accumulate); // dK_j += Σ_i dS_ij Q_i
                    RowMath.WeightedRowSums(ds, tp, 1, t, k, stride, t, dq, stride, dh, Accumulate); // dQ_i += Σ_j dS_ij K_j
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

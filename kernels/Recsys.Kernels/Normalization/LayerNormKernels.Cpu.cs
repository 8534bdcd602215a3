using System.Runtime.Intrinsics;
using Recsys.Kernels.Common;
using Recsys.Kernels.Interaction;

namespace Recsys.Kernels.Normalization;

/// <summary>
/// Layer normalisation over the last dimension of a row-major [N, d] block:
/// <code>y = (x − mean) · rstd · γ + β,   rstd = 1 / sqrt(var + eps)   (biased variance)</code>
/// Forward saves mean [N] and rstd [N]; backward rebuilds x̂ from them:
/// <code>dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   g = dy ⊙ γ;   dγ = Σ_rows dy ⊙ x̂;   dβ = Σ_rows dy</code>
/// dγ and dβ are summed per fixed block of rows in parallel, then block by block in order, so the result does not depend
/// on scheduling or the thread count.
/// </summary>
public static unsafe class LayerNormKernels
{
    /// <summary>Forward: y [N, d], mean [N], rstd [N] from x [N, d], gamma [d], beta [d].</summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> output,
        Span<float> mean, Span<float> rstd, int rows, int dim, float eps)
    {
        Check(x.Length, output.Length, mean.Length, rstd.Length, rows, dim, nameof(Forward), nameof(output));
        KernelGuard.AtLeast(gamma, dim, nameof(gamma), nameof(Forward));
        KernelGuard.AtLeast(beta, dim, nameof(beta), nameof(Forward));
        if (rows == 0) return;
        fixed (float* px = x, pg = gamma, pb = beta, py = output, pm = mean, pr = rstd)
        {
            var body = new ForwardBody { X = px, Gamma = pg, Beta = pb, Y = py, Mean = pm, Rstd = pr, Rows = rows, Dim = dim, Eps = eps };
            KernelParallelism.For(KernelParallelism.Chunks(rows, 6L * dim, 131_072), ref body);
        }
    }

    /// <summary>
    /// Backward from dOutput [N, d]: dX [N, d] += ∂/∂x, dGamma [d] += Σ dy ⊙ x̂, dBeta [d] += Σ dy.
    /// Any of the three gradients may be empty (not needed). <paramref name="overwriteDX"/>: dX = ∂/∂x instead (a gradient
    /// buffer just made and not zeroed: no zero-fill and no read of it; the same bits as adding to zeros).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd, Span<float> dX, Span<float> dGamma, Span<float> dBeta, int rows, int dim,
        bool overwriteDX = false)
    {
        Check(x.Length, dOutput.Length, mean.Length, rstd.Length, rows, dim, nameof(Backward), nameof(dOutput));
        KernelGuard.AtLeast(gamma, dim, nameof(gamma), nameof(Backward));
        if (!dX.IsEmpty) KernelGuard.AtLeast(dX, (long)rows * dim, nameof(dX), nameof(Backward));
        if (!dGamma.IsEmpty) KernelGuard.AtLeast(dGamma, dim, nameof(dGamma), nameof(Backward));
        if (!dBeta.IsEmpty) KernelGuard.AtLeast(dBeta, dim, nameof(dBeta), nameof(Backward));
        if (rows == 0) return;
        fixed (float* pgo = dOutput, px = x, pg = gamma, pm = mean, pr = rstd, pdx = dX, pdg = dGamma, pdb = dBeta)
        {
            if (dGamma.IsEmpty && dBeta.IsEmpty)
            {
                if (!dX.IsEmpty)
                {
                    var body = new BackwardRowsBody { DY = pgo, X = px, Gamma = pg, Mean = pm, Rstd = pr, DX = pdx, Rows = rows, Dim = dim, Overwrite = overwriteDX };
                    KernelParallelism.For(KernelParallelism.Chunks(rows, 8L * dim, 131_072), ref body);
                }
                return;
            }
            // dγ / dβ: sums over fixed blocks of rows in parallel, then the block sums in block order — the same bits for
            // any thread count, and two threads even when d is one cache line wide (a column split left d = 64 to one).
            // dX is computed in the same walk, while the row's dY and x are in L1 (one pass over them instead of two).
            int blocks = (rows + ParamRowBlock - 1) / ParamRowBlock;
            float[] rented = System.Buffers.ArrayPool<float>.Shared.Rent(blocks * 2 * dim);
            try
            {
                fixed (float* partial = rented)
                {
                    var body = new BackwardBlocksBody
                    {
                        DY = pgo, X = px, Gamma = pg, Mean = pm, Rstd = pr, DX = dX.IsEmpty ? null : pdx, Partial = partial,
                        Gammas = !dGamma.IsEmpty, Rows = rows, Dim = dim, Blocks = blocks, Overwrite = overwriteDX,
                    };
                    KernelParallelism.For(KernelParallelism.Chunks(blocks, (dX.IsEmpty ? 3L : 11L) * dim * ParamRowBlock, 131_072), ref body);
                    for (int b = 0; b < blocks; b++)
                    {
                        float* part = partial + (long)b * 2 * dim;
                        if (!dGamma.IsEmpty) RowMath.AddInPlace(part, pdg, dim);
                        if (!dBeta.IsEmpty) RowMath.AddInPlace(part + dim, pdb, dim);
                    }
                }
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(rented);
            }
        }
    }

    private struct ForwardBody : IChunkBody
    {
        public float* X, Gamma, Beta, Y, Mean, Rstd;
        public int Rows, Dim;
        public float Eps;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(Rows, chunks, chunk);
            int n = Dim;
            for (int r = start; r < end; r++)
            {
                float* x = X + (long)r * n, y = Y + (long)r * n;
                // Two passes (mean, then squared deviations): no cancellation when |mean| >> std.
                float mu = Sum(x, n) / n;
                float var = SquaredDeviation(x, mu, n) / n;
                float rs = 1f / MathF.Sqrt(var + Eps);
                Mean[r] = mu;
                Rstd[r] = rs;
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    var vm = Vector512.Create(mu); var vr = Vector512.Create(rs);
                    for (; i + 16 <= n; i += 16)
                        Vector512.FusedMultiplyAdd((Vector512.Load(x + i) - vm) * vr, Vector512.Load(Gamma + i), Vector512.Load(Beta + i)).Store(y + i);
                }
                if (Vector256.IsHardwareAccelerated)
                {
                    var vm = Vector256.Create(mu); var vr = Vector256.Create(rs);
                    for (; i + 8 <= n; i += 8)
                        Vector256.FusedMultiplyAdd((Vector256.Load(x + i) - vm) * vr, Vector256.Load(Gamma + i), Vector256.Load(Beta + i)).Store(y + i);
                }
                if (Vector128.IsHardwareAccelerated)
                {
                    var vm = Vector128.Create(mu); var vr = Vector128.Create(rs);
                    for (; i + 4 <= n; i += 4)
                        Vector128.FusedMultiplyAdd((Vector128.Load(x + i) - vm) * vr, Vector128.Load(Gamma + i), Vector128.Load(Beta + i)).Store(y + i);
                }
                for (; i < n; i++) y[i] = (x[i] - mu) * rs * Gamma[i] + Beta[i];
            }
        }
    }

    private struct BackwardRowsBody : IChunkBody
    {
        public float* DY, X, Gamma, Mean, Rstd, DX;
        public int Rows, Dim;
        public bool Overwrite;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(Rows, chunks, chunk);
            int n = Dim;
            for (int r = start; r < end; r++)
                BackwardRow(DY + (long)r * n, X + (long)r * n, Gamma, Mean[r], Rstd[r], DX + (long)r * n, n, Overwrite);
        }
    }

    /// <summary>dx += rstd · (g − mean(g) − x̂ · mean(g·x̂)) for one row, g = dy ⊙ γ, x̂ = (x − μ) · rstd (dx = … when overwriting).</summary>
    private static void BackwardRow(float* dy, float* x, float* gamma, float mu, float rs, float* dx, int n, bool overwrite)
    {
        // Pass 1: Σ g and Σ g·x̂ with g = dy ⊙ γ.
        float sg = 0f, sgx = 0f;
        int i = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var vm = Vector512.Create(mu); var vr = Vector512.Create(rs);
            var a = Vector512<float>.Zero; var c = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var g = Vector512.Load(dy + i) * Vector512.Load(gamma + i);
                a += g;
                c = Vector512.FusedMultiplyAdd(g, (Vector512.Load(x + i) - vm) * vr, c);
            }
            sg += Vector512.Sum(a); sgx += Vector512.Sum(c);
        }
        if (Vector256.IsHardwareAccelerated && n - i >= 8)
        {
            var vm = Vector256.Create(mu); var vr = Vector256.Create(rs);
            var a = Vector256<float>.Zero; var c = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var g = Vector256.Load(dy + i) * Vector256.Load(gamma + i);
                a += g;
                c = Vector256.FusedMultiplyAdd(g, (Vector256.Load(x + i) - vm) * vr, c);
            }
            sg += Vector256.Sum(a); sgx += Vector256.Sum(c);
        }
        if (Vector128.IsHardwareAccelerated && n - i >= 4)
        {
            var vm = Vector128.Create(mu); var vr = Vector128.Create(rs);
            var a = Vector128<float>.Zero; var c = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4)
            {
                var g = Vector128.Load(dy + i) * Vector128.Load(gamma + i);
                a += g;
                c = Vector128.FusedMultiplyAdd(g, (Vector128.Load(x + i) - vm) * vr, c);
            }
            sg += Vector128.Sum(a); sgx += Vector128.Sum(c);
        }
        for (; i < n; i++)
        {
            float g = dy[i] * gamma[i];
            sg += g;
            sgx += g * (x[i] - mu) * rs;
        }
        float mg = sg / n, mgx = sgx / n;
        // Pass 2: dx += rstd · (g − mean(g) − x̂ · mean(g·x̂)).
        i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vm = Vector512.Create(mu); var vr = Vector512.Create(rs);
            var vmg = Vector512.Create(mg); var vmgx = Vector512.Create(mgx);
            for (; i + 16 <= n; i += 16)
            {
                var g = Vector512.Load(dy + i) * Vector512.Load(gamma + i);
                var xh = (Vector512.Load(x + i) - vm) * vr;
                Vector512.FusedMultiplyAdd(g - vmg - xh * vmgx, vr, overwrite ? Vector512<float>.Zero : Vector512.Load(dx + i)).Store(dx + i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var vm = Vector256.Create(mu); var vr = Vector256.Create(rs);
            var vmg = Vector256.Create(mg); var vmgx = Vector256.Create(mgx);
            for (; i + 8 <= n; i += 8)
            {
                var g = Vector256.Load(dy + i) * Vector256.Load(gamma + i);
                var xh = (Vector256.Load(x + i) - vm) * vr;
                Vector256.FusedMultiplyAdd(g - vmg - xh * vmgx, vr, overwrite ? Vector256<float>.Zero : Vector256.Load(dx + i)).Store(dx + i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var vm = Vector128.Create(mu); var vr = Vector128.Create(rs);
            var vmg = Vector128.Create(mg); var vmgx = Vector128.Create(mgx);
            for (; i + 4 <= n; i += 4)
            {
                var g = Vector128.Load(dy + i) * Vector128.Load(gamma + i);
                var xh = (Vector128.Load(x + i) - vm) * vr;
                Vector128.FusedMultiplyAdd(g - vmg - xh * vmgx, vr, overwrite ? Vector128<float>.Zero : Vector128.Load(dx + i)).Store(dx + i);
            }
        }
        for (; i < n; i++)
        {
            float g = dy[i] * gamma[i];
            float xh = (x[i] - mu) * rs;
            dx[i] = (overwrite ? 0f : dx[i]) + (g - mg - xh * mgx) * rs;
        }
    }

    /// <summary>Rows in one block of the dγ / dβ sums (each block summed by one thread, in row order).</summary>
    private const int ParamRowBlock = 1024;

    /// <summary>
    /// Block b of rows: Partial[b] = (Σ dy ⊙ x̂, Σ dy) over its rows, each [d], summed in row order; with DX set, each row's
    /// dX too (<see cref="BackwardRow"/>), right before its dγ / dβ terms.
    /// </summary>
    private struct BackwardBlocksBody : IChunkBody
    {
        public float* DY, X, Gamma, Mean, Rstd, DX, Partial;
        public int Rows, Dim, Blocks;
        public bool Gammas, Overwrite;

        public readonly void Run(int chunk, int chunks)
        {
            var (start, end) = KernelParallelism.Range(Blocks, chunks, chunk);
            int n = Dim;
            for (int blk = start; blk < end; blk++)
            {
                float* dg = Partial + (long)blk * 2 * n, db = dg + n;
                new Span<float>(dg, 2 * n).Clear();
                int r1 = Math.Min(Rows, (blk + 1) * ParamRowBlock);
                for (int r = blk * ParamRowBlock; r < r1; r++)
                {
                    float* dy = DY + (long)r * n, x = X + (long)r * n;
                    float mu = Mean[r], rs = Rstd[r];
                    if (DX != null) BackwardRow(dy, x, Gamma, mu, rs, DX + (long)r * n, n, Overwrite);
                    RowMath.AddInPlace(dy, db, n);
                    if (!Gammas) continue;
                    int i = 0;
                    if (Vector512.IsHardwareAccelerated)
                    {
                        var vm = Vector512.Create(mu); var vr = Vector512.Create(rs);
                        for (; i + 16 <= n; i += 16)
                            Vector512.FusedMultiplyAdd(Vector512.Load(dy + i), (Vector512.Load(x + i) - vm) * vr, Vector512.Load(dg + i)).Store(dg + i);
                    }
                    if (Vector256.IsHardwareAccelerated)
                    {
                        var vm = Vector256.Create(mu); var vr = Vector256.Create(rs);
                        for (; i + 8 <= n; i += 8)
                            Vector256.FusedMultiplyAdd(Vector256.Load(dy + i), (Vector256.Load(x + i) - vm) * vr, Vector256.Load(dg + i)).Store(dg + i);
                    }
                    for (; i < n; i++) dg[i] += dy[i] * (x[i] - mu) * rs;
                }
            }
        }
    }

    private static float Sum(float* x, int n)
    {
        int i = 0;
        float s = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var a = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16) a += Vector512.Load(x + i);
            s += Vector512.Sum(a);
        }
        if (Vector256.IsHardwareAccelerated && n - i >= 8)
        {
            var a = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8) a += Vector256.Load(x + i);
            s += Vector256.Sum(a);
        }
        if (Vector128.IsHardwareAccelerated && n - i >= 4)
        {
            var a = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4) a += Vector128.Load(x + i);
            s += Vector128.Sum(a);
        }
        for (; i < n; i++) s += x[i];
        return s;
    }

    private static float SquaredDeviation(float* x, float mu, int n)
    {
        int i = 0;
        float s = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var a = Vector512<float>.Zero; var m = Vector512.Create(mu);
            for (; i + 16 <= n; i += 16) { var dv = Vector512.Load(x + i) - m; a = Vector512.FusedMultiplyAdd(dv, dv, a); }
            s += Vector512.Sum(a);
        }
        if (Vector256.IsHardwareAccelerated && n - i >= 8)
        {
            var a = Vector256<float>.Zero; var m = Vector256.Create(mu);
            for (; i + 8 <= n; i += 8) { var dv = Vector256.Load(x + i) - m; a = Vector256.FusedMultiplyAdd(dv, dv, a); }
            s += Vector256.Sum(a);
        }
        if (Vector128.IsHardwareAccelerated && n - i >= 4)
        {
            var a = Vector128<float>.Zero; var m = Vector128.Create(mu);
            for (; i + 4 <= n; i += 4) { var dv = Vector128.Load(x + i) - m; a = Vector128.FusedMultiplyAdd(dv, dv, a); }
            s += Vector128.Sum(a);
        }
        for (; i < n; i++) { float dv = x[i] - mu; s += dv * dv; }
        return s;
    }

    private static void Check(int xLen, int yLen, int meanLen, int rstdLen, int rows, int dim, string op, string yName)
    {
        KernelGuard.NonNegative(rows, nameof(rows), op);
        KernelGuard.Positive(dim, nameof(dim), op);
        long size = (long)rows * dim;
        if (xLen < size) throw new ArgumentException($"{op}: 'x' needs {size} elements ([{rows}, {dim}]), got {xLen}.", "x");
        if (yLen < size) throw new ArgumentException($"{op}: '{yName}' needs {size} elements ([{rows}, {dim}]), got {yLen}.", yName);
        if (meanLen < rows) throw new ArgumentException($"{op}: 'mean' needs {rows} elements, got {meanLen}.", "mean");
        if (rstdLen < rows) throw new ArgumentException($"{op}: 'rstd' needs {rows} elements, got {rstdLen}.", "rstd");
    }
}

using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Recsys.Kernels.Gpu;

namespace Recsys.Kernels.Gemm;

/// <summary>Which operand of a row-major GEMM is transposed in storage: C = A·B (NN), Aᵀ·B (TN) or A·Bᵀ (NT).</summary>
public enum GemmLayout
{
    /// <summary>C[m,n] = A[m,k]·B[k,n].</summary>
    NN,
    /// <summary>C[m,n] = Aᵀ·B with A stored [k,m].</summary>
    TN,
    /// <summary>C[m,n] = A·Bᵀ with B stored [n,k].</summary>
    NT,
}

/// <summary>
/// One cuBLAS <c>sgemm</c> call, column-major, that computes a row-major product: a row-major X [r, c] is the
/// column-major Xᵀ [c, r] with leading dimension c, so row-major C = op(A)·op(B) is column-major
/// Cᵀ = op(B)ᵀ·op(A)ᵀ — cuBLAS gets B first, the two sizes m and n swapped, and each operand transposed exactly
/// when its row-major layout is not.
/// </summary>
public readonly record struct CuBlasGemmCall(
    CuBlasOperation OpFirst, CuBlasOperation OpSecond, int M, int N, int K, int LdFirst, int LdSecond, int LdC)
{
    /// <summary>The call for row-major C[m,n] (+)= op(A)·op(B) in <paramref name="layout"/>; the first cuBLAS operand is B, the second A.</summary>
    public static CuBlasGemmCall For(GemmLayout layout, int m, int n, int k) => layout switch
    {
        // A [m,k] = col-major Aᵀ (ld k); B [k,n] = col-major Bᵀ (ld n): Cᵀ = Bᵀ·Aᵀ.
        GemmLayout.NN => new(CuBlasOperation.NonTranspose, CuBlasOperation.NonTranspose, n, m, k, n, k, n),
        // A [k,m] = col-major Aᵀ [m,k] (ld m); B [k,n] = col-major Bᵀ (ld n): Cᵀ = Bᵀ·A = Bᵀ·(Aᵀ)ᵀ.
        GemmLayout.TN => new(CuBlasOperation.NonTranspose, CuBlasOperation.Transpose, n, m, k, n, m, n),
        // A [m,k] = col-major Aᵀ (ld k); B [n,k] = col-major Bᵀ [k,n] (ld k): Cᵀ = B·Aᵀ = (Bᵀ)ᵀ·Aᵀ.
        GemmLayout.NT => new(CuBlasOperation.Transpose, CuBlasOperation.NonTranspose, n, m, k, k, k, n),
        _ => throw new ArgumentOutOfRangeException(nameof(layout), layout, $"CuBlasGemmCall.For: unknown layout {layout}."),
    };
}

/// <summary>
/// The three GEMM layouts through NVIDIA's cuBLAS (ILGPU's binding), the alternative to the engine's own tiled
/// kernel in <see cref="GemmGpuKernels"/> on CUDA devices. cuBLAS is not part of the CUDA driver: it needs
/// <c>libcublas</c> on the library path (a CUDA toolkit or the pip <c>nvidia-cublas</c> wheel that PyTorch installs).
/// FP32 math only (no TF32 tensor-op mode), so results match the CPU reference at float32 tolerance.
/// One cuBLAS handle per device, bound to the device's stream, created on first use and disposed with the device.
/// </summary>
public static class GemmCuBlasKernels
{
    /// <summary>The cuBLAS handle of one CUDA device.</summary>
    public sealed class Handle : IGpuKernelSet<Handle>, IDisposable
    {
        internal CuBlas Blas { get; private init; } = null!;

        public static Handle Load(GpuDevice device)
        {
            if (device.Accelerator is not CudaAccelerator cuda)
                throw new InvalidOperationException(
                    $"cuBLAS GEMM: needs a CUDA device, got {device.Backend} ({device.Accelerator.Name}); use GemmGpuKernels, which runs everywhere.");
            try
            {
                var blas = new CuBlas(cuda) { PointerMode = CuBlasPointerMode.Host, MathMode = CuBlasMathMode.DefaultMath };
                blas.Stream = (CudaStream)device.Stream;
                return new Handle { Blas = blas };
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or CuBlasException or TypeInitializationException)
            {
                throw new InvalidOperationException(
                    $"cuBLAS GEMM: libcublas could not be loaded or initialised ({ex.GetType().Name}: {ex.Message}). " +
                    "Put a CUDA 12 libcublas on LD_LIBRARY_PATH, or use the engine's own GPU GEMM.", ex);
            }
        }

        public void Dispose() => Blas?.Dispose();
    }

    /// <summary>True when <paramref name="device"/> is a CUDA device and cuBLAS loads; <paramref name="reason"/> says why not otherwise.</summary>
    public static bool IsAvailable(GpuDevice device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        try
        {
            device.Kernels<Handle>();
            reason = "cuBLAS loaded";
            return true;
        }
        catch (InvalidOperationException ex)
        {
            reason = ex.Message;
            return false;
        }
    }

    public static void MatMul(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k, bool accumulate)
        => Gemm(device, GemmLayout.NN, a, b, c, m, n, k, accumulate);

    public static void MatMulTN(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k, bool accumulate)
        => Gemm(device, GemmLayout.TN, a, b, c, m, n, k, accumulate);

    public static void MatMulNT(GpuDevice device, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k, bool accumulate)
        => Gemm(device, GemmLayout.NT, a, b, c, m, n, k, accumulate);

    /// <summary>Row-major C[m,n] (+)= op(A)·op(B) in <paramref name="layout"/>, launched on the device's stream without waiting.</summary>
    public static void Gemm(GpuDevice device, GemmLayout layout, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c,
        int m, int n, int k, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(device);
        string op = $"cuBLAS GEMM {layout}";
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentOutOfRangeException(nameof(m), $"{op}: sizes must be >= 0, got m {m}, n {n}, k {k}.");
        GpuKernelUtil.AtLeast(a, (long)m * k, nameof(a), op);
        GpuKernelUtil.AtLeast(b, (long)k * n, nameof(b), op);
        GpuKernelUtil.AtLeast(c, (long)m * n, nameof(c), op);
        if (m == 0 || n == 0) return;
        var blas = device.Kernels<Handle>().Blas;
        if (k == 0)
        {
            if (!accumulate) c.SubView(0, (long)m * n).MemSetToZero(device.Stream);
            return;
        }
        var call = CuBlasGemmCall.For(layout, m, n, k);
        blas.Gemm(call.OpFirst, call.OpSecond, call.M, call.N, call.K, 1f, b, call.LdFirst, a, call.LdSecond,
            accumulate ? 1f : 0f, c, call.LdC);
    }
}

using System.Diagnostics;
using System.Globalization;
using ILGPU;
using ILGPU.Runtime;
using Recsys.Kernels.Gemm;
using Recsys.Kernels.Gpu;

namespace Recsys.Perf.Lab;

/// <summary>
/// GPU GEMM lab: the engine's tiled ILGPU kernel against cuBLAS at the GEMM shapes of a DLRM / DCNv2 step,
/// validated against each other, then timed (median of device-synchronised runs) with GFLOP/s and the winner
/// per shape — the data behind the choice of GEMM backend on a CUDA device.
/// <code>dotnet run -c Release --project perf/Recsys.Perf -- lab gpu-gemm [--device gpu|ilgpu-cpu] [--quick] [--reps 20]</code>
/// On <c>ilgpu-cpu</c> (no GPU) only the tiled kernel runs, at tiny shapes: a smoke test of the lab itself.
/// </summary>
internal static class GpuGemmLab
{
    private static readonly (GemmLayout Layout, int M, int N, int K, string Role)[] Shapes =
    {
        (GemmLayout.NT, 4096, 512, 512, "square reference"),
        (GemmLayout.NT, 4096, 512, 415, "top.0 forward"),
        (GemmLayout.NN, 4096, 415, 512, "top.0 dX"),
        (GemmLayout.TN, 512, 415, 4096, "top.0 dW"),
        (GemmLayout.NT, 4096, 256, 512, "top.2 forward"),
        (GemmLayout.NT, 4096, 429, 429, "DCN cross"),
        (GemmLayout.NT, 65536, 512, 512, "large batch forward"),
        (GemmLayout.NT, 65536, 1024, 1024, "large batch, wide"),
    };

    public static int Run(string[] args)
    {
        string deviceName = Arg(args, "--device") ?? "gpu";
        bool quick = args.Contains("--quick");
        int reps = int.Parse(Arg(args, "--reps") ?? (quick ? "3" : "20"), CultureInfo.InvariantCulture);
        var backend = deviceName switch
        {
            "gpu" => GpuBackend.Cuda,
            "ilgpu-cpu" => GpuBackend.IlgpuCpu,
            _ => throw new ArgumentException($"lab gpu-gemm: unknown device '{deviceName}': expected gpu or ilgpu-cpu."),
        };
        using var device = GpuDevice.Create(backend);
        bool blas = GemmCuBlasKernels.IsAvailable(device, out var reason);
        Console.WriteLine($"gpu-gemm lab on {device}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; cuBLAS: {(blas ? "yes" : reason)}");
        foreach (var (layout, m0, n0, k0, role) in Shapes)
        {
            int m = quick ? Math.Max(1, m0 / 128) : m0, n = quick ? Math.Max(1, n0 / 16) : n0, k = quick ? Math.Max(1, k0 / 16) : k0;
            using var a = device.Accelerator.Allocate1D(Random((long)m * k, 1));
            using var b = device.Accelerator.Allocate1D(Random((long)k * n, 2));
            using var c1 = device.Accelerator.Allocate1D<float>((long)m * n);
            using var c2 = device.Accelerator.Allocate1D<float>((long)m * n);
            double flops = 2.0 * m * n * k;
            double tiled = Time(device, reps, () => Tiled(device, layout, a.View, b.View, c1.View, m, n, k));
            string line = string.Create(CultureInfo.InvariantCulture,
                $"  {layout} {m}x{n}x{k} ({role}): tiled {tiled:F3} ms = {flops / tiled / 1e6:F0} GFLOP/s");
            if (blas)
            {
                double cublas = Time(device, reps, () => GemmCuBlasKernels.Gemm(device, layout, a.View, b.View, c2.View, m, n, k, accumulate: false));
                double err = MaxRelDiff(c1.GetAsArray1D(), c2.GetAsArray1D());
                line += string.Create(CultureInfo.InvariantCulture,
                    $"; cuBLAS {cublas:F3} ms = {flops / cublas / 1e6:F0} GFLOP/s; winner {(tiled < cublas ? "tiled" : "cuBLAS")} ({Math.Max(tiled, cublas) / Math.Min(tiled, cublas):F2}x); max rel diff {err:E1}");
            }
            Console.WriteLine(line);
        }
        return 0;
    }

    private static void Tiled(GpuDevice device, GemmLayout layout, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k)
    {
        switch (layout)
        {
            case GemmLayout.NN: GemmGpuKernels.MatMul(device, a, b, c, m, n, k, accumulate: false); break;
            case GemmLayout.TN: GemmGpuKernels.MatMulTN(device, a, b, c, m, n, k, accumulate: false); break;
            default: GemmGpuKernels.MatMulNT(device, a, b, c, m, n, k, accumulate: false); break;
        }
    }

    private static double Time(GpuDevice device, int reps, Action launch)
    {
        launch();
        device.Synchronize();
        var times = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            launch();
            device.Synchronize();
            times[r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    private static float[] Random(long n, int seed)
    {
        var rnd = new Random(seed);
        var x = new float[n];
        for (long i = 0; i < n; i++) x[i] = (float)(rnd.NextDouble() * 2 - 1);
        return x;
    }

    private static double MaxRelDiff(float[] x, float[] y)
    {
        double worst = 0;
        for (int i = 0; i < x.Length; i++) worst = Math.Max(worst, Math.Abs(x[i] - y[i]) / (1 + Math.Abs(y[i])));
        return worst;
    }

    private static string? Arg(string[] args, string name)
    {
        int at = Array.IndexOf(args, name);
        return at < 0 || at + 1 >= args.Length ? null : args[at + 1];
    }
}

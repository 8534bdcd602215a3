using BenchmarkDotNet.Running;

// dotnet run -c Release --project perf/Recsys.Perf -- --filter '*Gemm*'      BenchmarkDotNet suites
// dotnet run -c Release --project perf/Recsys.Perf -- lab embedding-bag      kernel lab (versions, validation, sweep)
// dotnet run -c Release --project perf/Recsys.Perf -- lab gpu-gemm --device gpu   tiled ILGPU GEMM vs cuBLAS per shape
if (args.Length >= 2 && args[0] == "lab")
    return args[1] switch
    {
        "embedding-bag" => Recsys.Perf.Lab.EmbeddingBagLab.Run(args[2..]),
        "gpu-gemm" => Recsys.Perf.Lab.GpuGemmLab.Run(args[2..]),
        _ => Fail($"unknown lab '{args[1]}': expected embedding-bag or gpu-gemm"),
    };
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;

static int Fail(string message)
{
    Console.Error.WriteLine(message);
    return 2;
}

/// <summary>Entry point of the benchmark suites; public so BenchmarkDotNet can find the assembly's suites.</summary>
public partial class Program;

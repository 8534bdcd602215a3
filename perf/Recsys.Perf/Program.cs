using BenchmarkDotNet.Running;

// dotnet run -c Release --project perf/Recsys.Perf -- --filter '*Gemm*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

/// <summary>Entry point of the benchmark suites; public so BenchmarkDotNet can find the assembly's suites.</summary>
public partial class Program;

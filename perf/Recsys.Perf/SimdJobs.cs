using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace Recsys.Perf;

/// <summary>
/// The instruction-set jobs every kernel suite runs: <c>Vector512</c> (the machine's widest vectors) and
/// <c>Vector256</c> (the same process with AVX-512 switched off through <c>DOTNET_EnableAVX512F=0</c>, the path a
/// CPU without AVX-512 takes). The scalar reference is each suite's baseline method, so the table shows the
/// speed-up of each SIMD width over scalar side by side.
/// </summary>
internal static class SimdJobs
{
    public static ManualConfig AddSimdJobs(this ManualConfig config)
    {
        config.AddJob(Job.Default.WithId("Vector512"));
        config.AddJob(Job.Default.WithId("Vector256").WithEnvironmentVariables(new EnvironmentVariable("DOTNET_EnableAVX512F", "0")));
        return config;
    }
}

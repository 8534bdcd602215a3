using System.Diagnostics;
using System.Text;
using NUnit.Framework;
using Recsys.Kernels.Gemm;

namespace Recsys.Tests.Kernels;

/// <summary>
/// Re-runs every <c>Kernel</c>-category test in a child process with one hardware feature switched off,
/// so the Vector256, Vector128 and scalar paths are tested on a machine whose JIT would otherwise always
/// pick Vector512. The child's <c>HardwareSwitches_WhenDisabledByEnvironment_AreHonoured</c> test
/// asserts that the switch really took effect.
/// </summary>
[Category("Fallback")]
[NonParallelizable]
public class SimdFallbackTests
{
    // .NET 10 reads DOTNET_EnableAVX512 for the whole AVX-512 group; DOTNET_EnableAVX512F is the older name.
    [TestCase("DOTNET_EnableAVX512F=0", "DOTNET_EnableAVX512=0")]
    [TestCase("DOTNET_EnableAVX2=0")]
    [TestCase("DOTNET_EnableHWIntrinsic=0")]
    public void KernelTests_WithFeatureDisabled_Pass(params string[] settings)
    {
        string assembly = typeof(GemmKernels).Assembly.Location;
        string testAssembly = typeof(SimdFallbackTests).Assembly.Location;
        Assert.That(File.Exists(testAssembly), Is.True, $"test assembly not found at {testAssembly} (kernels at {assembly})");

        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(testAssembly)!,
        };
        psi.ArgumentList.Add("test");
        psi.ArgumentList.Add(testAssembly);
        psi.ArgumentList.Add("--filter");
        psi.ArgumentList.Add("TestCategory=Kernel");
        foreach (var s in settings)
        {
            int eq = s.IndexOf('=');
            psi.Environment[s[..eq]] = s[(eq + 1)..];
        }

        var output = new StringBuilder();
        using var child = new Process { StartInfo = psi };
        child.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        child.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        child.Start();
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        if (!child.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail($"Kernel tests with {string.Join(", ", settings)} did not finish within 10 minutes.\n{Tail(output)}");
        }
        child.WaitForExit(); // drains the redirected streams
        Assert.That(child.ExitCode, Is.EqualTo(0), $"Kernel tests with {string.Join(", ", settings)} failed:\n{Tail(output)}");
        TestContext.Out.WriteLine(Tail(output, 600));
    }

    private static string Tail(StringBuilder sb, int chars = 6000)
    {
        lock (sb)
        {
            var s = sb.ToString();
            return s.Length <= chars ? s : "..." + s[^chars..];
        }
    }
}

using System.Diagnostics;

namespace Recsys.Cli.Bench;

/// <summary>
/// Runs the peer harness for one workload at a time, so that <c>recsys bench --peer-command</c> can put each engine
/// workload right next to the peer's run of the same workload. The host's memory bandwidth and clock drift up to 2x within
/// minutes: a full peer run (~4 minutes) followed by a full engine run compares W1 measured minutes apart, and that gap
/// moved W1's ratios by more than any change being measured.
/// </summary>
public static class PeerCommand
{
    /// <summary>How much of the peer's stderr a failure message quotes (its last lines).</summary>
    private const int ErrorTailChars = 2000;

    /// <summary>How long one workload's peer run may take before it is stopped (the peer's slowest, W1, takes ~1 minute).</summary>
    internal static TimeSpan Timeout = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Runs <c>bash -c "{command} --workloads {workload} --out {temp file}"</c> and reads that file's summary for
    /// <paramref name="config"/> (see <see cref="PeerComparison.ReadPeer"/>). Throws with the peer's stderr tail when the
    /// command fails or writes no results.
    /// </summary>
    public static Dictionary<string, double> Run(string command, string workload, string config)
    {
        if (string.IsNullOrWhiteSpace(command)) throw new ArgumentException("--peer-command: expected a command, got an empty string.");
        string outFile = Path.Combine(Path.GetTempPath(), $"recsys-peer-{Environment.ProcessId}-{workload}-{Guid.NewGuid():N}.json");
        try
        {
            var psi = new ProcessStartInfo("bash")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add($"{command} --workloads {workload} --out '{outFile}'");
            var stderr = new System.Text.StringBuilder();
            using var process = new Process { StartInfo = psi };
            // Both pipes are drained as they fill (the peer prints its JSON to stdout as well): a full pipe would block it.
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (stderr)
                {
                    stderr.AppendLine(e.Data);
                    if (stderr.Length > 4 * ErrorTailChars) stderr.Remove(0, stderr.Length - ErrorTailChars);
                }
            };
            try { process.Start(); }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException($"--peer-command: could not start bash to run the peer ({e.Message}).");
            }
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            if (!process.WaitForExit(Timeout))
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } // it may have just exited
                throw new InvalidOperationException(
                    $"--peer-command did not finish {workload} within {Timeout.TotalMinutes:G} minutes and was stopped: {command}");
            }
            process.WaitForExit(); // the output handlers have drained both pipes once this returns
            string tail;
            lock (stderr) tail = stderr.Length > ErrorTailChars ? stderr.ToString(stderr.Length - ErrorTailChars, ErrorTailChars) : stderr.ToString();
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"--peer-command failed for {workload} (exit code {process.ExitCode}): {command}\n{tail.TrimEnd()}");
            if (!File.Exists(outFile))
                throw new InvalidOperationException(
                    $"--peer-command wrote no results for {workload}: expected it to write the file given after --out ({command}).\n{tail.TrimEnd()}");
            return PeerComparison.ReadPeer(outFile, config);
        }
        finally
        {
            try { File.Delete(outFile); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

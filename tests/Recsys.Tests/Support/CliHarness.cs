using System.CommandLine;
using Recsys.Cli;

namespace Recsys.Tests.Support;

/// <summary>Runs the `recsys` command in-process through its real parser, and writes small Criteo files for it.</summary>
internal static class CliHarness
{
    /// <summary>Exit code, stdout and stderr of one invocation (Console output is captured too).</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var root = new RootCommand { TrainCommand.Create(), EvalCommand.Create(), BenchCommand.Create() };
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            int code = CliRunner.Run(root, args, stdout, stderr);
            return (code, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    /// <summary>
    /// A small Criteo-format file in <paramref name="dir"/> with a learnable signal: the label follows C1 and I1. The other
    /// categorical columns draw from <paramref name="categoricalValues"/> values (few keep embedding tables tiny).
    /// </summary>
    public static string WriteCriteo(string dir, int rows, int seed, string name = "train.txt", int categoricalValues = 30)
    {
        var rng = new Random(seed);
        var path = Path.Combine(dir, name);
        using var w = new StreamWriter(path);
        for (int i = 0; i < rows; i++)
        {
            int c1 = rng.Next(20);
            int i1 = rng.Next(50);
            double logit = (c1 < 10 ? 1.5 : -1.5) + (i1 > 25 ? 0.5 : -0.5);
            int label = rng.NextDouble() < 1 / (1 + Math.Exp(-logit)) ? 1 : 0;
            var fields = new List<string> { label.ToString(), i1.ToString() };
            for (int j = 1; j < 13; j++) fields.Add(rng.Next(4) == 0 ? "" : rng.Next(100).ToString());
            fields.Add((0x1000 + c1).ToString("x8"));
            for (int j = 1; j < 26; j++) fields.Add(rng.Next(5) == 0 ? "" : rng.Next(categoricalValues).ToString("x8"));
            w.Write(string.Join('\t', fields));
            w.Write('\n');
        }
        return path;
    }
}

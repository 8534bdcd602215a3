using System.CommandLine;
using Recsys.Engine.Checkpoints;
using Recsys.Engine.Data;

namespace Recsys.Cli;

/// <summary>Parses, runs, and turns every expected failure into one clear stderr line and an exit code.</summary>
public static class CliRunner
{
    public const int ExitUsage = 2;
    public const int ExitFailure = 1;

    public static int Run(RootCommand root, string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stderr ??= Console.Error;
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"recsys: {parse.Errors[0].Message} (see 'recsys {string.Join(' ', args.Take(1))} --help')");
            return ExitUsage;
        }
        try
        {
            var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
            if (stdout is not null) config.Output = stdout;
            config.Error = stderr;
            return parse.Invoke(config);
        }
        catch (Exception e) when (IsUserError(e))
        {
            stderr.WriteLine($"recsys: error: {e.Message}");
            if (Environment.GetEnvironmentVariable("RECSYS_DEBUG") == "1") stderr.WriteLine(e);
            return ExitFailure;
        }
    }

    private static bool IsUserError(Exception e) => e is ArgumentException or FileNotFoundException or DirectoryNotFoundException
        or InvalidDataException or DataFormatException or CheckpointException or IOException or UnauthorizedAccessException
        or InvalidOperationException or FormatException or NotSupportedException;
}

using System.CommandLine;
using Recsys.Cli;

// The `recsys` command. Every failure the user can cause (bad argument, bad file) ends as one line on
// stderr and a non-zero exit code; a stack trace is printed only with RECSYS_DEBUG=1.
var root = new RootCommand("Recsys.Engine: train, evaluate and benchmark recommendation models (DLRM, DCNv2) on the CPU or a GPU.")
{
    TrainCommand.Create(),
    EvalCommand.Create(),
    BenchCommand.Create(),
};
return CliRunner.Run(root, args);

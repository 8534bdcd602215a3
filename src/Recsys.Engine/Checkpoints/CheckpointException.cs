namespace Recsys.Engine.Checkpoints;

/// <summary>A checkpoint file that is missing, truncated, corrupted or does not fit the model; the message names the file and what is wrong.</summary>
public sealed class CheckpointException : Exception
{
    public string File { get; }

    public CheckpointException(string file, string problem, Exception? inner = null)
        : base($"{file}: {problem}", inner)
    {
        File = file;
    }
}

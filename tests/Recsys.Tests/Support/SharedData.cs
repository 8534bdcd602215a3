using NUnit.Framework;

namespace Recsys.Tests.Support;

/// <summary>
/// Locates files in the project's shared area, <c>&lt;repo root&gt;/../shared</c> (repo root = the first
/// directory above the test assembly that holds Recsys.Engine.sln). The shared area is private test
/// data that is never published: a checkout without it ignores the tests that need it, but a checkout
/// WITH it whose file is missing fails loudly (the data went missing, the test must not pass silently).
/// </summary>
public static class SharedData
{
    public static string? RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Recsys.Engine.sln"))) return dir.FullName;
        return null;
    }

    /// <summary>Full path of <paramref name="relative"/> under the shared area; Assert.Ignore / Assert.Fail as described above.</summary>
    public static string Require(string relative)
    {
        var root = RepoRoot();
        if (root is null) Assert.Ignore($"No Recsys.Engine.sln above {AppContext.BaseDirectory}; cannot locate the shared data area.");
        var shared = Path.GetFullPath(Path.Combine(root!, "..", "shared"));
        if (!Directory.Exists(shared)) Assert.Ignore($"Shared data area {shared} does not exist (a checkout without private test data).");
        var file = Path.Combine(shared, relative);
        if (!File.Exists(file)) Assert.Fail($"Shared data area {shared} exists but {file} is missing.");
        return file;
    }

    public const string CriteoHead10k = "data/criteo/criteo_kaggle_train_head10k.txt";
}

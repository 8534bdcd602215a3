using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recsys.Engine.Core;

namespace Recsys.Engine.Checkpoints;

/// <summary>A loaded checkpoint: the tensors and the config JSON text.</summary>
public sealed record LoadedCheckpoint(SafeTensorsFile Weights, string ConfigJson);

/// <summary>
/// A checkpoint directory: <c>model.safetensors</c> (weights) + <c>config.json</c> (the model config,
/// any JSON). Each file is written atomically (temporary file, fsync, rename). The weights' metadata
/// records the SHA-256 of the config, so a save interrupted between the two renames is detected on
/// load instead of silently pairing new weights with an old config.
/// </summary>
public static class Checkpoint
{
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";
    private const string ConfigHashKey = "config_sha256";

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    /// <summary>
    /// Saves <paramref name="tensors"/> and <paramref name="config"/> into <paramref name="dir"/> (created if
    /// needed). <paramref name="config"/>: a JsonNode, any serializable object, or a string holding JSON text.
    /// </summary>
    public static void Save(string dir, IEnumerable<KeyValuePair<string, Tensor>> tensors, object? config,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(tensors);
        string json = ConfigText(config);
        var meta = new Dictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
        if (metadata is not null) foreach (var kv in metadata) meta[kv.Key] = kv.Value;
        meta[ConfigHashKey] = Sha256(json);
        Directory.CreateDirectory(dir);
        // Weights first: if the producer throws, nothing (not even the config) has changed.
        SafeTensors.Write(Path.Combine(dir, WeightsFile), tensors, meta);
        AtomicFile.Write(Path.Combine(dir, ConfigFile), s => s.Write(Encoding.UTF8.GetBytes(json)));
    }

    /// <summary>Loads and verifies a checkpoint directory.</summary>
    public static LoadedCheckpoint Load(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new CheckpointException(dir, "checkpoint directory not found.");
        var weightsPath = Path.Combine(dir, WeightsFile);
        var configPath = Path.Combine(dir, ConfigFile);
        var weights = SafeTensors.Read(weightsPath);
        if (!File.Exists(configPath)) throw new CheckpointException(configPath, "file not found.");
        string json = File.ReadAllText(configPath, Encoding.UTF8);
        try { JsonNode.Parse(json); }
        catch (JsonException e) { throw new CheckpointException(configPath, $"not valid JSON ({e.Message}).", e); }
        if (weights.Metadata.TryGetValue(ConfigHashKey, out var hash) && hash != Sha256(json))
            throw new CheckpointException(configPath, $"does not belong to {WeightsFile}: its SHA-256 is {Sha256(json)}, the weights expect {hash} (an interrupted save?).");
        return new LoadedCheckpoint(weights, json);
    }

    /// <summary>
    /// Loads <paramref name="dir"/> and copies each named tensor into the target of the same name. Fails
    /// (before copying anything) on a missing name, a non-F32 tensor or a shape mismatch, naming both
    /// shapes. Returns the names in the file that no target asked for.
    /// </summary>
    public static IReadOnlyList<string> LoadInto(string dir, IEnumerable<KeyValuePair<string, Tensor>> targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var ck = Load(dir);
        var weightsPath = Path.Combine(dir, WeightsFile);
        var list = targets.ToList();
        foreach (var (name, t) in list)
        {
            if (!ck.Weights.Tensors.TryGetValue(name, out var src))
                throw new CheckpointException(weightsPath, $"has no tensor \"{name}\" (expected shape {t.Shape}); it holds: {string.Join(", ", ck.Weights.Tensors.Keys.Take(20))}{(ck.Weights.Tensors.Count > 20 ? ", ..." : "")}.");
            if (src.DType != "F32")
                throw new CheckpointException(weightsPath, $"tensor \"{name}\" has dtype {src.DType}, expected F32.");
            if (src.Shape != t.Shape)
                throw new CheckpointException(weightsPath, $"tensor \"{name}\": shape mismatch: checkpoint has {src.Shape}, model expects {t.Shape}.");
        }
        // CopyFrom writes host and device tensors alike: a checkpoint loads into a model on any device.
        foreach (var (name, t) in list) t.CopyFrom(ck.Weights.Tensors[name].Floats);
        var used = new HashSet<string>(list.Select(kv => kv.Key), StringComparer.Ordinal);
        return ck.Weights.Tensors.Keys.Where(k => !used.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToArray();
    }

    private static string ConfigText(object? config)
    {
        switch (config)
        {
            case null: return "{}";
            case string s:
                try { return JsonNode.Parse(s)?.ToJsonString(JsonOptions) ?? "null"; }
                catch (JsonException e) { throw new ArgumentException($"Checkpoint.Save: config string is not valid JSON ({e.Message}).", nameof(config), e); }
            case JsonNode node: return node.ToJsonString(JsonOptions);
            default: return JsonSerializer.Serialize(config, config.GetType(), JsonOptions);
        }
    }

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}

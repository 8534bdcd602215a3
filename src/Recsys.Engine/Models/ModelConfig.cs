using System.Text.Json;
using System.Text.Json.Serialization;

namespace Recsys.Engine.Models;

/// <summary>
/// A ranking model's architecture as plain data: saved as config.json beside the weights, and enough to
/// rebuild the model for evaluation or serving.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>"dlrm" or "dcnv2".</summary>
    public string Kind { get; init; } = "dlrm";
    public int DenseFeatures { get; init; } = 13;
    /// <summary>Rows of each embedding table (one table per sparse feature).</summary>
    public int[] TableRows { get; init; } = Array.Empty<int>();
    public int EmbeddingDim { get; init; } = 16;
    /// <summary>DLRM bottom MLP hidden sizes; the last layer's size is <see cref="EmbeddingDim"/> (appended).</summary>
    public int[] BottomMlp { get; init; } = { 512, 256 };
    /// <summary>DLRM top MLP / DCNv2 deep tower hidden sizes; a final 1-unit layer is appended.</summary>
    public int[] TopMlp { get; init; } = { 512, 512, 256 };
    /// <summary>DCNv2 cross layers.</summary>
    public int CrossLayers { get; init; } = 3;
    /// <summary>DCNv2 low-rank cross (W = U Vᵀ) rank; null for full rank.</summary>
    public int? CrossRank { get; init; }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ModelConfig FromJson(string json, string source)
    {
        ModelConfig? c;
        try { c = JsonSerializer.Deserialize<ModelConfig>(json, Json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid model config ({e.Message})."); }
        if (c is null) throw new InvalidDataException($"{source}: empty model config.");
        c.Validate(source);
        return c;
    }

    /// <summary>Throws naming the first invalid field.</summary>
    public void Validate(string source = "model config")
    {
        if (Kind is not ("dlrm" or "dcnv2")) throw new ArgumentException($"{source}: kind must be 'dlrm' or 'dcnv2', got '{Kind}'.");
        if (DenseFeatures < 1) throw new ArgumentException($"{source}: dense_features must be >= 1, got {DenseFeatures}.");
        if (TableRows.Length == 0) throw new ArgumentException($"{source}: table_rows is empty; a model needs at least one embedding table.");
        for (int i = 0; i < TableRows.Length; i++)
            if (TableRows[i] < 1) throw new ArgumentException($"{source}: table_rows[{i}] must be >= 1, got {TableRows[i]}.");
        if (EmbeddingDim < 1) throw new ArgumentException($"{source}: embedding_dim must be >= 1, got {EmbeddingDim}.");
        if (BottomMlp.Any(s => s < 1) || TopMlp.Any(s => s < 1)) throw new ArgumentException($"{source}: MLP sizes must be >= 1.");
        if (CrossLayers < 0) throw new ArgumentException($"{source}: cross_layers must be >= 0, got {CrossLayers}.");
        if (CrossRank is < 1) throw new ArgumentException($"{source}: cross_rank must be >= 1 when given, got {CrossRank}.");
    }
}

using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using NUnit.Framework;
using Recsys.Engine.Checkpoints;
using Recsys.Engine.Core;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Checkpoints;

public class CheckpointTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "recsys-ckpt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static Dictionary<string, Tensor> Model() => new()
    {
        ["top.0.weight"] = TestData.Tensor(new Shape(3, 4), seed: 1, requiresGrad: false),
        ["emb.0"] = TestData.Tensor(new Shape(5, 2), seed: 2, requiresGrad: false),
        ["top.0.bias"] = TestData.Tensor(new Shape(3), seed: 3, requiresGrad: false),
        ["scalar"] = new Tensor(Shape.Scalar, new[] { 7f }),
    };

    [Test]
    public void SafeTensors_RoundTrip_DataShapesMetadata()
    {
        var path = Path.Combine(_dir, "m.safetensors");
        var m = Model();
        SafeTensors.Write(path, m, new Dictionary<string, string> { ["format"] = "pt" });
        var f = SafeTensors.Read(path);
        Assert.That(f.Tensors.Keys.OrderBy(k => k), Is.EqualTo(m.Keys.OrderBy(k => k)));
        foreach (var (k, t) in m)
        {
            Assert.That(f.Tensors[k].Shape, Is.EqualTo(t.Shape), k);
            Assert.That(f.Tensors[k].Floats, Is.EqualTo(t.ToArray()), k);
        }
        Assert.That(f.Metadata["format"], Is.EqualTo("pt"));
        Assert.That(Directory.GetFiles(_dir), Has.Length.EqualTo(1), "no temporary file left");
    }

    [Test]
    public void SafeTensors_Layout_FollowsTheFormat()
    {
        var path = Path.Combine(_dir, "m.safetensors");
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["b"] = Tensor.FromArray(new[] { 1f, 2f }, 2), ["a"] = Tensor.FromArray(new[] { 3f }, 1) });
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.That(n % 8, Is.EqualTo(0));
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n))!;
        Assert.That(header["a"]!["dtype"]!.GetValue<string>(), Is.EqualTo("F32"));
        Assert.That(header["a"]!["data_offsets"]!.ToJsonString(), Is.EqualTo("[0,4]"));   // sorted by name: a first
        Assert.That(header["b"]!["data_offsets"]!.ToJsonString(), Is.EqualTo("[4,12]"));
        Assert.That(header["b"]!["shape"]!.ToJsonString(), Is.EqualTo("[2]"));
        Assert.That(bytes.Length, Is.EqualTo(8 + n + 12));
        Assert.That(BitConverter.ToSingle(bytes, (int)(8 + n)), Is.EqualTo(3f));
    }

    [Test]
    public void SafeTensors_Truncated_ThrowsNamingEndAndFileLength()
    {
        var path = Path.Combine(_dir, "m.safetensors");
        SafeTensors.Write(path, Model());
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        var ex = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain(path).And.Contain("truncated").And.Contain($"ends at byte {bytes.Length}").And.Contain($"file has {bytes.Length - 10} bytes"));
        File.WriteAllBytes(path, bytes[..20]);
        ex = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain("truncated").And.Contain("header ends"));
    }

    [Test]
    public void SafeTensors_CorruptedHeader_Throws()
    {
        var path = Path.Combine(_dir, "m.safetensors");
        SafeTensors.Write(path, Model());
        var bytes = File.ReadAllBytes(path);
        bytes[8] = (byte)'x';   // the JSON's opening brace
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain(path).And.Contain("not valid JSON"));

        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        File.WriteAllBytes(path, bytes);
        ex = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain("header length"));
    }

    [Test]
    public void SafeTensors_OverlappingOffsets_Throws()
    {
        var path = Path.Combine(_dir, "m.safetensors");
        string json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
        while (json.Length % 8 != 0) json += " ";
        var ms = new MemoryStream();
        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        ms.Write(len);
        ms.Write(Encoding.UTF8.GetBytes(json));
        ms.Write(new byte[8]);
        File.WriteAllBytes(path, ms.ToArray());
        var ex = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain("overlaps"));
    }

    [Test]
    public void SafeTensors_MissingFile_Throws()
    {
        var path = Path.Combine(_dir, "none.safetensors");
        var ex = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain(path).And.Contain("not found"));
    }

    [Test]
    public void Checkpoint_SaveLoad_RoundTripWithConfig()
    {
        var m = Model();
        Checkpoint.Save(_dir, m, new { model = "dlrm", embeddingDim = 16 });
        var ck = Checkpoint.Load(_dir);
        Assert.That(JsonNode.Parse(ck.ConfigJson)!["embeddingDim"]!.GetValue<int>(), Is.EqualTo(16));
        Assert.That(ck.Weights.Tensors["emb.0"].Floats, Is.EqualTo(m["emb.0"].ToArray()));
        Assert.That(Directory.GetFiles(_dir).Select(Path.GetFileName).OrderBy(x => x), Is.EqualTo(new[] { "config.json", "model.safetensors" }));
    }

    [Test]
    public void LoadInto_CopiesByName_ReportsUnused()
    {
        var m = Model();
        Checkpoint.Save(_dir, m, "{\"a\": 1}");
        var target = new Dictionary<string, Tensor> { ["emb.0"] = new Tensor(new Shape(5, 2)), ["top.0.bias"] = new Tensor(new Shape(3)) };
        var unused = Checkpoint.LoadInto(_dir, target);
        Assert.That(target["emb.0"].ToArray(), Is.EqualTo(m["emb.0"].ToArray()));
        Assert.That(target["top.0.bias"].ToArray(), Is.EqualTo(m["top.0.bias"].ToArray()));
        Assert.That(unused, Is.EqualTo(new[] { "scalar", "top.0.weight" }));
    }

    [Test]
    public void LoadInto_ShapeMismatch_NamesBothShapes()
    {
        Checkpoint.Save(_dir, Model(), null);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(_dir, new Dictionary<string, Tensor> { ["emb.0"] = new Tensor(new Shape(6, 2)) }));
        Assert.That(ex!.Message, Does.Contain("emb.0").And.Contain("[5, 2]").And.Contain("[6, 2]"));
    }

    [Test]
    public void LoadInto_MissingName_Throws()
    {
        Checkpoint.Save(_dir, Model(), null);
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(_dir, new Dictionary<string, Tensor> { ["nope"] = new Tensor(new Shape(1)) }));
        Assert.That(ex!.Message, Does.Contain("no tensor \"nope\""));
    }

    private static IEnumerable<KeyValuePair<string, Tensor>> FailingProducer()
    {
        yield return new("a", Tensor.FromArray(new[] { 1f }, 1));
        throw new InvalidOperationException("producer failed midway");
    }

    [Test]
    public void Save_ProducerThrowsMidway_OldCheckpointIntactNoTempFiles()
    {
        var m = Model();
        Checkpoint.Save(_dir, m, new { v = 1 });
        var before = File.ReadAllBytes(Path.Combine(_dir, Checkpoint.WeightsFile));
        Assert.Throws<InvalidOperationException>(() => Checkpoint.Save(_dir, FailingProducer(), new { v = 2 }));
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, Checkpoint.WeightsFile)), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_dir).Select(Path.GetFileName).OrderBy(x => x), Is.EqualTo(new[] { "config.json", "model.safetensors" }));
        Assert.That(JsonNode.Parse(Checkpoint.Load(_dir).ConfigJson)!["v"]!.GetValue<int>(), Is.EqualTo(1));

        var fresh = Path.Combine(_dir, "fresh");
        Assert.Throws<InvalidOperationException>(() => SafeTensors.Write(Path.Combine(fresh, "x.safetensors"), FailingProducer()));
        Assert.That(Directory.GetFiles(fresh), Is.Empty);
    }

    [Test]
    public void Load_ConfigFromAnotherSave_DetectedAsMismatch()
    {
        Checkpoint.Save(_dir, Model(), new { v = 1 });
        File.WriteAllText(Path.Combine(_dir, Checkpoint.ConfigFile), "{\"v\": 2}");
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir));
        Assert.That(ex!.Message, Does.Contain("does not belong"));
    }

    [Test]
    public void Load_MissingDirectory_Throws()
    {
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Load(Path.Combine(_dir, "absent")));
        Assert.That(ex!.Message, Does.Contain("not found"));
    }
}

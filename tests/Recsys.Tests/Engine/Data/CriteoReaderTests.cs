using System.IO.Compression;
using System.Text;
using NUnit.Framework;
using Recsys.Engine.Data;
using Recsys.Tests.Support;

namespace Recsys.Tests.Engine.Data;

public class CriteoReaderTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "recsys-criteo-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    /// <summary>A line from label, 13 dense strings and 26 categorical strings (missing entries are empty).</summary>
    private static string Line(string label, string[]? dense = null, string[]? cats = null)
    {
        var f = new List<string> { label };
        for (int i = 0; i < 13; i++) f.Add(dense is not null && i < dense.Length ? dense[i] : "");
        for (int i = 0; i < 26; i++) f.Add(cats is not null && i < cats.Length ? cats[i] : "");
        return string.Join('\t', f);
    }

    private string Write(string name, params string[] lines)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllText(p, string.Join('\n', lines) + "\n");
        return p;
    }

    [Test]
    public void Load_EmptyFields_AreZero()
    {
        var p = Write("a.tsv", Line("0"), Line("1"));
        var ds = CriteoDataset.Load(p);
        Assert.That(ds.Count, Is.EqualTo(2));
        Assert.That(ds.Labels, Is.EqualTo(new[] { 0f, 1f }));
        Assert.That(ds.Dense.All(x => x == 0f), Is.True);
        Assert.That(ds.Ids.All(x => x == 0), Is.True);
    }

    [Test]
    public void Load_DenseValues_AreLog1pOfPositivesAndZeroOtherwise()
    {
        var p = Write("a.tsv", Line("1", new[] { "0", "1", "-1", "10", "", "1000000", "-5" }));
        var d = CriteoDataset.Load(p).Dense;
        Assert.That(d[0], Is.EqualTo(0f));
        Assert.That(d[1], Is.EqualTo((float)Math.Log(2)));
        Assert.That(d[2], Is.EqualTo(0f));
        Assert.That(d[3], Is.EqualTo((float)Math.Log(11)));
        Assert.That(d[4], Is.EqualTo(0f));
        Assert.That(d[5], Is.EqualTo((float)Math.Log(1000001)));
        Assert.That(d[6], Is.EqualTo(0f));
    }

    [Test]
    public void Load_HexAndNonHexCategoricals_HashAsSpecified()
    {
        var p = Write("a.tsv", Line("0", null, new[] { "68fd1e64", "ffffffff", "hello", "", "Ünï" }));
        var ds = CriteoDataset.Load(p, new CriteoOptions { TableSize = 1000 });
        Assert.That(ds.Ids[0], Is.EqualTo((int)(0x68fd1e64UL % 1000)));
        Assert.That(ds.Ids[1], Is.EqualTo((int)(0xffffffffUL % 1000)));
        // FNV-1a-64 of "hello" is a published test vector: a430d84680aabd0b.
        Assert.That(CriteoFormat.Fnv1a64("hello"u8), Is.EqualTo(0xa430d84680aabd0bUL));
        Assert.That(ds.Ids[2], Is.EqualTo((int)(0xa430d84680aabd0bUL % 1000)));
        Assert.That(ds.Ids[3], Is.EqualTo(0));
        Assert.That(ds.Ids[4], Is.EqualTo((int)(CriteoFormat.Fnv1a64(Encoding.UTF8.GetBytes("Ünï")) % 1000)));
        Assert.That(ds.TableRows, Is.All.EqualTo(1000));
    }

    [Test]
    public void Load_Gzip_IsDetectedByMagicNotExtension()
    {
        var lines = new[] { Line("1", new[] { "3" }, new[] { "0000000a" }), Line("0", new[] { "7" }, new[] { "0000000b" }) };
        var p = Path.Combine(_dir, "compressed.data");   // no .gz on purpose
        using (var gz = new GZipStream(File.Create(p), CompressionLevel.Fastest))
            gz.Write(Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n"));
        var plain = CriteoDataset.Load(Write("plain.tsv", lines));
        var zipped = CriteoDataset.Load(p);
        Assert.That(zipped.Count, Is.EqualTo(2));
        Assert.That(zipped.Dense, Is.EqualTo(plain.Dense));
        Assert.That(zipped.Ids, Is.EqualTo(plain.Ids));
        Assert.That(zipped.Labels, Is.EqualTo(plain.Labels));
    }

    [Test]
    public void Load_CrlfAndMissingFinalNewline_Accepted()
    {
        var p = Path.Combine(_dir, "crlf.tsv");
        File.WriteAllText(p, Line("1", new[] { "1" }) + "\r\n" + Line("0", new[] { "2" }));
        var ds = CriteoDataset.Load(p);
        Assert.That(ds.Count, Is.EqualTo(2));
        Assert.That(ds.Dense[13], Is.EqualTo((float)Math.Log(3)));
    }

    [Test]
    public void Load_VocabularyEncoding_RanksDistinctValuesPerColumn()
    {
        var p = Write("v.tsv",
            Line("0", null, new[] { "00000030", "00000005" }),
            Line("1", null, new[] { "00000010", "00000005" }),
            Line("0", null, new[] { "00000030", "" }),
            Line("1", null, new[] { "00000020", "00000007" }));
        var ds = CriteoDataset.Load(p, new CriteoOptions { Encoding = CategoricalEncoding.Vocabulary });
        // Column C1: values {0x10, 0x20, 0x30} -> ranks 0, 1, 2. C2: {0 (missing), 5, 7} -> 0, 1, 2.
        Assert.That(Enumerable.Range(0, 4).Select(r => ds.Ids[r * 26]), Is.EqualTo(new[] { 2, 0, 2, 1 }));
        Assert.That(Enumerable.Range(0, 4).Select(r => ds.Ids[r * 26 + 1]), Is.EqualTo(new[] { 1, 1, 0, 2 }));
        Assert.That(ds.TableRows[0], Is.EqualTo(3));
        Assert.That(ds.TableRows[1], Is.EqualTo(3));
        Assert.That(ds.TableRows[2], Is.EqualTo(1));   // all missing
    }

    [Test]
    public void Load_WrongFieldCount_FailPolicy_ThrowsWithFileAndLine()
    {
        var bad = Line("0")[..^1];   // drop the last tab: 39 fields
        var p = Write("f.tsv", Line("0"), Line("1"), bad, Line("0"));
        var ex = Assert.Throws<DataFormatException>(() => CriteoDataset.Load(p));
        Assert.That(ex!.Line, Is.EqualTo(3));
        Assert.That(ex.Message, Does.Contain(p).And.Contain("line 3").And.Contain("expected 40 tab-separated fields, got 39"));
    }

    [Test]
    public void Load_NonNumericIntegerField_FailPolicy_NamesColumn()
    {
        var p = Write("n.tsv", Line("0"), Line("1", new[] { "1", "2", "3", "4", "abc" }));
        var ex = Assert.Throws<DataFormatException>(() => CriteoDataset.Load(p));
        Assert.That(ex!.Column, Is.EqualTo("I5"));
        Assert.That(ex.Message, Does.Contain("line 2").And.Contain("column I5").And.Contain("\"abc\""));
    }

    [Test]
    public void Load_BadLabel_FailPolicy_NamesLabelColumn()
    {
        var p = Write("l.tsv", Line("2"));
        var ex = Assert.Throws<DataFormatException>(() => CriteoDataset.Load(p));
        Assert.That(ex!.Message, Does.Contain("line 1").And.Contain("column label").And.Contain("label 0 or 1"));
    }

    [Test]
    public void Load_SkipPolicy_CountsAndReportsLineNumbers()
    {
        var p = Write("s.tsv", Line("0"), Line("x"), Line("1"), Line("1")[..^1], Line("0", new[] { "1.5e" }), Line("1"));
        var ds = CriteoDataset.Load(p, new CriteoOptions { Malformed = MalformedPolicy.Skip });
        Assert.That(ds.Count, Is.EqualTo(3));
        Assert.That(ds.SkippedLines, Is.EqualTo(3));
        Assert.That(ds.FirstSkippedLineNumbers, Is.EqualTo(new long[] { 2, 4, 5 }));
        Assert.That(ds.Labels, Is.EqualTo(new[] { 0f, 1f, 1f }));
    }

    [Test]
    public void Load_MaxRows_StopsEarly()
    {
        var p = Write("m.tsv", Line("0"), Line("1"), Line("1"));
        Assert.That(CriteoDataset.Load(p, new CriteoOptions { MaxRows = 2 }).Count, Is.EqualTo(2));
    }

    [Test]
    public void Load_MissingFile_ThrowsFileNotFoundNamingPath()
    {
        var p = Path.Combine(_dir, "nope.tsv");
        var ex = Assert.Throws<FileNotFoundException>(() => CriteoDataset.Load(p));
        Assert.That(ex!.Message, Does.Contain(p));
    }

    [Test]
    public void ReadBatches_ReusesOneBatch_AndMatchesLoad()
    {
        var lines = Enumerable.Range(0, 10).Select(i => Line((i % 2).ToString(), new[] { i.ToString() }, new[] { (i * 7).ToString("x8") })).ToArray();
        var p = Write("b.tsv", lines);
        var all = CriteoDataset.Load(p);
        var sizes = new List<int>();
        Batch? first = null;
        int row = 0;
        var stats = new CriteoReadStats();
        foreach (var b in CriteoReader.ReadBatches(p, null, 4, stats))
        {
            first ??= b;
            Assert.That(b, Is.SameAs(first));
            sizes.Add(b.Size);
            for (int i = 0; i < b.Size; i++, row++)
            {
                Assert.That(b.Labels[i], Is.EqualTo(all.Labels[row]));
                Assert.That(b.Dense.AsSpan(i * 13, 13).ToArray(), Is.EqualTo(all.Dense.AsSpan(row * 13, 13).ToArray()));
                Assert.That(b.Ids.AsSpan(i * 26, 26).ToArray(), Is.EqualTo(all.Ids.AsSpan(row * 26, 26).ToArray()));
                Assert.That(b.Sparse.Values[0 * b.Size + i], Is.EqualTo(all.Ids[row * 26]));
            }
        }
        Assert.That(sizes, Is.EqualTo(new[] { 4, 4, 2 }));
        Assert.That(stats.Rows, Is.EqualTo(10));
    }

    [Test]
    public void ReadBatches_VocabularyEncoding_Throws()
    {
        var p = Write("v.tsv", Line("0"));
        Assert.Throws<ArgumentException>(() => CriteoReader.ReadBatches(p, new CriteoOptions { Encoding = CategoricalEncoding.Vocabulary }, 4));
    }

    [Test]
    public void RealCriteoHead_Vocabulary_MatchesPeerTableRows()
    {
        var file = SharedData.Require(SharedData.CriteoHead10k);
        var ds = CriteoDataset.Load(file, new CriteoOptions { Encoding = CategoricalEncoding.Vocabulary });
        Assert.That(ds.Count, Is.EqualTo(10_000));
        Assert.That(ds.SkippedLines, Is.EqualTo(0));
        Assert.That(ds.Labels.Count(y => y == 1f), Is.EqualTo(2182));
        Assert.That(ds.PositiveRate, Is.EqualTo(0.2182).Within(1e-12));
        int[] peer = { 175, 385, 5389, 3943, 56, 8, 3133, 93, 3, 2945, 2055, 5145, 1713, 24, 2015, 4595, 9, 1141, 544, 4, 4898, 8, 12, 2485, 40, 1910 };
        Assert.That(ds.TableRows, Is.EqualTo(peer));
        var (train, test) = ds.SplitTrainTest();
        Assert.That((train.Count, test.Count), Is.EqualTo((9000, 1000)));
        // Peer's results.json: train positive rate 0.217111, test 0.228.
        Assert.That(test.Labels().Average(), Is.EqualTo(0.228).Within(1e-9));
    }

    [Test]
    public void RealCriteoHead_StreamingHash_MatchesInMemoryHash()
    {
        var file = SharedData.Require(SharedData.CriteoHead10k);
        var all = CriteoDataset.Load(file);
        long rows = 0, ok = 0;
        foreach (var b in CriteoReader.ReadBatches(file, null, 1000))
        {
            if (b.Ids.AsSpan(0, b.Size * 26).SequenceEqual(all.Ids.AsSpan((int)rows * 26, b.Size * 26))) ok++;
            rows += b.Size;
        }
        Assert.That(rows, Is.EqualTo(10_000));
        Assert.That(ok, Is.EqualTo(10));
    }
}

using System.Text;
using NUnit.Framework;
using Recsys.Engine.Data;

namespace Recsys.Tests.Engine.Data;

public class LineReaderTests
{
    [Test]
    public void TryReadLine_LinesLongerThanBuffer_GrowAndSplitCorrectly()
    {
        var path = Path.Combine(Path.GetTempPath(), $"recsys-lines-{Guid.NewGuid():N}.txt");
        try
        {
            var expected = new[] { new string('a', 37), "bc", "", "d\te", new string('f', 9) };
            File.WriteAllText(path, string.Join("\n", expected.Take(3)) + "\r\n" + expected[3] + "\n" + expected[4]);   // CRLF once, no final newline
            using var r = new LineReader(path, bufferBytes: 8);
            var got = new List<string>();
            while (r.TryReadLine(out var line)) got.Add(Encoding.UTF8.GetString(line));
            Assert.That(got, Is.EqualTo(expected));
            Assert.That(r.LineNumber, Is.EqualTo(5));
        }
        finally { File.Delete(path); }
    }
}

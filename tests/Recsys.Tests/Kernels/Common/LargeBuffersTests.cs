using NUnit.Framework;
using Recsys.Kernels.Common;

namespace Recsys.Tests.Kernels.Common;

[Category("Kernel")]
public class LargeBuffersTests
{
    [Test]
    public unsafe void AlignedFloats_LargeAndPinnedSmall_StartOnTheAskedBoundary_WithRoomForLength(
        [Values(1, 1000, 1 << 20, 1_500_007)] int length, [Values(64, 256, 4096)] int alignment)
    {
        // Eight live allocations each, so that a start aligned only by luck of the heap's placement would fail some of them
        // (large pinned arrays land at 64 mod 256 every time).
        var keep = new List<float[]>();
        for (int i = 0; i < 8; i++)
        {
            var buffer = LargeBuffers.AlignedFloats(length, out int start, pinSmall: true, alignment);
            keep.Add(buffer);
            Assert.That(start + length, Is.LessThanOrEqualTo(buffer.Length), "room for the data after the aligned start");
            fixed (float* p = buffer)
                Assert.That((long)(p + start) % alignment, Is.EqualTo(0), $"allocation {i}: data start mod {alignment}");
            Assert.That(buffer.AsSpan(start, length).ToArray().All(v => v == 0f), Is.True, "zero-filled");
        }
    }

    [Test]
    public unsafe void AlignedFloats_DefaultIsTheCacheLine()
    {
        var buffer = LargeBuffers.AlignedFloats(1 << 21, out int start);
        fixed (float* p = buffer)
            Assert.That((long)(p + start) % LargeBuffers.CacheLineBytes, Is.EqualTo(0));
    }

    [TestCase(0)]
    [TestCase(2)]
    [TestCase(96)]
    [TestCase(8192)]
    public void AlignedFloats_BadAlignment_ClearError(int alignment)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => LargeBuffers.AlignedFloats(100, out _, pinSmall: true, alignment));
        Assert.That(ex!.Message, Does.Contain("power of two from 4 to 4096 bytes").And.Contain(alignment.ToString()));
    }

    [Test]
    public void Floats_NegativeLength_ClearError()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => LargeBuffers.Floats(-1));
        Assert.That(ex!.Message, Does.Contain("length must be >= 0"));
    }
}

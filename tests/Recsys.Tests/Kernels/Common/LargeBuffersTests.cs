using NUnit.Framework;
using Recsys.Kernels.Common;

namespace Recsys.Tests.Kernels.Common;

[Category("Kernel")]
public class LargeBuffersTests
{
    [Test]
    public unsafe void AlignedFloats_LargeAndPinnedSmall_StartOn256ByteBoundary_WithRoomForLength(
        [Values(1, 1000, 1 << 20, 1_500_007)] int length)
    {
        // Eight live allocations each, so that a start aligned only by luck of the heap's placement would fail some of them
        // (large pinned arrays used to land at 64 mod 256 every time).
        var keep = new List<float[]>();
        for (int i = 0; i < 8; i++)
        {
            var buffer = LargeBuffers.AlignedFloats(length, out int start, pinSmall: true);
            keep.Add(buffer);
            Assert.That(start + length, Is.LessThanOrEqualTo(buffer.Length), "room for the data after the aligned start");
            fixed (float* p = buffer)
                Assert.That((long)(p + start) % 256, Is.EqualTo(0), $"allocation {i}: data start mod 256");
            Assert.That(buffer.AsSpan(start, length).ToArray().All(v => v == 0f), Is.True, "zero-filled");
        }
    }

    [Test]
    public void Floats_NegativeLength_ClearError()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => LargeBuffers.Floats(-1));
        Assert.That(ex!.Message, Does.Contain("length must be >= 0"));
    }
}

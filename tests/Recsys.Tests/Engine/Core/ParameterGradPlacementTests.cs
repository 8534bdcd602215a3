using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NUnit.Framework;
using Recsys.Engine.Core;

namespace Recsys.Tests.Engine.Core;

public class ParameterGradPlacementTests
{
    private static unsafe long Address(Tensor t) => (long)Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.ReadOnlySpan));

    [Test]
    public void Grad_OfALargeParameter_StartsHalfAPageAwayFromTheValue_AndIsZero([Values(1024, 5000, 262_144)] int length)
    {
        for (int trial = 0; trial < 5; trial++)
        {
            var value = new Tensor(new Shape(length));
            value.Span.Fill(1f);
            var p = new Parameter("w", value);
            long distance = ((Address(p.Grad) - Address(p.Value)) % 4096 + 4096) % 4096;
            Assert.That(distance, Is.EqualTo(2048), $"grad - value mod 4096, length {length}");
            Assert.That(p.Grad.Shape, Is.EqualTo(value.Shape));
            Assert.That(p.Grad.ToArray(), Is.All.EqualTo(0f));
            Assert.That(ReferenceEquals(p.Value.Grad, p.Grad), Is.True);
        }
    }

    [Test]
    public void Grad_OfASmallParameter_IsAPlainZeroTensor()
    {
        var p = new Parameter("b", new Tensor(new Shape(7)));
        Assert.That(p.Grad.Length, Is.EqualTo(7));
        Assert.That(p.Grad.ToArray(), Is.All.EqualTo(0f));
    }
}

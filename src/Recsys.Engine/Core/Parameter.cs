using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
namespace Recsys.Engine.Core;

/// <summary>
/// A trainable dense tensor with its own gradient buffer. A parameter that took no part in a step
/// (its gradient was never written) is not <see cref="Touched"/>, and optimizers skip it entirely:
/// no state change, no weight decay. This is what makes weight sharing in supernets sound.
/// </summary>
public sealed class Parameter
{
    public string Name { get; }
    public Tensor Value { get; }
    public Tensor Grad { get; }

    /// <summary>Optimizer group (learning rate, optimizer kind); "default" unless set.</summary>
    public string Group { get; set; } = "default";

    /// <summary>Frozen parameters never get gradients (teachers, fixed layers).</summary>
    public bool Frozen
    {
        get => !Value.RequiresGrad;
        set => Value.RequiresGrad = !value;
    }

    /// <summary>True once backward has written into <see cref="Grad"/> since the last <see cref="ZeroGrad"/>.</summary>
    public bool Touched { get; internal set; }

    public Parameter(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        Name = name;
        Value = value;
        Value.Name = name;
        Value.RequiresGrad = true;
        Value.Owner = this;
        Grad = StaggeredLike(value, name + ".grad");
        Value.Grad = Grad;
    }

    /// <summary>
    /// A zeroed host tensor shaped like <paramref name="value"/> whose first element lies half a page (2 KiB, mod 4 KiB)
    /// away from the value's. Optimizer loops stream value and gradient together, storing into one while loading the
    /// other; when the two happen to sit at nearly the same address modulo 4 KiB (as the heap placed them, which varies
    /// run to run), every load waits on an unrelated recent store (4K aliasing) and the loop runs several times slower.
    /// </summary>
    internal static unsafe Tensor StaggeredLike(Tensor value, string name)
    {
        if (value.IsOnDevice || value.Length < 1024) return new Tensor(value.Shape) { Name = name };
        var data = GC.AllocateArray<float>(value.Length + 1024, pinned: true);
        nint target = ((nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(value.ReadOnlySpan)) + 2048) & 4095;
        nint start = (nint)Unsafe.AsPointer(ref data[0]);
        int offset = (int)(((target - (start & 4095)) & 4095) / sizeof(float));
        return new Tensor(value.Shape, data, offset) { Name = name };
    }

    public Shape Shape => Value.Shape;

    /// <summary>Clears the gradient (only if it was written) and the touched flag.</summary>
    public void ZeroGrad()
    {
        if (Touched)
        {
            if (Grad.IsOnDevice) Grad.Clear();
            // Split across threads like the optimizers' updates, so each core clears the gradient lines it just read.
            else Recsys.Kernels.Optim.DenseOptimizerKernels.ZeroGradient(Grad.Span);
        }
        Touched = false;
    }

    /// <summary>The device holding the value and the gradient.</summary>
    public Device Device => Value.Device;

    /// <summary>Moves value and gradient to <paramref name="device"/> (same tensor objects, new storage).</summary>
    public void To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        Value.MoveTo(device);
        Grad.MoveTo(device);
    }

    public override string ToString() => $"Parameter {Name} {Shape}";
}

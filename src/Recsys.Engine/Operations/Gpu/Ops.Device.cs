using Recsys.Engine.Core;
using Recsys.Kernels.Gpu;

namespace Recsys.Engine.Operations;

public static partial class Ops
{
    /// <summary>
    /// The tape's GPU device after checking every given tensor lives on it: an op never silently copies an input between
    /// host and device. Throws <see cref="InvalidOperationException"/> naming the op, the tensor and both devices.
    /// </summary>
    private static GpuDevice OnTapeDevice(Tape tape, string op, Tensor? a, Tensor? b = null, Tensor? c = null, Tensor? d = null, Tensor? e = null)
    {
        var device = tape.Device;
        SameDevice(device, op, a);
        SameDevice(device, op, b);
        SameDevice(device, op, c);
        SameDevice(device, op, d);
        SameDevice(device, op, e);
        return device.Gpu;
    }

    private static void SameDevice(Device device, string op, Tensor? t)
    {
        if (t is null || ReferenceEquals(t.Device, device)) return;
        throw new InvalidOperationException(
            $"{op}: tensor {(t.Name is null ? "" : $"'{t.Name}' ")}{t.Shape} lives on '{t.Device.Name}' but the tape runs on '{device.Name}'; move the model with To(device) and make inputs on the tape's arena.");
    }
}

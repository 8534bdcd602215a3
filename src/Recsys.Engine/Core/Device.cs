namespace Recsys.Engine.Core;

/// <summary>Where tensors live and kernels run.</summary>
public enum DeviceKind
{
    /// <summary>The host CPU with SIMD kernels.</summary>
    Cpu,
}

/// <summary>A compute device. The CPU device runs the SIMD kernels of Recsys.Kernels.</summary>
public sealed class Device
{
    public static Device Cpu { get; } = new(DeviceKind.Cpu, "cpu");

    public DeviceKind Kind { get; }
    public string Name { get; }

    private Device(DeviceKind kind, string name)
    {
        Kind = kind;
        Name = name;
    }

    /// <summary>Parses a device name as given on the command line.</summary>
    public static Device Parse(string name) => name.ToLowerInvariant() switch
    {
        "cpu" => Cpu,
        _ => throw new ArgumentException($"Unknown device '{name}': expected one of: cpu."),
    };

    public override string ToString() => Name;
}

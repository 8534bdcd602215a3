namespace Recsys.Kernels.Common;

/// <summary>
/// Argument checks for public kernel entry points. Every message names the argument,
/// the expected value and the actual one, so a wrong shape is found from the message alone.
/// Checks run at public boundaries only; inner loops trust their callers.
/// </summary>
public static class KernelGuard
{
    public static void AtLeast(ReadOnlySpan<float> span, long required, string name, string op)
    {
        if (span.Length < required)
            throw new ArgumentException($"{op}: '{name}' needs at least {required} elements, got {span.Length}.", name);
    }

    public static void AtLeast(Span<float> span, long required, string name, string op)
        => AtLeast((ReadOnlySpan<float>)span, required, name, op);

    public static void AtLeast(ReadOnlySpan<int> span, long required, string name, string op)
    {
        if (span.Length < required)
            throw new ArgumentException($"{op}: '{name}' needs at least {required} elements, got {span.Length}.", name);
    }

    public static void NonNegative(int value, string name, string op)
    {
        if (value < 0)
            throw new ArgumentOutOfRangeException(name, value, $"{op}: '{name}' must be >= 0, got {value}.");
    }

    public static void Positive(int value, string name, string op)
    {
        if (value <= 0)
            throw new ArgumentOutOfRangeException(name, value, $"{op}: '{name}' must be > 0, got {value}.");
    }
}

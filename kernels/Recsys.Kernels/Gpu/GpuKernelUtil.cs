using ILGPU;
using ILGPU.Runtime;

namespace Recsys.Kernels.Gpu;

/// <summary>Device-side helpers shared by the kernel families (called from kernels only) and host-side launch checks.</summary>
internal static class GpuKernelUtil
{
    /// <summary>Capacity of the shared scratch used by group reductions; group sizes never exceed it.</summary>
    public const int MaxGroupSize = 256;

    /// <summary>Sum of <paramref name="value"/> over the group (power-of-two size); every thread gets the result.</summary>
    public static float GroupSum(ArrayView<float> scratch, float value)
    {
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s) scratch[t] += scratch[t + s];
            Group.Barrier();
        }
        float r = scratch[0];
        Group.Barrier();
        return r;
    }

    /// <summary>Max of <paramref name="value"/> over the group (power-of-two size); every thread gets the result.</summary>
    public static float GroupMax(ArrayView<float> scratch, float value)
    {
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s && scratch[t + s] > scratch[t]) scratch[t] = scratch[t + s];
            Group.Barrier();
        }
        float r = scratch[0];
        Group.Barrier();
        return r;
    }

    /// <summary>Numerically stable logistic function.</summary>
    public static float Sigmoid(float x)
    {
        if (x >= 0) return 1f / (1f + ILGPU.Algorithms.XMath.Exp(-x));
        float e = ILGPU.Algorithms.XMath.Exp(x);
        return e / (1f + e);
    }

    public static float Activate(float v, int activation) => activation switch
    {
        1 => v > 0 ? v : 0,
        2 => Sigmoid(v),
        _ => v,
    };

    public static int Blocks(long items, int perBlock) => (int)((items + perBlock - 1) / perBlock);

    /// <summary>Host-side check: a view holds at least <paramref name="required"/> elements.</summary>
    public static void AtLeast<T>(ArrayView<T> view, long required, string name, string op) where T : unmanaged
    {
        if (view.Length < required)
            throw new ArgumentException($"{op}: '{name}' needs at least {required} elements, got {view.Length}.", name);
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

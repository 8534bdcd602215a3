using ILGPU;

namespace Recsys.Engine.Core;

/// <summary>
/// Bump allocation out of a growing list of device slabs (the device half of <see cref="TensorArena"/>). A request that
/// does not fit the current slab moves on to the next one, adding a slab (at least twice the last) when none is left;
/// <see cref="Rewind"/> starts again from the first slab. Slabs are persistent allocations of the device.
/// </summary>
internal sealed class DeviceSlabs<T> where T : unmanaged
{
    private const int Alignment = 64; // elements: 256 bytes, so every view starts on a coalescing boundary
    private readonly Device _device;
    private readonly List<ArrayView<T>> _slabs = new();
    private int _current;
    private long _used;

    public DeviceSlabs(Device device, long initial)
    {
        _device = device;
        _slabs.Add(device.AllocatePersistent<T>(initial));
    }

    public int Count => _slabs.Count;

    public ArrayView<T> Take(long length)
    {
        long padded = Math.Max(Alignment, (length + Alignment - 1) / Alignment * Alignment);
        while (true)
        {
            var slab = _slabs[_current];
            if (_used + padded <= slab.Length)
            {
                var view = slab.SubView(_used, length);
                _used += padded;
                return view;
            }
            _current++;
            _used = 0;
            if (_current == _slabs.Count)
                _slabs.Add(_device.AllocatePersistent<T>(Math.Max(padded, 2 * _slabs[^1].Length)));
        }
    }

    public void Rewind()
    {
        _current = 0;
        _used = 0;
    }
}

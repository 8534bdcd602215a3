using System.Diagnostics;
using System.Reflection;

namespace Recsys.Engine.Core;

/// <summary>
/// Where a step's time goes, per op: attach one to <see cref="Tape.Profile"/>. Forward time of an op is
/// the time from the previous recorded op (or the last reset) to its own recording, so it includes any
/// unrecorded work in between (input staging); backward time is measured around each backward rule.
/// Other phases (the optimizer) are added with <see cref="Add"/>. Costs two timestamps per op when
/// attached and nothing when not.
/// </summary>
public sealed class TapeProfile
{
    public sealed class Entry
    {
        public string Name { get; init; } = "";
        public long ForwardTicks { get; internal set; }
        public long BackwardTicks { get; internal set; }
        public long Calls { get; internal set; }
        public double ForwardMs => ForwardTicks * 1000.0 / Stopwatch.Frequency;
        public double BackwardMs => BackwardTicks * 1000.0 / Stopwatch.Frequency;
    }

    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<MethodInfo, string> _names = new();

    /// <summary>Steps profiled (incremented by the caller, e.g. once per training step).</summary>
    public int Steps { get; set; }

    public IEnumerable<Entry> Entries => _entries.Values;

    internal void AddForward(BackwardFn op, long ticks) => Get(NameOf(op)).ForwardTicks += ticks;

    internal void AddBackward(BackwardFn op, long ticks)
    {
        var e = Get(NameOf(op));
        e.BackwardTicks += ticks;
        e.Calls++;
    }

    /// <summary>Adds time to a named phase that is not an op (e.g. "optimizer").</summary>
    public void Add(string name, long forwardTicks, long backwardTicks = 0)
    {
        var e = Get(name);
        e.ForwardTicks += forwardTicks;
        e.BackwardTicks += backwardTicks;
    }

    private Entry Get(string name)
    {
        if (!_entries.TryGetValue(name, out var e)) _entries[name] = e = new Entry { Name = name };
        return e;
    }

    /// <summary>The op a backward rule belongs to: its lambda is compiled as "&lt;OpName&gt;b__…" inside the op's method.</summary>
    private string NameOf(BackwardFn fn)
    {
        var m = fn.Method;
        if (_names.TryGetValue(m, out var name)) return name;
        string raw = m.Name;
        int open = raw.IndexOf('<'), close = raw.IndexOf('>');
        name = open >= 0 && close > open + 1 ? raw[(open + 1)..close] : raw;
        return _names[m] = name;
    }
}

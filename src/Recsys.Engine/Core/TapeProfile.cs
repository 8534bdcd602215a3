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
        /// <summary>The row's key: the op's name, followed by its shapes when the profile tells shapes apart.</summary>
        public string Name { get; init; } = "";
        /// <summary>The op (or phase) name alone, e.g. "Linear".</summary>
        public string Op { get; init; } = "";
        /// <summary>"[B, in] → [B, out]" (first input → output) when <see cref="ByShape"/>, else null.</summary>
        public string? Shapes { get; init; }
        public long ForwardTicks { get; internal set; }
        public long BackwardTicks { get; internal set; }
        public long Calls { get; internal set; }
        public double ForwardMs => ForwardTicks * 1000.0 / Stopwatch.Frequency;
        public double BackwardMs => BackwardTicks * 1000.0 / Stopwatch.Frequency;
    }

    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<MethodInfo, string> _names = new();
    private readonly Dictionary<(MethodInfo Op, Shape? Input, Shape? Output), Entry> _byShape = new();

    /// <summary>Steps profiled (incremented by the caller, e.g. once per training step).</summary>
    public int Steps { get; set; }

    /// <summary>
    /// Tell ops of one kind apart by their shapes (first input → output), so that each layer gets its own row: DLRM's
    /// 13 → 512 and 512 → 512 Linears, say, instead of one "Linear" row. <see cref="Entry.Op"/> still names the op, for
    /// totals per op. Set it before the first profiled step.
    /// </summary>
    public bool ByShape { get; init; }

    public IEnumerable<Entry> Entries => _entries.Values;

    internal void AddForward(in TapeEntry op, long ticks) => Get(op).ForwardTicks += ticks;

    internal void AddBackward(in TapeEntry op, long ticks)
    {
        var e = Get(op);
        e.BackwardTicks += ticks;
        e.Calls++;
    }

    /// <summary>Adds time to a named phase that is not an op (e.g. "optimizer").</summary>
    public void Add(string name, long forwardTicks, long backwardTicks = 0)
    {
        var e = Get(name, name, null);
        e.ForwardTicks += forwardTicks;
        e.BackwardTicks += backwardTicks;
    }

    private Entry Get(in TapeEntry op)
    {
        if (!ByShape)
        {
            string name = NameOf(op.Backward);
            return Get(name, name, null);
        }
        // Looked up by value, so a profiled step allocates nothing once each (op, shapes) has its row.
        var key = (op.Backward.Method, op.A?.Shape, op.Output?.Shape);
        if (_byShape.TryGetValue(key, out var e)) return e;
        string opName = NameOf(op.Backward);
        string shapes = key.Item2 is { } a && key.Item3 is { } y ? $"{a} → {y}" : key.Item3 is { } o ? $"→ {o}" : key.Item2?.ToString() ?? "";
        return _byShape[key] = Get(shapes.Length == 0 ? opName : $"{opName} {shapes}", opName, shapes);
    }

    private Entry Get(string name, string op, string? shapes)
    {
        if (!_entries.TryGetValue(name, out var e)) _entries[name] = e = new Entry { Name = name, Op = op, Shapes = shapes };
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

using Recsys.Kernels.Elementwise;

namespace Recsys.Engine.Core;

/// <summary>Backward rule of one recorded op: reads the saved tensors of <paramref name="entry"/>, accumulates (+=) input gradients.</summary>
public delegate void BackwardFn(Tape tape, in TapeEntry entry);

/// <summary>
/// Backward rules of several recorded ops of one kind run together (see <see cref="TapeEntry.BackwardGroup"/>).
/// <paramref name="entries"/> are consecutive entries in recording order, each of which received a gradient; the effect
/// must be that of running their <see cref="TapeEntry.Backward"/> rules one by one, from the last entry to the first.
/// </summary>
public delegate void BackwardGroupFn(Tape tape, ReadOnlySpan<TapeEntry> entries);

/// <summary>
/// One recorded op: its backward rule and what forward saved for it. A value type with a few fixed
/// slots, so recording allocates nothing (backward rules are static lambdas, cached by the compiler).
/// </summary>
public struct TapeEntry
{
    public BackwardFn Backward;
    /// <summary>
    /// Optional: when set, a run of consecutive entries with the same group rule hands its backward to that rule in one
    /// call instead of to each <see cref="Backward"/> in turn. Only for ops whose backward gives no gradient to any
    /// tensor another entry of the run reads (the fused embedding update: it changes its own tables and nothing else),
    /// so the rule may run the entries concurrently.
    /// </summary>
    public BackwardGroupFn? BackwardGroup;
    public Tensor? Output;
    public Tensor? A, B, C, D, E;
    /// <summary>Op-specific saved objects (index batches, module references, ...): two slots, so an op that saves two
    /// references needs no holder object (a recorded step allocates nothing).</summary>
    public object? State, State2;
    public int I0, I1, I2, I3;
    public float F0, F1;
}

/// <summary>
/// The autograd tape of one training step on one worker. Ops append entries as they run forward;
/// <see cref="Backward"/> walks them in reverse. The tape owns the step's <see cref="TensorArena"/>,
/// and there is no global state, so several workers can each train with their own tape at once.
/// Rebuilt every step: a step may take a different path through the model (dynamic graphs).
/// </summary>
public sealed class Tape
{
    private TapeEntry[] _entries = new TapeEntry[64];
    private int _count;
    private TapeEntry[] _group = new TapeEntry[8]; // the entries of one backward group, reused

    public TensorArena Arena { get; }

    /// <summary>When false, ops compute forward only and record nothing (inference, evaluation).</summary>
    public bool RecordingEnabled { get; set; } = true;

    public Tape(TensorArena? arena = null)
    {
        Arena = arena ?? new TensorArena();
    }

    /// <summary>A tape whose step tensors live on <paramref name="device"/>; ops recorded on it run that device's kernels.</summary>
    public Tape(Device device) : this(new TensorArena(device)) { }

    /// <summary>The device of the tape's arena: every op dispatches on it.</summary>
    public Device Device => Arena.Device;

    public int Count => _count;

    /// <summary>When set, the time of every recorded op's forward and backward is added to it.</summary>
    public TapeProfile? Profile { get; set; }

    private long _lastMark = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>True when an op with these inputs must be recorded.</summary>
    public bool NeedsGrad(Tensor? a, Tensor? b = null, Tensor? c = null, Tensor? d = null) =>
        RecordingEnabled && ((a?.RequiresGrad ?? false) || (b?.RequiresGrad ?? false) || (c?.RequiresGrad ?? false) || (d?.RequiresGrad ?? false));

    /// <summary>Appends an op. Its output is marked as requiring grad.</summary>
    public void Record(in TapeEntry entry)
    {
        if (_count == _entries.Length) Array.Resize(ref _entries, _entries.Length * 2);
        _entries[_count++] = entry;
        if (Profile is { } profile)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            profile.AddForward(in entry, now - _lastMark);
            _lastMark = now;
        }
        if (entry.Output is not null) entry.Output.RequiresGrad = true;
    }

    /// <summary>
    /// The gradient buffer of <paramref name="t"/>, for a backward rule to accumulate into: a zeroed
    /// arena tensor for intermediates (made on first use), the owned buffer for parameters (marking
    /// the parameter touched). Returns null when <paramref name="t"/> needs no gradient.
    /// </summary>
    public Tensor? GradOf(Tensor t)
    {
        if (!t.RequiresGrad) return null;
        CheckGradCurrent(t);
        if (t.GradIsLent) Unlend(t);
        if (t.Owner is { } p)
        {
            p.Touched = true;
            return t.Grad;
        }
        return t.Grad ??= Given(t, Arena.Zeros(t.Shape));
    }

    /// <summary>
    /// Like <see cref="GradOf(Tensor)"/>, for a rule that can overwrite instead of accumulate: when the
    /// gradient buffer is made by this call, it is not zeroed and <paramref name="fresh"/> is true — the caller
    /// must then write every element (e.g. a GEMM with accumulate = false). Saves a zero-fill and a read.
    /// </summary>
    public Tensor? GradOf(Tensor t, out bool fresh)
    {
        fresh = false;
        if (!t.RequiresGrad) return null;
        CheckGradCurrent(t);
        if (t.GradIsLent) Unlend(t);
        if (t.Owner is not null || t.Grad is not null) return GradOf(t);
        fresh = true;
        return t.Grad = Given(t, Arena.Allocate(t.Shape));
    }

    /// <summary>
    /// The gradient of op output <paramref name="t"/> for a backward rule that overwrites it in place (e.g. turning dY into
    /// dPre): never the caller's seed tensor, which <see cref="Backward"/> may have lent as that gradient.
    /// </summary>
    public Tensor? GradToOverwrite(Tensor t)
    {
        CheckGradCurrent(t);
        if (t.GradIsLent) Unlend(t);
        return t.Grad;
    }

    /// <summary>Tensors given an arena gradient this step (cleared at <see cref="Reset"/>); reused, so steps allocate nothing.</summary>
    private readonly List<Tensor> _gradHolders = new();

    private Tensor Given(Tensor holder, Tensor grad)
    {
        _gradHolders.Add(holder);
        return grad;
    }

    /// <summary>
    /// <see cref="Reset"/> clears every gradient the tape gave out, since the arena it came from is recycled. One that is
    /// back anyway (set again by hand from a reference kept across the reset) would read and write storage that now belongs
    /// to this step's tensors: say so instead.
    /// </summary>
    private static void CheckGradCurrent(Tensor t)
    {
        if (t.Grad is { Recycled: true })
            throw new InvalidOperationException(
                $"Backward: a tensor {(t.Name is { } n ? $"'{n}' " : "")}of shape {t.Shape} holds a gradient from before the tape's " +
                "last Reset, whose storage the reset recycled (Reset clears the gradients it gave out; this one was set again). " +
                "Set x.Grad = null, and copy a gradient out (ToArray) before Reset to keep it.");
    }

    /// <summary>
    /// Gives <paramref name="t"/> its own copy of a lent gradient (see <see cref="Tensor.GradIsLent"/>). A seed is
    /// otherwise only read, by the output's own backward rule, so a 27 MB seed (the embedding benchmark's upstream
    /// gradient) is never copied, and neither are the seeds of several backward calls on one tape.
    /// </summary>
    private void Unlend(Tensor t)
    {
        t.GradIsLent = false;
        if (t.Grad is not { } lent) return; // the caller cleared it
        var copy = Arena.Allocate(t.Shape);
        ElementwiseKernels.Copy(lent.ReadOnlySpan, copy.Span);
        t.Grad = Given(t, copy);
    }

    /// <summary>
    /// Back-propagates from <paramref name="loss"/>. A scalar loss is seeded with 1; a non-scalar output
    /// with <paramref name="seed"/> (same shape), e.g. a fixed upstream gradient in benchmarks.
    /// The recorded ops are consumed: call Backward once per recorded graph. A host seed is never modified and is not
    /// copied either: it becomes <paramref name="loss"/>'s gradient itself (read by the rules; a rule that would write
    /// into it, or a later accumulation, gets a copy), so it must not change until this call returns.
    /// </summary>
    public void Backward(Tensor loss, Tensor? seed = null)
    {
        Seed(loss, seed);
        RunRules();
    }

    /// <summary>
    /// Back-propagates from several outputs at once (as <c>torch.autograd.backward(outputs, grads)</c>): each output
    /// gets its seed (same shape; null seeds a scalar output with 1), then the recorded ops run once, in reverse order.
    /// An op whose result reaches several outputs gets the sum of their gradients. Seeds are lent, as in
    /// <see cref="Backward(Tensor, Tensor?)"/>.
    /// </summary>
    public void Backward(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor?> seeds)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(seeds);
        if (outputs.Count != seeds.Count)
            throw new ArgumentException($"Backward: {outputs.Count} outputs but {seeds.Count} seeds; pass one seed per output.", nameof(seeds));
        for (int i = 0; i < outputs.Count; i++) Seed(outputs[i], seeds[i]);
        RunRules();
    }

    /// <summary>Makes <paramref name="seed"/> (or 1 for a scalar) the gradient of <paramref name="loss"/>, or adds it to the one it has.</summary>
    private void Seed(Tensor loss, Tensor? seed)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (!loss.RequiresGrad)
            throw new InvalidOperationException($"Backward: '{loss}' does not require grad; nothing on the tape leads to it.");
        bool freshGrad = loss.Grad is null && loss.Owner is null;
        seed?.ExpectShape(loss.Shape, "Backward seed");
        if (freshGrad && seed is not null && !loss.IsOnDevice && !seed.IsOnDevice)
        {
            // Lend the seed as the output's gradient: rules read it; one that would write into it gets a copy first.
            loss.Grad = seed;
            loss.GradIsLent = true;
            return;
        }
        // A host seed is copied into a fresh gradient, so that buffer needs no zero-fill first.
        bool hostSeed = seed is not null && !loss.IsOnDevice;
        var g = hostSeed ? GradOf(loss, out _)! : GradOf(loss)!;
        if (g.IsOnDevice)
        {
            var gpu = g.Device.Gpu;
            if (seed is null)
            {
                if (loss.Length != 1)
                    throw new ArgumentException($"Backward: a non-scalar output {loss.Shape} needs an explicit seed gradient.");
                // g += 1 on the device: a fill when the gradient was just made (zeroed), else add a one-element ones tensor.
                if (freshGrad) ElementwiseGpuKernels.Fill(gpu, g.View, 1f, 1);
                else
                {
                    var one = Arena.Allocate(Shape.Scalar);
                    ElementwiseGpuKernels.Fill(gpu, one.View, 1f, 1);
                    ElementwiseGpuKernels.Axpy(gpu, 1f, one.View, g.View, 1);
                }
            }
            else
            {
                ElementwiseGpuKernels.Axpy(gpu, 1f, seed.View, g.View, g.Length);
            }
        }
        else if (seed is null)
        {
            if (loss.Length != 1)
                throw new ArgumentException($"Backward: a non-scalar output {loss.Shape} needs an explicit seed gradient.");
            g.Span[0] += 1f;
        }
        else if (freshGrad)
        {
            ElementwiseKernels.Copy(seed.ReadOnlySpan, g.Span);
        }
        else
        {
            ElementwiseKernels.AddInPlace(seed.ReadOnlySpan, g.Span);
        }
    }

    /// <summary>Runs the recorded backward rules in reverse order, then drops them.</summary>
    private void RunRules()
    {
        for (int i = _count - 1; i >= 0; i--)
        {
            ref readonly var e = ref _entries[i];
            if (e.BackwardGroup is { } group)
            {
                int first = i;
                while (first > 0 && _entries[first - 1].BackwardGroup == group) first--;
                if (first < i)
                {
                    RunGroup(group, first, i);
                    i = first;
                    continue;
                }
            }
            if (ReceivedGradient(e)) Run(e);
        }
        // Backward consumes the recorded ops (as PyTorch frees its graph): a second Backward on this tape
        // sees only ops recorded after this one, so no backward rule — in particular a fused embedding
        // update — ever runs twice. The arena is kept: gradients stay readable until Reset.
        Array.Clear(_entries, 0, _count);
        _count = 0;
    }

    /// <summary>Ops whose output received no gradient are skipped: nothing downstream of the loss used them.</summary>
    private static bool ReceivedGradient(in TapeEntry e) => e.Output is null || e.Output.Grad is not null || e.Output.Owner is not null;

    private void Run(in TapeEntry e)
    {
        if (Profile is { } profile)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            e.Backward(this, in e);
            profile.AddBackward(in e, System.Diagnostics.Stopwatch.GetTimestamp() - start);
        }
        else
        {
            e.Backward(this, in e);
        }
    }

    /// <summary>Entries first..last (recording order) that share <paramref name="group"/>: those that received a gradient go to it together.</summary>
    private void RunGroup(BackwardGroupFn group, int first, int last)
    {
        if (_group.Length < last - first + 1) _group = new TapeEntry[Math.Max(_group.Length * 2, last - first + 1)];
        int n = 0;
        for (int k = first; k <= last; k++)
            if (ReceivedGradient(_entries[k])) _group[n++] = _entries[k];
        try
        {
            if (n == 1) Run(_group[0]);
            else if (n > 1)
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                group(this, _group.AsSpan(0, n));
                // The group's time goes to its op, once per entry, so the per-op table still counts calls.
                if (Profile is { } profile)
                {
                    long ticks = System.Diagnostics.Stopwatch.GetTimestamp() - start;
                    for (int k = 0; k < n; k++) profile.AddBackward(in _group[k], k == 0 ? ticks : 0);
                }
            }
        }
        finally
        {
            Array.Clear(_group, 0, n); // the copies must not keep the step's tensors alive
        }
    }

    /// <summary>Forgets all entries and recycles the arena: call once per step, after the optimizer.</summary>
    public void Reset()
    {
        Array.Clear(_entries, 0, _count);
        _count = 0;
        // Gradients from the arena die with it: a leaf input (made outside the step) must not keep one, whose storage and
        // tensor object the next step's tensors take over (its gradient would silently become some other tensor).
        foreach (var t in _gradHolders) t.Grad = null;
        _gradHolders.Clear();
        Arena.Reset();
        _lastMark = System.Diagnostics.Stopwatch.GetTimestamp();
    }
}

using Recsys.Engine.Core;

namespace Recsys.Engine.Nn;

/// <summary>
/// A model component. Modules own parameters (dense, trained by the dense optimizers) and possibly
/// embedding tables (sparse, updated inside backward); both are saved in checkpoints by name.
/// Names are hierarchical and given at construction ("top.0.weight").
/// </summary>
public abstract class Module
{
    /// <summary>Dense trainable parameters of this module and its children.</summary>
    public virtual IEnumerable<Parameter> Parameters() => Array.Empty<Parameter>();

    /// <summary>
    /// Moves this module's state to <paramref name="device"/>: the same parameter objects, now over device memory (optimizer
    /// state follows on the optimizer's next step). Modules with embedding tables move those too.
    /// </summary>
    public virtual void To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        foreach (var p in Parameters()) p.To(device);
    }

    /// <summary>Every tensor a checkpoint stores, by unique name: parameters plus embedding tables.</summary>
    public virtual IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (var p in Parameters()) yield return new(p.Name, p.Value);
    }
}

namespace VmDevices;

/// <summary>
/// Anything running in a guest whose state a snapshot must copy (issue 6: the tunnel device, with
/// its keys, counters and random state). A clone never shares C# objects with its parent: it is
/// built by a <see cref="GuestWorkloadFactory"/> with the clone's own context, then given the
/// captured state.
/// </summary>
public interface IGuestWorkload
{
    /// <summary>
    /// A complete, self-contained copy of the workload's state: exactly what a real snapshot would
    /// copy from guest memory. The snapshot keeps this object and may hand it to many clones, so it
    /// must not alias anything the workload keeps mutating.
    /// </summary>
    object CaptureState();

    /// <summary>
    /// Loads a state from <see cref="CaptureState"/> (possibly captured from another instance).
    /// Must copy what it keeps: other clones restore from the same object.
    /// </summary>
    void RestoreState(object state);

    /// <summary>The guest's vCPUs run (after boot, or after restore once the devices have written the
    /// new generation values). Runs as a scheduler event.</summary>
    void OnResume() { }
}

/// <summary>Builds a workload for one guest (the original or a clone) from that guest's context.</summary>
public delegate IGuestWorkload GuestWorkloadFactory(GuestContext context);

using Tunnel.Device;

namespace ForkSim;

/// <summary>What the host's entropy (the guest's getrandom) does across a snapshot.</summary>
public enum HostEntropyModel
{
    /// <summary>Each guest draws its own bytes from the moment it resumes (what ForkSimulation assumes).</summary>
    PerGuest,

    /// <summary>
    /// Sibling clones' getrandom returns the same bytes (the guest kernel's generator was copied and
    /// never reseeds: VMClock without vmgenid). Only a clone-unique input (here /dev/hwrng, read by
    /// the fork path) separates them.
    /// </summary>
    SharedUntilKernelReseed,
}

/// <summary>Where, inside the engine, the snapshot of an adversarial run lands.</summary>
public enum ForkPointKind
{
    /// <summary>Just before a read of the pull counter (hot-path check, gate, fork path, generator self-check).</summary>
    CounterRead,

    /// <summary>Just before the engine draws randomness (indexes, ephemerals, jitter).</summary>
    RandomDraw,

    /// <summary>Just before a datagram is handed to the network (the sendmsg): every clone then sends it.</summary>
    Transmit,
}

/// <summary>One enumerated snapshot point: the <see cref="Observation"/>-th (1-based) environment
/// observation of kind <see cref="Kind"/> inside the source guest's <see cref="Step"/>-th step.</summary>
public readonly record struct ForkPointId(int Step, int Observation, ForkPointKind Kind)
{
    public override string ToString() => $"step {Step} observation {Observation} ({Kind})";
}

/// <summary>
/// An adversarial fork scenario (issue 14): peer A boots, handshakes and sends
/// <see cref="Packets"/> packets to B (B answers each); the VMM may snapshot at any enumerated
/// point inside that run, and <see cref="Clones"/> clones resume from it.
/// </summary>
public sealed record AdversarialScenario
{
    public ulong Seed { get; init; } = 1;

    public ForkGuardMode Mode { get; init; } = ForkGuardMode.Both;

    public int Clones { get; init; } = 2;

    /// <summary>From a clone's resume to its fork notification.</summary>
    public TimeSpan NotifyDelay { get; init; } = TimeSpan.Zero;

    public HostEntropyModel Entropy { get; init; } = HostEntropyModel.PerGuest;

    /// <summary>Data packets A sends before the last snapshot point.</summary>
    public int Packets { get; init; } = 200;

    public double PacketsPerSecond { get; init; } = 100;

    /// <summary>Simulated time the clones run after the notification.</summary>
    public TimeSpan RunAfterNotify { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Shared model: whether /dev/hwrng exists (the clone-unique input the fork path reads).</summary>
    public bool HwRng { get; init; } = true;

    /// <summary>Negative control: the reseed gate switched off.</summary>
    public bool GateOff { get; init; }

    /// <summary>Negative control: the two-read handshake path (<see cref="ForkSeam.TwoReadsForTest"/>).</summary>
    public bool TwoReads { get; init; }

    /// <summary>Negative control: every fork counts as clone-unique (<see cref="ForkGuard.RequireCloneUniqueInput"/> off).</summary>
    public bool UniqueInputRuleOff { get; init; }

    public override string ToString() =>
        $"seed {Seed}, {Mode}, x{Clones}, delay {NotifyDelay.TotalMilliseconds:0} ms, {Entropy}{(HwRng ? "" : ", no hwrng")}, {Packets} packets"
        + (GateOff ? ", GATE OFF" : "") + (TwoReads ? ", TWO READS" : "") + (UniqueInputRuleOff ? ", UNIQUE-INPUT RULE OFF" : "");
}

/// <summary>What one adversarial run saw on the wire.</summary>
public sealed record AdversarialResult
{
    public required ForkPointId Point { get; init; }

    /// <summary>(key, nonce) pairs seen with two different ciphertexts.</summary>
    public int ReusedPairs { get; init; }

    /// <summary>Distinct initiations from A's guests that share an ephemeral key.</summary>
    public int IdenticalEphemerals { get; init; }

    /// <summary>Distinct handshake messages from A's guests that share a sender index.</summary>
    public int IdenticalIndexes { get; init; }

    /// <summary>Byte-identical copies of one message sent by several clones (a snapshot inside a sendmsg): replays, harmless.</summary>
    public int IdenticalCopies { get; init; }

    /// <summary>Clones that sent a data packet under keys made after the snapshot.</summary>
    public int ClonesWithNewKeys { get; init; }

    public bool Faulty => ReusedPairs > 0 || IdenticalEphemerals > 0 || IdenticalIndexes > 0;

    public override string ToString() =>
        $"{Point}: reused {ReusedPairs}, same ephemeral {IdenticalEphemerals}, same index {IdenticalIndexes}, copies {IdenticalCopies}, clones with new keys {ClonesWithNewKeys}";
}

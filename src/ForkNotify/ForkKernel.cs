using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// One guest kernel's fork-safety state: the PM chain, the VM generation, the random generator and
/// the generation watchers, and <see cref="AddVmForkRandomness"/>, the fork path that a vmgenid
/// driver calls when the VM ID changes.
/// </summary>
public sealed class ForkKernel
{
    private readonly object _forkLock = new();
    private readonly ILogger _logger;
    private byte[]? _lastVmId;
    private bool _reseedRandomOnFork = true;

    /// <summary>A kernel whose randomness is seeded from the OS.</summary>
    public ForkKernel(ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        Generation = new VmGeneration();
        Random = new ForkSafeRandom(Generation);
        Pm = new PmNotifier(_logger);
        Watchers = new GenerationWatchers(Generation);
    }

    /// <summary>
    /// A kernel whose randomness starts from <paramref name="seed"/>, reseeding from
    /// <paramref name="entropy"/> (default: the OS), for deterministic simulation.
    /// </summary>
    public ForkKernel(ReadOnlySpan<byte> seed, ILogger? logger = null, IRandomGenerator? entropy = null)
    {
        _logger = logger ?? NullLogger.Instance;
        Generation = new VmGeneration();
        Random = new ForkSafeRandom(Generation, seed, entropy);
        Pm = new PmNotifier(_logger);
        Watchers = new GenerationWatchers(Generation);
    }

    public PmNotifier Pm { get; }

    public VmGeneration Generation { get; }

    public ForkSafeRandom Random { get; }

    public GenerationWatchers Watchers { get; }

    /// <summary>
    /// The hot path's pull counter, if there is one: the fork path reads it once, before it reseeds,
    /// and hands that value down the chain (<see cref="VmForkNotice.PullGeneration"/>); the
    /// generator's self-check watches it too.
    /// </summary>
    public IGenerationCounter? PullCounter
    {
        get => Random.PullCounter;
        set => Random.PullCounter = value;
    }

    /// <summary>
    /// Read on the fork path after the pull counter, when the fork's own input is not clone-unique
    /// (a VMClock counter, a kmsg sequence number): /dev/hwrng where present. Null: none.
    /// </summary>
    public ICloneUniqueInput? CloneInput { get; set; }

    /// <summary>
    /// TEST-ONLY negative control. When false, the fork path skips the reseed and the generator's
    /// generation self-check is off too, so restored clones keep emitting identical randomness.
    /// </summary>
    public bool ReseedRandomOnFork
    {
        get => _reseedRandomOnFork;
        set
        {
            _reseedRandomOnFork = value;
            Random.GenerationCheck = value;
        }
    }

    /// <summary>
    /// Records the VM ID the guest booted with (as the vmgenid driver does at probe), mixing it into
    /// the random state like <c>add_device_randomness</c>, without a fork.
    /// </summary>
    public void SetBootVmId(ReadOnlySpan<byte> uniqueVmId)
    {
        lock (_forkLock)
        {
            _lastVmId = uniqueVmId.ToArray();
        }
    }

    /// <summary>
    /// The fork path for a driver whose ID is itself clone-unique (vmgenid's new 16-byte ID, the
    /// virtio-rng fill-on-leak bytes): see <see cref="AddVmForkRandomness(ReadOnlySpan{byte}, bool, string)"/>.
    /// </summary>
    public bool AddVmForkRandomness(ReadOnlySpan<byte> uniqueVmId) =>
        AddVmForkRandomness(uniqueVmId, idIsCloneUnique: true);

    /// <summary>
    /// The fork path, in this order: read the pull counter once; if the ID is not clone-unique,
    /// read <see cref="CloneInput"/>; reseed the random generator with the ID, that input and fresh
    /// entropy; advance the generation, tell the watchers, then call every block on the PM chain
    /// with <see cref="PmEvent.PostVmFork"/> and a <see cref="VmForkNotice"/> (no block can veto
    /// it). Returns false and does nothing when the ID equals the last one seen (the vmgenid
    /// driver's <c>memcmp</c>: hypervisors may notify spuriously).
    /// </summary>
    /// <param name="idIsCloneUnique">Whether <paramref name="vmId"/> differs between sibling clones.</param>
    public bool AddVmForkRandomness(ReadOnlySpan<byte> vmId, bool idIsCloneUnique, string source = "")
    {
        lock (_forkLock)
        {
            if (_lastVmId is not null && vmId.SequenceEqual(_lastVmId))
                return false;
            _lastVmId = vmId.ToArray();
            // Before anything that differs between clones is read: a snapshot after this line makes
            // a clone whose counter is past this value, so its gate stays shut (see VmForkNotice).
            ulong pullGeneration = PullCounter?.Read() ?? 0;
            Span<byte> input = stackalloc byte[32];
            bool cloneUnique = idIsCloneUnique;
            if (!cloneUnique && CloneInput is { } extra && extra.TryRead(input))
                cloneUnique = true;
            if (_reseedRandomOnFork)
                Random.AddVmForkRandomness(vmId, cloneUnique && !idIsCloneUnique ? input : []);
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(input);
            ulong generation = Generation.Advance();
            _logger.LogInformation("vm fork: crng reseeded{Skipped}, generation {Generation}{Unique}",
                _reseedRandomOnFork ? "" : " (SKIPPED: test switch)", generation,
                cloneUnique ? "" : " (no input unique to this clone yet: handshakes held)");
            Watchers.GenerationChanged();
            Pm.Chain.NotifyAll((ulong)PmEvent.PostVmFork, new VmForkNotice(pullGeneration, cloneUnique, source));
            return true;
        }
    }

    /// <summary>
    /// A clone-unique input that arrives after the fork path ran (the kernel's "crng reseeded due
    /// to virtual machine fork" record, after which getrandom is fresh; a late /dev/hwrng read):
    /// reseeds with it and calls the chain again with a clone-unique <see cref="VmForkNotice"/>, so
    /// held handshakes may go. The generation does not move: it is the same fork.
    /// </summary>
    public void AddCloneUniqueRandomness(ReadOnlySpan<byte> input, string source = "")
    {
        lock (_forkLock)
        {
            ulong pullGeneration = PullCounter?.Read() ?? 0;
            if (_reseedRandomOnFork)
                Random.AddVmForkRandomness([], input);
            _logger.LogInformation("vm fork: clone-unique input from {Source} mixed in", source);
            Pm.Chain.NotifyAll((ulong)PmEvent.PostVmFork, new VmForkNotice(pullGeneration, CloneUnique: true, source));
        }
    }

    /// <summary>What a snapshot copies: generation, random state, last VM ID.</summary>
    public ForkKernelState Capture()
    {
        lock (_forkLock)
        {
            return new ForkKernelState(Generation.Current, Random.Capture(), (byte[]?)_lastVmId?.Clone());
        }
    }

    /// <summary>Puts a captured state back (the chain registrations are left as they are).</summary>
    public void Restore(ForkKernelState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        lock (_forkLock)
        {
            Generation.Set(state.Generation);
            Random.Restore(state.Random);
            _lastVmId = (byte[]?)state.LastVmId?.Clone();
            Watchers.GenerationChanged();
        }
    }
}

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
    /// The fork path, in this order: reseed the random generator with the ID and fresh entropy,
    /// advance the generation, tell the watchers, then call the PM chain with
    /// <see cref="PmEvent.PostVmFork"/>. Returns false and does nothing when the ID equals the last
    /// one seen (the vmgenid driver's <c>memcmp</c>: hypervisors may notify spuriously).
    /// </summary>
    public bool AddVmForkRandomness(ReadOnlySpan<byte> uniqueVmId)
    {
        lock (_forkLock)
        {
            if (_lastVmId is not null && uniqueVmId.SequenceEqual(_lastVmId))
                return false;
            _lastVmId = uniqueVmId.ToArray();
            if (_reseedRandomOnFork)
                Random.AddVmForkRandomness(uniqueVmId);
            ulong generation = Generation.Advance();
            _logger.LogInformation("vm fork: crng reseeded{Skipped}, generation {Generation}",
                _reseedRandomOnFork ? "" : " (SKIPPED: test switch)", generation);
            Watchers.GenerationChanged();
            Pm.CallChain(PmEvent.PostVmFork);
            return true;
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

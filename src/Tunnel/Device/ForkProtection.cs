using System.Globalization;
using ForkNotify;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Uapi;

namespace Tunnel.Device;

/// <summary>
/// The fork protection of one running interface, put together by the daemon: a guest-kernel model
/// (<see cref="ForkKernel"/>) whose generator is the engine's randomness, the host source whose
/// events go into the kernel's fork path, and the <see cref="ForkGuard"/> that clears and rekeys
/// the engine on that path. Its state is reported through the UAPI as extra keys.
/// </summary>
/// <remarks>
/// Order matters: the engine is created with <see cref="Random"/>, then <see cref="Attach"/> runs
/// before the first handshake (so every keypair records the pull counter), and
/// <see cref="Dispose"/> stops the source before it detaches the guard, so no fork is handled
/// against an engine being torn down.
/// </remarks>
public sealed class ForkProtection : IUapiExtraKeys, IDisposable
{
    private readonly ForkKernel _kernel;
    private readonly IForkSource? _source;
    private readonly IGenerationCounter? _pullCounter;
    private readonly ILogger _log;
    private ForkGuard? _guard;
    private TunnelDevice? _device;
    private long _events;
    private long _forks;
    private bool _disposed;

    /// <param name="kernel">The guest kernel: its generator becomes the engine's randomness.</param>
    /// <param name="mode">The guard's mode.</param>
    /// <param name="sourceKind">What <paramref name="source"/> is (for logs and the UAPI).</param>
    /// <param name="source">Probed, not started; this object starts it on <see cref="Attach"/> and
    /// disposes it. Null: nothing reports forks (the guard still handles suspend events).</param>
    /// <param name="pullCounter">Required for the hot-path modes (VMClock's counter).</param>
    /// <param name="cloneInput">Read on the fork path when the source's own event is not
    /// clone-unique (VMClock, SysGenID): /dev/hwrng where present. Null: none; handshakes are then
    /// held after such a fork until a clone-unique input arrives.</param>
    /// <exception cref="ArgumentException">A hot-path mode without a pull counter, or a source
    /// with <see cref="ForkGuardMode.Off"/>.</exception>
    public ForkProtection(ForkKernel kernel, ForkGuardMode mode, ForkSourceKind sourceKind, IForkSource? source,
        IGenerationCounter? pullCounter = null, ILogger? logger = null, ICloneUniqueInput? cloneInput = null)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        if (!Enum.IsDefined(mode))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown fork guard mode.");
        if (ForkGuardModes.NeedsPullCounter(mode) && pullCounter is null)
            throw new ArgumentException($"Fork guard mode {mode} needs a pull counter.", nameof(pullCounter));
        if (mode == ForkGuardMode.Off && source is not null)
            throw new ArgumentException("Fork guard mode Off watches no source.", nameof(source));
        _kernel = kernel;
        Mode = mode;
        SourceKind = source is null ? ForkSourceKind.None : sourceKind;
        _source = source;
        _pullCounter = pullCounter;
        _log = logger ?? NullLogger.Instance;
        if (cloneInput is not null)
            _kernel.CloneInput = cloneInput;
        _kernel.PullCounter = pullCounter;
    }

    /// <summary>
    /// Whether an event of <paramref name="kind"/> is itself proof that the reseed is clone-unique:
    /// a kmsg "crng reseeded due to virtual machine fork" record or a NEW_VMGENID uevent come after
    /// the guest kernel has reseeded, so getrandom (which the reseed draws) is fresh in each clone.
    /// A VMClock or SysGenID counter is the same in every sibling clone. An event carrying a VM ID
    /// (vmgenid) is unique by that ID.
    /// </summary>
    public static bool EventIsCloneUnique(ForkSourceKind kind, ForkEvent fork) =>
        fork.VmId is not null || kind is ForkSourceKind.Kmsg or ForkSourceKind.Uevent;

    public ForkGuardMode Mode { get; }

    public ForkSourceKind SourceKind { get; }

    public ForkKernel Kernel => _kernel;

    /// <summary>
    /// The engine's randomness (<see cref="DeviceOptions.Random"/>): the fork kernel's generator,
    /// reseeded on every fork, when a guard runs; with <see cref="ForkGuardMode.Off"/> (nothing
    /// reseeds it) the kernel's own generator through getrandom(2), as wireguard-go has it.
    /// </summary>
    public IRandomGenerator Random => Mode == ForkGuardMode.Off ? OsRandomGenerator.Instance : _kernel.Random;

    /// <summary>The guard, once attached.</summary>
    public ForkGuard? Guard => _guard;

    /// <summary>Events the source reported.</summary>
    public long Events => Interlocked.Read(ref _events);

    /// <summary>Events that were a new VM (the kernel ran its fork path); the rest were repeats.</summary>
    public long Forks => Interlocked.Read(ref _forks);

    /// <summary>Puts the guard on <paramref name="device"/> (created with <see cref="Random"/>) and starts the source.</summary>
    public void Attach(TunnelDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_device is not null)
            throw new InvalidOperationException("already attached");
        _device = device;
        // One read for the whole start: the generation we start in is not a fork (with it recorded,
        // a repeat of it is ignored), and the gate opens for exactly that value.
        ulong? start = _pullCounter?.Read();
        if (_source is not null && start is { } generation)
            _kernel.SetBootVmId(VmForkId.ForGeneration(_source.Name, generation));
        _guard = new ForkGuard(device, _kernel, Mode, _pullCounter, _log, start);
        _source?.Start(OnFork);
        _log.LogInformation("{Device}: fork guard {Mode}, source {Source}", device.Name, ForkGuardModes.Name(Mode),
            _source?.Name ?? "none");
    }

    /// <summary>On the source's thread: the kernel's fork path (reseed, generation, watchers, PM chain -> guard).</summary>
    private void OnFork(ForkEvent fork)
    {
        Interlocked.Increment(ref _events);
        // Nonces (for sources without a counter) come from the OS: the kernel's own generator is
        // the one every clone still shares until this very call reseeds it.
        var id = VmForkId.For(fork, OsRandomGenerator.Instance);
        if (_kernel.AddVmForkRandomness(id, EventIsCloneUnique(SourceKind, fork), fork.Source))
        {
            Interlocked.Increment(ref _forks);
            _log.LogInformation("VM fork reported by {Source} ({Detail}): generation {Generation} handled",
                fork.Source, fork.Detail, _guard?.HandledGeneration);
        }
        else
        {
            _log.LogInformation("{Source} reported {Detail} again: same VM, ignored", fork.Source, fork.Detail);
        }
    }

    /// <summary>
    /// <c>fork_mode</c>, <c>fork_source</c>, <c>fork_generation</c>, <c>fork_generation_handled</c>,
    /// <c>fork_outdated_watchers</c>, <c>fork_events</c>, <c>fork_sessions_cleared</c>,
    /// <c>fork_stale_key_drops</c>, <c>fork_clone_input</c> (what makes a VMClock or SysGenID
    /// fork's reseed clone-unique: the /dev/hwrng path or <c>none</c>), <c>fork_handshakes_held</c>
    /// (1 while a fork's reseed had nothing unique to this clone), and with a pull counter
    /// <c>fork_pull_counter</c>.
    /// </summary>
    public void AddExtraKeys(List<KeyValuePair<string, string>> keys)
    {
        keys.Add(new("fork_mode", ForkGuardModes.Name(Mode)));
        keys.Add(new("fork_source", ForkSourceKinds.Name(SourceKind)));
        keys.Add(Number("fork_generation", _kernel.Watchers.CurrentGeneration));
        keys.Add(Number("fork_generation_handled", _guard?.HandledGeneration ?? 0));
        keys.Add(Number("fork_outdated_watchers", (ulong)_kernel.Watchers.OutdatedCount));
        keys.Add(Number("fork_events", (ulong)Events));
        keys.Add(Number("fork_sessions_cleared", (ulong)(_guard?.SessionsCleared ?? 0)));
        keys.Add(Number("fork_stale_key_drops", (ulong)(_device?.Fork.StaleKeyDrops ?? 0)));
        keys.Add(new("fork_clone_input", _kernel.CloneInput?.Name ?? "none"));
        keys.Add(Number("fork_handshakes_held", _guard is { HoldingHandshakes: true } ? 1UL : 0UL));
        if (_pullCounter is not null)
            keys.Add(Number("fork_pull_counter", _pullCounter.Read()));
    }

    private static KeyValuePair<string, string> Number(string key, ulong value) =>
        new(key, value.ToString(CultureInfo.InvariantCulture));

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _source?.Dispose();
        _guard?.Dispose();
    }
}

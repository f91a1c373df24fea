using System.Collections.Concurrent;
using ForkNotify;
using Microsoft.Extensions.Logging;
using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// A WireGuard interface without I/O (wireguard-go's Device, the kernel's wg_device): the private
/// key, the peers, allowed IPs, the index table, the cookie checker and the handshake rate limiter.
/// Datagrams and time come in (<see cref="ReceiveDatagram"/>, <see cref="SendPacket"/>,
/// <see cref="Tick"/>); datagrams and packets go out through <see cref="IDeviceIo"/>.
/// </summary>
/// <remarks>
/// Configuration serializes on one lock; the data path is lock-free up to the per-peer lock that
/// guards handshake and keypair changes. Mutable state lives in plain fields here and in the
/// peers (no statics, no thread-locals), so a VM-snapshot capture can copy it.
/// </remarks>
public sealed partial class TunnelDevice : IHandshakeLookup, IDisposable
{
    /// <summary>
    /// For a host without a handshake queue (<see cref="ReceiveDatagram"/>: ForkSim, the engine's
    /// tests, in-process benchmarks), where no queue depth can say the device is busy: initiations
    /// (and responses that cost a Diffie-Hellman and failed) per second above which it counts as
    /// under load for the next second. A host with a queue decides by its depth instead
    /// (<see cref="AdmitHandshake"/>'s backlogged, wireguard-go and the kernel: 1/8 of the queue).
    /// </summary>
    public const int UnderLoadHandshakesPerSecond = Constants.MaxQueuedIncomingHandshakes / 8;

    private readonly Lock _configLock = new();
    private readonly ConcurrentDictionary<PublicKey, Peer> _peers = new();
    // Never replaced; not readonly only so that Volatile.Read(ref _peerList) (timers, digest) compiles.
    private PeerList _peerList = new();
    private readonly RateLimiter _rateLimiter;
    private readonly ILogger _logger;

    private PrivateKey? _privateKey;
    private StaticIdentity? _identity;
    private CookieChecker? _cookieChecker;

    private readonly Lock _loadLock = new();
    private long _loadWindowStart;
    private int _loadWindowCount;
    private long _underLoadUntil;
    private volatile bool _forceUnderLoad;

    public TunnelDevice(DeviceOptions options, IDeviceIo io)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(io);
        Sodium.EnsureLoaded();
        Clock = options.Clock;
        Random = options.Random;
        _logger = options.Logger;
        Name = options.Name;
        Io = io;
        Indexes = new IndexTable<object>(Random);
        _rateLimiter = new RateLimiter(Clock);
        Rekey = new RekeyPacer(this);
        _loadWindowStart = Clock.MonotonicNanos;
        _underLoadUntil = long.MinValue;
    }

    /// <summary>The interface name, for logs and the fork guard's watcher.</summary>
    public string Name { get; }

    /// <summary>Fork safety's one seam into the engine: the hot-path counter, the reseed gate, stale drops.</summary>
    public ForkSeam Fork { get; } = new();

    internal IClock Clock { get; }
    internal ILogger Logger => _logger;
    internal IRandomGenerator Random { get; }
    internal IDeviceIo Io { get; }

    /// <summary>Defers zeroing a retired keypair until no data thread can still hold it.</summary>
    internal Rcu Rcu { get; } = new();

    /// <summary>The peers with an armed timer, each at its earliest deadline (Timers.cs).</summary>
    internal TimerQueue Timers { get; } = new();

    /// <summary>The paced rekey after every session was cleared (RekeyPacer.cs).</summary>
    internal RekeyPacer Rekey { get; }

    /// <summary>
    /// Called (on any thread) when a deadline came earlier than the host may be sleeping to: the
    /// fork's rekey was queued. The host's timer loop sets it to wake itself; never throws.
    /// </summary>
    public Action? TimersBroughtForward { get; set; }

    /// <summary>Session indexes: each names a peer (its pending handshake) or a <see cref="Keypair"/>.</summary>
    internal IndexTable<object> Indexes { get; }

    public AllowedIps<Peer> AllowedIps { get; } = new();

    public ushort ListenPort { get; set; }
    public uint Fwmark { get; set; }

    /// <summary>Inner MTU for padding: a packet is never padded past it (0 = pad to 16 always).</summary>
    public int Mtu { get; set; } = 1420;

    // ---- configuration ----

    /// <summary>32 bytes; all zeros removes the key. Every session is dropped when the key changes.</summary>
    public void SetPrivateKey(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != PrivateKey.Size)
            throw new ArgumentException($"A private key is {PrivateKey.Size} bytes.", nameof(privateKey));
        lock (_configLock)
        {
            PrivateKey? key = privateKey.IndexOfAnyExcept((byte)0) < 0 ? null : PrivateKey.Import(privateKey);
            if (key is not null && _privateKey is not null && key.PublicKey == _privateKey.PublicKey
                && key.Secret.SequenceEqual(_privateKey.Secret))
            {
                key.Dispose();
                return; // same key: keep the sessions (as wireguard-go)
            }
            var identity = key is null ? null : new StaticIdentity(key);
            var checker = key is null ? null : new CookieChecker(key.PublicKey, Random);
            // A peer with our new public key would be ourselves: remove it, as the kernel does
            // (wg_set_device: "We remove before setting, to prevent race").
            if (key is not null && _peers.TryRemove(key.PublicKey, out Peer? self))
                Unlink(self);
            PrivateKey? oldKey = _privateKey;
            CookieChecker? oldChecker = _cookieChecker;
            _privateKey = key;
            Volatile.Write(ref _identity, identity);
            Volatile.Write(ref _cookieChecker, checker);
            foreach (Peer peer in _peerList)
            {
                peer.SetIdentity(identity);
                peer.ClearSessions();
            }
            oldChecker?.Dispose();
            oldKey?.Dispose();
        }
    }

    public bool HasPrivateKey { get { lock (_configLock) return _privateKey is not null; } }

    public void CopyPrivateKey(Span<byte> dst)
    {
        lock (_configLock)
        {
            if (_privateKey is null)
                dst[..PrivateKey.Size].Clear();
            else
                _privateKey.Secret.CopyTo(dst);
        }
    }

    public void CopyPublicKey(Span<byte> dst)
    {
        lock (_configLock)
        {
            if (_privateKey is null)
                dst[..PublicKey.Size].Clear();
            else
                _privateKey.PublicKey.CopyTo(dst);
        }
    }

    /// <summary>Adds a peer by its public key (32 bytes), or returns the existing one.</summary>
    /// <exception cref="ArgumentException">The key is the device's own public key: a peer cannot be
    /// ourselves (the kernel ignores such a peer; a handshake with it would be with ourselves).</exception>
    public Peer AddPeer(ReadOnlySpan<byte> publicKey)
    {
        var key = new PublicKey(publicKey);
        lock (_configLock)
        {
            if (_privateKey is not null && key == _privateKey.PublicKey)
                throw new ArgumentException("A peer cannot have the device's own public key.", nameof(publicKey));
            if (_peers.TryGetValue(key, out Peer? existing))
                return existing;
            if (_peerList.Count >= Constants.MaxPeersPerDevice)
                throw new InvalidOperationException("Too many peers.");
            var peer = new Peer(this, key, _identity);
            _peers[key] = peer;
            _peerList.Add(peer);
            return peer;
        }
    }

    public Peer? FindPeer(ReadOnlySpan<byte> publicKey)
    {
        if (publicKey.Length != PublicKey.Size)
            return null;
        return _peers.TryGetValue(new PublicKey(publicKey), out Peer? peer) ? peer : null;
    }

    /// <summary>Removes a peer, its allowed IPs and its sessions (keys zeroed).</summary>
    public bool RemovePeer(ReadOnlySpan<byte> publicKey)
    {
        if (publicKey.Length != PublicKey.Size)
            return false;
        lock (_configLock)
        {
            if (!_peers.TryRemove(new PublicKey(publicKey), out Peer? peer))
                return false;
            Unlink(peer);
            return true;
        }
    }

    /// <summary>Takes a peer already out of the key map off the list and the allowed IPs, and zeroes it (config lock held).</summary>
    private void Unlink(Peer peer)
    {
        _peerList.Remove(peer);
        AllowedIps.RemoveByPeer(peer);
        peer.Remove();
        Rekey.Removed();
    }

    public void RemoveAllPeers()
    {
        using var section = Rcu.ReadLock(); // one reclamation pass for all peers' keypairs
        lock (_configLock)
        {
            // A removed peer keeps its forward link, so the walk goes on past each removal.
            foreach (Peer peer in _peerList)
            {
                _peers.TryRemove(peer.PublicKey, out _);
                Unlink(peer);
            }
        }
    }

    /// <summary>
    /// The peers in the order they were added (the order <c>wg show</c> lists). A live view, not a
    /// copy: enumerating it allocates nothing and takes no lock, and sees every peer present
    /// throughout the walk once (see <see cref="PeerList"/>); <see cref="PeerList.ToArray"/> copies.
    /// </summary>
    public PeerList Peers => _peerList;

    Handshake? IHandshakeLookup.FindByStaticKey(in PublicKey remoteStatic) =>
        _peers.TryGetValue(remoteStatic, out Peer? peer) ? peer.Handshake : null;

    // ---- time ----

    /// <summary>Fires every peer timer whose deadline has passed. Call at or after <see cref="NextDeadlineNanos"/>.</summary>
    public void Tick()
    {
        long now = Clock.MonotonicNanos;
        Timers.Run(now); // only the peers that are due: idle peers cost nothing
        Rekey.Run(now);
        if (Rcu.Waiting != 0)
            Rcu.Reclaim(); // a retired keypair whose last reader left without zeroing it
    }

    /// <summary>
    /// The earliest timer deadline of any peer (monotonic ns), or long.MaxValue for none. Packets
    /// move deadlines too (a received packet arms the keepalive 10 s ahead) without telling the
    /// host, so a host should sleep until the earlier of this and a short cap (100-250 ms is well
    /// inside the protocol's own slack: REKEY_TIMEOUT jitter alone is up to 333 ms), then tick.
    /// </summary>
    public long NextDeadlineNanos => Math.Min(Timers.NextDeadline(), Rekey.NextDue);

    /// <summary>Queues <paramref name="peers"/> for the paced rekey and wakes the host's timer loop.</summary>
    internal void QueueRekey(IReadOnlyCollection<Peer> peers)
    {
        if (peers.Count == 0)
            return;
        Rekey.Add(peers, Clock.MonotonicNanos);
        TimersBroughtForward?.Invoke();
    }

    private long _handshakesCompleted;

    /// <summary>Handshakes completed by any peer since the device was made: a host that reports
    /// them looks at the peers only when this has moved, so idle peers cost it nothing.</summary>
    public long HandshakesCompleted => Interlocked.Read(ref _handshakesCompleted);

    internal void CountHandshakeCompleted() => Interlocked.Increment(ref _handshakesCompleted);

    /// <summary>Forces cookie mode (tests); the device also goes under load by itself when flooded.</summary>
    public bool UnderLoad
    {
        get => _forceUnderLoad;
        set => _forceUnderLoad = value;
    }

    /// <summary>
    /// True while under load: forced, or <paramref name="overloaded"/> now or in the last second
    /// (wireguard-go's underLoadUntil, the kernel's last_under_load). What counts as overloaded is
    /// the caller's: the host queue's depth, or <see cref="CountCostlyHandshake"/> without a queue.
    /// </summary>
    private bool CheckLoad(long now, bool overloaded)
    {
        lock (_loadLock)
        {
            if (overloaded)
                _underLoadUntil = now + Constants.NanosPerSecond;
            return _forceUnderLoad || now < _underLoadUntil;
        }
    }

    /// <summary>
    /// Counts one message that can make this device spend Diffie-Hellman work it did not ask for;
    /// true above <see cref="UnderLoadHandshakesPerSecond"/> in the current one-second window.
    /// </summary>
    /// <remarks>
    /// An initiation counts: anyone with our public key can make one. A response does not count
    /// at admission: it costs a Diffie-Hellman only when its receiver index names a handshake of
    /// ours still waiting for its response, and a genuine one completes that handshake (at most
    /// one per initiation we sent, so our own pace bounds them; a replay then finds a keypair or
    /// nothing, a lookup). What an attacker can do with a response is forge one for an index it
    /// saw in our initiation or guessed (2^-32 per pending handshake): it passes mac1 (our public
    /// key) and costs ee and se before it fails, as often as it is sent while that handshake
    /// waits. Those are counted when they fail (<see cref="ReceiveResponse"/>), so a stream of
    /// them still turns cookie mode on.
    /// </remarks>
    private bool CountCostlyHandshake(long now)
    {
        lock (_loadLock)
        {
            if (now - _loadWindowStart >= Constants.NanosPerSecond)
            {
                _loadWindowStart = now;
                _loadWindowCount = 0;
            }
            return ++_loadWindowCount > UnderLoadHandshakesPerSecond;
        }
    }

    // ---- fork guard (issue 6) ----

    /// <summary>
    /// Zeroes the handshake and the previous/current/next keypairs of every peer (the kernel's PM
    /// notifier: wg_noise_handshake_clear + wg_noise_keypairs_clear). Packets staged for a
    /// handshake are plaintext and stay: they go out under the next session.
    /// </summary>
    public void ClearAllSessions()
    {
        using (Rcu.ReadLock()) // one reclamation pass for all peers' keypairs, as the section ends
        {
            foreach (Peer peer in Volatile.Read(ref _peerList))
                peer.ClearSessions();
        }
    }

    public void Dispose()
    {
        RemoveAllPeers();
        Rekey.Clear();
        Rcu.Barrier(TimeSpan.FromSeconds(1)); // data threads still inside a section zero the rest as they leave
        lock (_configLock)
        {
            _cookieChecker?.Dispose();
            _cookieChecker = null;
            _identity = null;
            _privateKey?.Dispose();
            _privateKey = null;
        }
    }

    internal void FillRandom(Span<byte> destination) => Random.Fill(destination);

    internal static TimeSpan ToTimeSpan(long nanos) => TimeSpan.FromTicks(nanos / TimeSpan.NanosecondsPerTick);
}

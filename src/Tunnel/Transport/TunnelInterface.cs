using System.Net;
using System.Net.Sockets;
using ForkNotify;
using Microsoft.Extensions.Logging;
using Tunnel.Config;
using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Uapi;

namespace Tunnel.Transport;

/// <summary>
/// One running interface: the TUN device, the UDP socket, the protocol engine between them, the
/// UAPI socket, and the threads that move packets (wireguard-go's RoutineReadFromTUN,
/// RoutineReceiveIncoming and its timers, as three plain threads). <see cref="Start"/> creates
/// everything in an order that fails early and cleanly; <see cref="DisposeAsync"/> undoes it in
/// reverse and zeroes every key.
/// </summary>
public sealed class TunnelInterface : IAsyncDisposable, IUapiBind
{
    /// <summary>Largest IP packet a TUN read can return (the IPv4/IPv6 length fields' limit).</summary>
    private const int MaxPacketSize = 65535;

    /// <summary>A TUN read with offload: a TSO packet behind its virtio-net header.</summary>
    private const int MaxTunReadSize = MaxPacketSize + VirtioNetHeader.Size;

    /// <summary>The timer thread wakes at least this often, so a deadline the data path brings
    /// forward (a new handshake, a keepalive) is never missed by more than this.</summary>
    private static readonly TimeSpan MaxTimerSleep = TimeSpan.FromMilliseconds(100);

    /// <summary>How often the timer thread looks for completed handshakes to log.</summary>
    private static readonly long HandshakeLogIntervalNanos = Constants.NanosPerSecond;

    private readonly TunnelConfig _config;
    private readonly string _requestedName;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly UapiServerOptions? _uapiOptions;
    private readonly ForkProtection? _fork;
    private readonly CancellationTokenSource _gone = new();
    private DeviceUapi? _configuration;
    private readonly ManualResetEventSlim _stop = new();
    private readonly List<Thread> _threads = [];
    private readonly Dictionary<Peer, DateTimeOffset?> _handshakesLogged = new(ReferenceEqualityComparer.Instance);
    private LinuxTun? _tun;
    private InterfaceIo? _io;
    private TunnelDevice? _device;
    private UapiServer? _uapi;
    private volatile bool _stopping;
    private bool _disposed;
    // Per-thread totals for the stop log: how many packets each data-path thread moved and what it
    // allocated doing so (handshakes allocate; steady-state packets must not). Each is written by
    // its own thread only, and read after the threads are joined.
    private long _tunReads;
    private long _tunPackets;
    private long _tunAllocated;
    private long _udpReads;
    private long _udpDatagrams;
    private long _udpAllocated;

    /// <param name="config">The loaded file; this object owns it from now on and zeroes its keys.</param>
    /// <param name="interfaceName">The TUN device to create.</param>
    /// <param name="loggers">Logging for the interface, the engine and the UAPI server.</param>
    /// <param name="uapiOptions">Where the UAPI socket goes (default /var/run/wireguard).</param>
    /// <param name="fork">The fork protection (randomness, guard, source); this object owns it from
    /// now on. Null: OS randomness and no guard.</param>
    /// <param name="tun">A TUN device already open (handed over by a parent process); this object
    /// owns it from now on. Null: <see cref="Start"/> creates <paramref name="interfaceName"/>.</param>
    public TunnelInterface(TunnelConfig config, string interfaceName, ILoggerFactory loggers,
        UapiServerOptions? uapiOptions = null, ForkProtection? fork = null, LinuxTun? tun = null)
    {
        _tun = tun;
        _fork = fork;
        _config = config;
        _requestedName = interfaceName;
        _loggers = loggers;
        _log = loggers.CreateLogger("tunneld");
        _uapiOptions = uapiOptions;
    }

    /// <summary>The interface name the kernel gave, once started.</summary>
    public string Name => _tun?.Name ?? _requestedName;

    /// <summary>The UDP port bound now (it changes with a UAPI <c>listen_port</c>).</summary>
    public ushort ListenPort => _io?.Bind.Port ?? 0;

    /// <summary>Cancelled when the interface went away under the daemon (the link was deleted, as
    /// <c>wg-quick down</c> does): the owner should dispose this object and exit.</summary>
    public CancellationToken InterfaceGone => _gone.Token;

    /// <summary>The protocol engine, once started.</summary>
    public TunnelDevice Device => _device ?? throw new InvalidOperationException("not started");

    /// <summary>
    /// Creates the TUN device (the privilege check), sets its MTU, addresses, link and routes, binds
    /// UDP, loads keys and peers into the engine, starts the packet threads and then the UAPI.
    /// Throws <see cref="TunException"/>, <see cref="SocketException"/> or
    /// <see cref="UapiServerException"/> with a message for the user; the caller disposes.
    /// </summary>
    public void Start()
    {
        if (_device is not null)
            throw new InvalidOperationException("already started");
        _tun ??= LinuxTun.Create(_requestedName, offload: true);
        var setup = new InterfaceSetup(_tun.Name);
        var settings = _config.Interface;
        setup.SetMtu(settings.Mtu);
        foreach (var address in settings.Addresses)
            setup.AddAddress(address);
        setup.SetUp();
        foreach (var prefix in RoutedPrefixes())
            setup.AddRoute(prefix);
        _log.LogInformation("interface {Name} up: mtu {Mtu}, {Addresses} address(es)", _tun.Name,
            settings.Mtu, settings.Addresses.Count);

        var bind = UdpBind.Open(settings.ListenPort);
        _io = new InterfaceIo(_tun, bind, _loggers.CreateLogger("io"));
        if (settings.FwMark != 0)
            bind.SetFwMark(settings.FwMark);
        _log.LogInformation("listening on UDP port {Port} ({Mode})", bind.Port, bind.DualStack ? "IPv4 and IPv6" : "IPv4 only");

        _device = new TunnelDevice(new DeviceOptions
        {
            Logger = _loggers.CreateLogger("device"),
            Name = _tun.Name,
            Random = _fork?.Random ?? OsRandomGenerator.Instance,
        }, _io)
        {
            ListenPort = bind.Port,
            Fwmark = settings.FwMark,
            Mtu = settings.Mtu, // padding never goes past the interface's MTU
        };
        _io.Device = _device;
        _fork?.Attach(_device); // before the first handshake: keypairs record the pull counter
        var uapi = _configuration = new DeviceUapi(_device, this, _fork);
        StartThread(TunReadLoop, "tun-read");
        StartThread(UdpReceiveLoop, "udp-receive");
        StartThread(TimerLoop, "timers");

        // The file goes in as one UAPI set: one code path for configuration, and its semantics
        // (persistent keepalive sends one at once) are wg setconf's.
        using (var request = ConfigSetRequest.Initial(_config))
            uapi.ApplySet(request);
        _log.LogInformation("{Peers} peer(s) configured", _config.Peers.Count);

        _uapi = new UapiServer(_tun.Name, uapi, _uapiOptions, _loggers.CreateLogger("uapi"));
        _uapi.Start();
    }

    /// <summary>
    /// Makes the device match <paramref name="config"/> as <c>wg syncconf</c> would (SIGHUP under
    /// <c>tunneld up</c>); addresses, MTU and routes stay as they are. The UAPI errno.
    /// </summary>
    public int Sync(TunnelConfig config)
    {
        var uapi = _configuration ?? throw new InvalidOperationException("not started");
        using var current = uapi.GetState();
        using var request = ConfigSetRequest.Sync(config, current);
        return uapi.ApplySet(request);
    }

    /// <summary>
    /// One route per distinct allowed IP. Default routes (/0) are left out: routing everything
    /// into the tunnel would include the tunnel's own UDP packets, and wg-quick avoids that loop
    /// with fwmark policy routing, which tunneld does not set up (see README).
    /// </summary>
    private IEnumerable<IPNetwork> RoutedPrefixes()
    {
        var seen = new HashSet<IPNetwork>();
        foreach (var peer in _config.Peers)
        {
            foreach (var prefix in peer.AllowedIps)
            {
                if (prefix.PrefixLength == 0)
                {
                    _log.LogWarning("{Prefix}: default route not installed (needs policy routing; see README)", prefix);
                    continue;
                }
                if (seen.Add(prefix))
                    yield return prefix;
            }
        }
    }

    int IUapiBind.Update(ushort listenPort, uint fwmark, out ushort boundPort)
    {
        var io = _io!;
        var old = io.Bind;
        boundPort = old.Port;
        try
        {
            if (listenPort == old.Port)
            {
                // wg setconf repeats the port every time: nothing to do unless the mark changed.
                if (fwmark != _device!.Fwmark)
                    old.SetFwMark(fwmark);
                return UapiErrno.Ok;
            }
            // Open the new socket before letting go of the old one: if the port is taken, nothing
            // changed. The receive thread notices the swap when its read on the old socket ends.
            var fresh = UdpBind.Open(listenPort);
            try
            {
                if (fwmark != 0)
                    fresh.SetFwMark(fwmark);
            }
            catch
            {
                fresh.Dispose();
                throw;
            }
            io.Bind = fresh;
            old.Dispose();
            boundPort = fresh.Port;
            _log.LogInformation("listening on UDP port {Port}", fresh.Port);
            return UapiErrno.Ok;
        }
        catch (SocketException e)
        {
            _log.LogWarning("cannot move to UDP port {Port}: {Error}", listenPort, e.SocketErrorCode);
            return e.SocketErrorCode == SocketError.AddressAlreadyInUse ? UapiErrno.PortInUse : UapiErrno.IO;
        }
    }

    private void StartThread(Action loop, string name)
    {
        var thread = new Thread(() => RunLoop(loop, name)) { IsBackground = true, Name = name };
        _threads.Add(thread);
        thread.Start();
    }

    /// <summary>A data-path thread must not die of one bad packet: log and carry on.</summary>
    private void RunLoop(Action loop, string name)
    {
        while (!_stopping)
        {
            try
            {
                loop();
            }
            catch (Exception e)
            {
                if (_stopping)
                    return;
                _log.LogError(e, "{Thread} failed; continuing", name);
                _stop.Wait(10); // a persistent fault must not become a busy loop of log lines
            }
        }
    }

    /// <summary>Packets the kernel routed into the tunnel, handed to the engine to encrypt.</summary>
    private void TunReadLoop()
    {
        var read = new byte[MaxTunReadSize];
        var segment = new byte[MaxPacketSize];
        var io = _io!;
        InterfaceIo.BeginBatch(new UdpSendBatch());
        TransportAead.HoldKeysUntilScrub(); // scrubbed after each read, below
        var tun = _tun!;
        var device = _device!;
        var start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!_stopping)
            {
                var length = tun.Read(read);
                if (length == 0)
                {
                    if (tun.Gone is { } why)
                        WaitAfterInterfaceGone(why);
                    return;
                }
                _tunReads++;
                if (!tun.HasVnetHeader)
                {
                    device.SendPacket(read.AsSpan(0, length));
                    io.FlushBatch();
                    TransportAead.ScrubThreadKeys();
                    _tunPackets++;
                    continue;
                }
                if (length < VirtioNetHeader.Size)
                    continue;
                var header = VirtioNetHeader.Read(read);
                var segments = new TsoSegments(read.AsSpan(VirtioNetHeader.Size, length - VirtioNetHeader.Size), header);
                while (segments.Next(segment, out var segmentLength))
                {
                    device.SendPacket(segment.AsSpan(0, segmentLength));
                    _tunPackets++;
                }
                io.FlushBatch();
                TransportAead.ScrubThreadKeys();
            }
        }
        finally
        {
            TransportAead.ScrubThreadKeys();
            _tunAllocated += GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }

    /// <summary>
    /// Datagrams from peers, handed to the engine; follows the bind across a rebind. One recvmmsg
    /// brings many (each message perhaps a GRO run of datagrams); what the engine delivers from
    /// them is coalesced and written to TUN once the whole batch is through.
    /// </summary>
    private void UdpReceiveLoop()
    {
        var device = _device!;
        var io = _io!;
        using var batch = new UdpReceiveBatch();
        io.BeginCoalescing(new TcpCoalescer());
        TransportAead.HoldKeysUntilScrub(); // scrubbed after each batch, below
        var start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!_stopping)
            {
                var bind = io.Bind;
                var count = bind.ReceiveBatch(batch);
                if (count < 0)
                {
                    // Closed: either stopping (the loop ends) or swapped for a new socket (pick it up).
                    if (ReferenceEquals(bind, io.Bind) && !_stopping)
                        _stop.Wait(10);
                    continue;
                }
                _udpReads++;
                for (var i = 0; i < count; i++)
                {
                    var data = batch.Data(i);
                    if (data.IsEmpty || !EndpointAddress.TryRead(batch.Source(i), out var from))
                        continue;
                    var segmentSize = batch.SegmentSize(i);
                    for (var offset = 0; offset < data.Length; offset += segmentSize)
                    {
                        device.ReceiveDatagram(data.Slice(offset, Math.Min(segmentSize, data.Length - offset)), from);
                        _udpDatagrams++;
                    }
                }
                io.FlushDelivered();
                TransportAead.ScrubThreadKeys();
            }
        }
        finally
        {
            TransportAead.ScrubThreadKeys();
            _udpAllocated += GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }

    /// <summary>The TUN reader's end when the interface is gone: say so once, tell the owner, and
    /// wait for the stop instead of returning into a read that would fail again at once.</summary>
    private void WaitAfterInterfaceGone(string why)
    {
        _log.LogWarning("interface {Name} is gone ({Why}): stopping", Name, why);
        _gone.Cancel();
        _stop.Wait();
    }

    /// <summary>Calls the engine's timers when they are due, and at least every 100 ms.</summary>
    private void TimerLoop()
    {
        var device = _device!;
        var clock = SystemClock.Instance;
        var nextHandshakeLog = clock.MonotonicNanos;
        while (!_stopping)
        {
            var now = clock.MonotonicNanos;
            var wait = device.NextDeadlineNanos - now;
            if (wait > 0)
            {
                var sleep = wait >= MaxTimerSleep.Ticks * 100 ? MaxTimerSleep : TimeSpan.FromTicks(Math.Max(1, wait / 100));
                if (_stop.Wait(sleep))
                    return;
            }
            device.Tick();
            now = clock.MonotonicNanos;
            if (now >= nextHandshakeLog)
            {
                nextHandshakeLog = now + HandshakeLogIntervalNanos;
                LogHandshakes(device);
            }
        }
    }

    /// <summary>Says when a peer completes a handshake (public key shortened, no secrets).</summary>
    private void LogHandshakes(TunnelDevice device)
    {
        if (!_log.IsEnabled(LogLevel.Information))
            return;
        Span<byte> publicKey = stackalloc byte[Constants.KeyLength];
        var peers = device.Peers;
        if (_handshakesLogged.Count > peers.Count)
            _handshakesLogged.Clear(); // peers were removed: forget them (a survivor may log once more)
        foreach (var peer in peers)
        {
            var when = peer.LastHandshakeTime;
            if (_handshakesLogged.TryGetValue(peer, out var logged) && logged == when)
                continue;
            _handshakesLogged[peer] = when;
            if (when is null)
                continue;
            peer.CopyPublicKey(publicKey);
            var text = Convert.ToBase64String(publicKey);
            _log.LogInformation("peer {Peer}: handshake completed, endpoint {Endpoint}",
                $"{text[..4]}...{text[^5..^1]}", peer.Endpoint?.ToString() ?? "none");
        }
    }

    /// <summary>
    /// Stops the UAPI, closes TUN (the kernel deletes the interface and its routes) and UDP, waits
    /// for the threads, then zeroes every session, the private key and every preshared key.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        _disposed = true;
        _stopping = true;
        if (_uapi is not null)
            await _uapi.DisposeAsync();
        _stop.Set();
        _fork?.Dispose(); // its source stops first: no fork may be handled while the engine is torn down
        _tun?.Dispose(); // wakes the reader
        _io?.Bind.Dispose(); // wakes the receiver
        foreach (var thread in _threads)
            thread.Join();
        if (_threads.Count > 0)
            _log.LogDebug("data path: tun-read {TunPackets} packets, {TunBytes} bytes allocated; udp-receive {UdpPackets} datagrams, {UdpBytes} bytes allocated; {TunReads} TUN reads, {UdpReads} UDP reads",
                _tunPackets, _tunAllocated, _udpDatagrams, _udpAllocated, _tunReads, _udpReads);
        if (_device is not null)
        {
            _device.ClearAllSessions();
            _device.SetPrivateKey(stackalloc byte[Constants.KeyLength]);
            _device.RemoveAllPeers();
            _device.Dispose();
        }
        _config.Dispose();
        _stop.Dispose();
        _log.LogInformation("stopped: socket and interface removed, keys zeroed");
    }
}

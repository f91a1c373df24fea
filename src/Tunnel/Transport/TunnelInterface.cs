using System.Net.Sockets;
using ForkNotify;
using Microsoft.Extensions.Logging;
using Tunnel.Config;
using Tunnel.Device;
using Tunnel.Uapi;

namespace Tunnel.Transport;

/// <summary>
/// One running interface: the TUN device, the UDP socket, the protocol engine between them, the
/// UAPI socket, and the threads that move packets (<see cref="DataPathThreads"/>). This type owns
/// the order: <see cref="Start"/> creates everything in an order that fails early and cleanly;
/// <see cref="DisposeAsync"/> undoes it in reverse and zeroes every key.
/// </summary>
public sealed class TunnelInterface : IAsyncDisposable
{
    private TunnelConfig? _config; // until its settings are applied, then zeroed
    private readonly string _requestedName;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly UapiServerOptions? _uapiOptions;
    private readonly ForkProtection? _fork;
    private readonly DataPathThreads _threads;
    private readonly CancellationTokenSource _gone = new();
    private DeviceUapi? _configuration;
    private LinuxTun? _tun;
    private InterfaceIo? _io;
    private TunnelDevice? _device;
    private UapiServer? _uapi;
    private TunReader? _tunReader;
    private UdpReceiver? _udpReceiver;
    private HandshakeWorker? _handshakeWorker;
    private CryptoWorkers? _cryptoWorkers;
    private OpenStage? _openStage;
    private bool _disposed;

    /// <summary>Peers in the file from which the start gives the parsed file's memory back at once.</summary>
    private const int CompactAfterPeers = 1000;

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
        _threads = new DataPathThreads(_log);
    }

    /// <summary>
    /// Threads that seal and open transport messages, the reading threads included (set before
    /// <see cref="Start"/>): 0, the default, is one per processor; 1 keeps all crypto on the TUN
    /// reader and the UDP receiver.
    /// </summary>
    public int CryptoWorkers { get; init; }

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
        var config = _config ?? throw new InvalidOperationException("already started");
        var settings = config.Interface;
        setup.SetMtu(settings.Mtu);
        foreach (var address in settings.Addresses)
            setup.AddAddress(address);
        setup.SetUp();
        InterfaceRoutes.Install(_tun.Name, config, _log);
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
        var uapi = _configuration = new DeviceUapi(_device, new BindUpdate(_io, _device, _log), _fork);
        _cryptoWorkers = new CryptoWorkers(CryptoWorkers, _log);
        _cryptoWorkers.Start();
        _log.LogInformation("{Workers} crypto worker(s)", _cryptoWorkers.Workers);
        _tunReader = new TunReader(_tun, _io, _device, _threads, OnInterfaceGone, _cryptoWorkers);
        _handshakeWorker = new HandshakeWorker(_device, new HandshakeQueue(), _threads, _log);
        _openStage = new OpenStage(_device, _cryptoWorkers, _io, _tun.HasVnetHeader ? new TcpCoalescer() : null);
        _udpReceiver = new UdpReceiver(_io, _device.ReceiveDatagram, coalescer: null, _threads, _log, _handshakeWorker, _openStage);
        _threads.Start(_tunReader.Run, "tun-read");
        _threads.Start(_udpReceiver.Run, "udp-receive");
        _threads.Start(_handshakeWorker.Run, "handshake");
        _threads.Start(new TimerThread(_device, new HandshakeLog(_log), _threads).Run, "timers");

        // The file goes in as one UAPI set: one code path for configuration, and its semantics
        // (persistent keepalive sends one at once) are wg setconf's.
        using (var request = ConfigSetRequest.Initial(config))
            uapi.ApplySet(request);
        _log.LogInformation("{Peers} peer(s) configured", config.Peers.Count);
        // The device holds what it needs now: zero the file's keys at once rather than at stop,
        // and give back the parsed file (for 100,000 peers some 100 MB a quiet daemon would
        // otherwise keep in its RSS). A config this big is loaded once; so is the pause.
        _config = null;
        config.Dispose();
        if (config.Peers.Count >= CompactAfterPeers)
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

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

    /// <summary>The TUN reader's end when the interface is gone: say so once, tell the owner, and
    /// wait for the stop instead of returning into a read that would fail again at once.</summary>
    private void OnInterfaceGone(string why)
    {
        _log.LogWarning("interface {Name} is gone ({Why}): stopping", Name, why);
        _gone.Cancel();
        _threads.Wait(Timeout.Infinite);
    }

    /// <summary>
    /// Stops the UAPI, closes TUN (the kernel deletes the interface and its routes) and UDP, waits
    /// for the threads, stops the fork protection, then zeroes every session, the private key and
    /// every preshared key.
    /// </summary>
    /// <remarks>
    /// The data threads end before the fork protection is disposed: the send path reads the pull
    /// counter on every packet, and disposing the source unmaps it (a VMClock page), so a thread
    /// still sending would fault on SIGTERM and the keys would never be zeroed. The fork source in
    /// turn stops before the engine is torn down, so no fork is handled against a half-cleared one.
    /// </remarks>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        _disposed = true;
        _threads.Stop();
        if (_uapi is not null)
            await _uapi.DisposeAsync();
        _tun?.Dispose(); // wakes the reader
        _io?.Bind.Dispose(); // wakes the receiver
        _handshakeWorker?.Queue.Close(); // wakes the handshake worker
        _threads.Join();
        _openStage?.Dispose(); // drained by its thread already; its buffers are freed
        _cryptoWorkers?.Dispose(); // after the threads that hand them work
        DisposeForkProtection();
        if (_threads.Started)
            _log.LogDebug("data path: tun-read {TunPackets} packets, {TunBytes} bytes allocated; udp-receive {UdpPackets} datagrams, {UdpBytes} bytes allocated; {TunReads} TUN reads, {UdpReads} UDP reads; {UdpFailures} datagrams failed",
                _tunReader!.Packets, _tunReader.Allocated, _udpReceiver!.Datagrams, _udpReceiver.Allocated,
                _tunReader.Reads, _udpReceiver.Reads, _udpReceiver.Failures);
        if (_handshakeWorker is { } handshakes)
            _log.LogDebug("handshakes: {Queued} queued, {Dropped} dropped (queue full), {Processed} processed, {Failures} failed",
                handshakes.Queue.Queued, handshakes.Queue.Dropped, handshakes.Processed, handshakes.Failures);
        if (_device is not null)
        {
            _device.ClearAllSessions();
            _device.SetPrivateKey(stackalloc byte[Tunnel.Crypto.PrivateKey.Size]);
            _device.RemoveAllPeers();
            _device.Dispose();
        }
        _config?.Dispose();
        _threads.Dispose();
        _log.LogInformation("stopped: socket and interface removed, keys zeroed");
    }

    /// <summary>A source that cannot stop is reported, and the keys are still zeroed after it.</summary>
    private void DisposeForkProtection()
    {
        try
        {
            _fork?.Dispose();
        }
        catch (Exception e)
        {
            _log.LogError(e, "fork protection did not stop cleanly");
        }
    }
}

using System.Net;
using System.Net.Sockets;
using ForkNotify;
using LinuxInterop;
using Microsoft.Extensions.Logging.Abstractions;
using TestSupport;
using Tunnel.Config;
using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Transport;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>
/// Two real interfaces (TUN, UDP, engine, threads) in a network namespace of the test's own, a
/// VMClock page file as the fork source of one, and traffic through them while it is torn down
/// (issue 14, point 4). Needs root (unshare, TUN).
/// </summary>
public sealed class TunnelInterfaceTeardownTests
{
    /// <summary>The VMClock source, counting the pull-counter reads made once its Dispose began.</summary>
    private sealed class WatchedVmClock(VmClockSource inner) : IForkSource, IGenerationCounter
    {
        private volatile bool _disposing;
        private long _reads;
        private long _readsAfterDispose;

        public long Reads => Interlocked.Read(ref _reads);
        public long ReadsAfterDispose => Interlocked.Read(ref _readsAfterDispose);
        public string Name => inner.Name;
        public ForkSourceAvailability Probe() => inner.Probe();
        public void Start(Action<ForkEvent> onFork) => inner.Start(onFork);

        public ulong Read()
        {
            Interlocked.Increment(ref _reads);
            // A data thread preempted mid-send, every time: the packet in hand when teardown
            // begins is still being sent when the source is disposed, unless teardown waits.
            Thread.Sleep(10);
            if (_disposing)
                Interlocked.Increment(ref _readsAfterDispose);
            return inner.Read();
        }

        public void Dispose()
        {
            _disposing = true;
            inner.Dispose(); // unmaps the page
        }
    }

    [Fact]
    public void Teardown_under_traffic_stops_the_data_threads_before_the_vmclock_page_is_unmapped()
    {
        if (!LibC.IsRoot)
            Assert.Skip("needs root: a private network namespace and TUN devices — SKIPPED");
        Exception? failure = null;
        // A thread of its own: unshare(CLONE_NEWNET) moves only the calling thread (and what it
        // starts: the interfaces' threads, the ip processes), and the namespace goes with it.
        var thread = new Thread(() =>
        {
            try
            {
                RunInPrivateNamespace();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
            throw new Xunit.Sdk.XunitException($"in the private namespace: {failure}");
    }

    private static void RunInPrivateNamespace()
    {
        if (LibC.Unshare(LibC.CLONE_NEWNET) != 0)
            throw new InvalidOperationException($"unshare: {LibC.Describe(LibC.LastError)}");
        new InterfaceSetup("lo").SetUp();
        var dir = Directory.CreateTempSubdirectory("tunnel-teardown-").FullName;
        try
        {
            var (privateA, publicA) = Keys();
            var (privateB, publicB) = Keys();
            var uapi = new UapiServerOptions { SocketDirectory = dir };
            var parser = new ConfigParser();
            // B answers and has no address: what it decrypts goes nowhere.
            var b = new TunnelInterface(parser.Parse($"""
                [Interface]
                PrivateKey = {privateB}
                [Peer]
                PublicKey = {publicA}
                AllowedIPs = 10.200.0.1/32
                """, "b.conf"), "ttb" + Suffix(), NullLoggerFactory.Instance, uapi);
            try
            {
                b.Start();
                using var page = new VmClockPageFile(Path.Combine(dir, "vmclock0"), VmClockAbi.FlagVmGenCounterPresent, 5);
                var source = new WatchedVmClock(new VmClockSource(page.Path));
                Assert.True(source.Probe().IsAvailable);
                var fork = new ForkProtection(new ForkKernel(), ForkGuardMode.Both, ForkSourceKind.VmClock, source, source);
                var a = new TunnelInterface(parser.Parse($"""
                    [Interface]
                    PrivateKey = {privateA}
                    Address = 10.200.0.1/24
                    [Peer]
                    PublicKey = {publicB}
                    AllowedIPs = 10.200.0.2/32
                    Endpoint = 127.0.0.1:{b.ListenPort}
                    """, "a.conf"), "tta" + Suffix(), NullLoggerFactory.Instance, uapi, fork);
                using var flood = new Flood(new IPEndPoint(IPAddress.Parse("10.200.0.2"), 9));
                try
                {
                    a.Start();
                    flood.Start();
                    var peer = a.Device.Peers.Single();
                    Assert.True(Until(() => peer.LastHandshakeTime is not null), "no handshake");
                    var before = source.Reads;
                    Assert.True(Until(() => source.Reads > before + 20), "no traffic through the tunnel");
                }
                finally
                {
                    // Torn down while the flood still runs: the send path is busy the whole time.
                    a.DisposeAsync().AsTask().GetAwaiter().GetResult();
                }
                Assert.Equal(0, source.ReadsAfterDispose);
            }
            finally
            {
                b.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>UDP datagrams into the tunnel as fast as one thread sends them, until disposed.</summary>
    private sealed class Flood(IPEndPoint to) : IDisposable
    {
        // Created here, on the namespace's thread: a socket belongs to its creator's namespace.
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        private volatile bool _stop;
        private Thread? _sender;

        public void Start()
        {
            _sender = new Thread(() =>
            {
                var payload = new byte[1000];
                while (!_stop)
                {
                    try
                    {
                        _socket.SendTo(payload, to);
                    }
                    catch (SocketException)
                    {
                        // ENOBUFS, or the route gone with the interface: keep pushing.
                    }
                }
            }) { IsBackground = true };
            _sender.Start();
        }

        public void Dispose()
        {
            _stop = true;
            _sender?.Join();
            _socket.Dispose();
        }
    }

    private static (string Private, string Public) Keys()
    {
        var bytes = new byte[32];
        OsRandomGenerator.Instance.Fill(bytes);
        using var key = PrivateKey.Import(bytes);
        return (Convert.ToBase64String(bytes), Convert.ToBase64String(key.PublicKey.Bytes));
    }

    private static string Suffix() => Guid.NewGuid().ToString("N")[..8];

    private static bool Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20); // a liveness bound, not a speed check
        while (DateTime.UtcNow < deadline && !condition())
            Thread.Sleep(10);
        return condition();
    }
}

using System.Net.Sockets;
using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// Idle UAPI connections must not lock wg out: a connection that sends no complete line is cut
/// after about a second, and at the connection cap the oldest idle one makes room for a new client.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class UapiIdleConnectionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-idle-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WgShowWorksEveryTimeBesideAThousandIdleConnections()
    {
        RootCollection.RequireRootAnd("ip", "wg");
        using var ns = NetNs.Create("tdi");
        var name = NetNs.UniqueInterfaceName("ti");
        var keys = KeyPair.Create();
        var daemon = StartTunneld(ns, _dir, name, $"[Interface]\nPrivateKey = {keys.Private}\nListenPort = 51820\n");
        var endpoint = new UnixDomainSocketEndPoint(SocketPath(name));
        var idle = new List<Socket>();
        try
        {
            for (var i = 0; i < 1000; i++)
                idle.Add(Connect(endpoint));
            // More keep arriving while wg works, well past the cap of 1024: the cap must evict idle
            // connections rather than refuse wg's.
            for (var round = 0; round < 20; round++)
            {
                var show = ns.Run("wg", "show", name);
                Assert.True(show.ExitCode == 0, $"wg show failed in round {round} beside {idle.Count} idle connections: {show}");
                Assert.Contains("listening port: 51820", show.Output);
                for (var i = 0; i < 60; i++)
                    idle.Add(Connect(endpoint));
            }
            Assert.True(idle.Count > 2000);

            // A connection that never sends a line is closed by the server (about 1 s; loose bound).
            var last = idle[^1];
            last.ReceiveTimeout = 15_000;
            Assert.Equal(0, last.Receive(new byte[16]));
            Assert.False(daemon.HasExited, daemon.Output);
        }
        finally
        {
            foreach (var socket in idle)
                socket.Dispose();
        }
    }

    private static Socket Connect(UnixDomainSocketEndPoint endpoint)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(endpoint);
        return socket;
    }
}

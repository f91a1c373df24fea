using System.Net;
using System.Net.Sockets;
using System.Text;
using Tunnel.Uapi;

using Xunit;

namespace Tunnel.Tests.Uapi;

/// <summary>The server over a real Unix socket in a private directory (no root needed).</summary>
public sealed class UapiServerTests : IAsyncLifetime
{
    private const string HexA = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
    private const string HexB = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "uapi-test-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly InMemoryUapiDevice _device = new();
    private UapiServer _server = null!;

    private UapiServerOptions Options(TimeSpan? timeout = null) => new()
    {
        SocketDirectory = Path.Combine(_dir, "wireguard"),
        MaxLineLength = 256,
        MaxRequestBytes = 4096,
        RequestTimeout = timeout ?? TimeSpan.FromSeconds(10),
    };

    public ValueTask InitializeAsync()
    {
        _server = new UapiServer("utest0", _device, Options());
        _server.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private Socket Connect(string? path = null)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(path ?? _server.SocketPath));
        return s;
    }

    /// <summary>Reads one reply (up to and including the blank line), or what came before EOF.</summary>
    private static async Task<string> ReadReplyAsync(Socket s)
    {
        var text = new StringBuilder();
        var buffer = new byte[1];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!text.ToString().EndsWith("\n\n"))
        {
            var n = await s.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            if (n == 0)
                break;
            text.Append((char)buffer[0]);
        }
        return text.ToString();
    }

    private async Task<string> RequestAsync(string request)
    {
        using var s = Connect();
        await s.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None);
        return await ReadReplyAsync(s);
    }

    [Fact]
    public void SocketIsPrivateAndDirectoryPublic()
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            File.GetUnixFileMode(_server.SocketPath));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(Path.GetDirectoryName(_server.SocketPath)!));
    }

    [Fact]
    public async Task GetOfEmptyDevice()
    {
        Assert.Equal("errno=0\n\n", await RequestAsync("get=1\n\n"));
    }

    [Fact]
    public async Task SetThenGetOnOneConnection()
    {
        using var s = Connect();
        await s.SendAsync(Encoding.ASCII.GetBytes(
            $"set=1\nprivate_key={HexA}\nlisten_port=51820\npublic_key={HexB}\nendpoint=[fd00::2]:51821\nallowed_ip=10.0.0.2/32\n\n"));
        Assert.Equal("errno=0\n\n", await ReadReplyAsync(s));
        await s.SendAsync(Encoding.ASCII.GetBytes("get=1\n\n"));
        Assert.Equal(
            $"private_key={HexA}\nlisten_port=51820\npublic_key={HexB}\n" +
            "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n" +
            "protocol_version=1\nendpoint=[fd00::2]:51821\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n" +
            "tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=10.0.0.2/32\nerrno=0\n\n",
            await ReadReplyAsync(s));
    }

    [Fact]
    public async Task BadLineAnywhereChangesNothing()
    {
        var reply = await RequestAsync(
            $"set=1\nlisten_port=1234\npublic_key={HexB}\nallowed_ip=10.0.0.2/32\nfwmark=0x1234\n\n");
        Assert.Equal("errno=-22\n\n", reply);
        Assert.Equal(0, _device.ApplyCount);
        Assert.Equal(0, _device.ListenPort);
        Assert.Empty(_device.Peers);
    }

    [Fact]
    public async Task ConnectionSurvivesABadSet()
    {
        using var s = Connect();
        await s.SendAsync(Encoding.ASCII.GetBytes("set=1\nfwmark=x\n\n"));
        Assert.Equal("errno=-22\n\n", await ReadReplyAsync(s));
        await s.SendAsync(Encoding.ASCII.GetBytes("set=1\nfwmark=4660\n\n"));
        Assert.Equal("errno=0\n\n", await ReadReplyAsync(s));
        Assert.Equal(4660u, _device.FwMark);
    }

    [Fact]
    public async Task MissingEqualsIsInvalidLikeAnyBadLine()
    {
        Assert.Equal("errno=-22\n\n", await RequestAsync("set=1\ngarbage\n\n"));
    }

    [Fact]
    public async Task DeviceErrorIsReported()
    {
        _device.ApplyResult = UapiErrno.PortInUse;
        Assert.Equal("errno=-98\n\n", await RequestAsync("set=1\nlisten_port=1\n\n"));
    }

    [Theory]
    [InlineData("bogus=1\n\n")]
    [InlineData("GET=1\n\n")]
    [InlineData("get=2\n\n")]
    [InlineData("\n")]
    public async Task UnknownOperationGetsNoReplyAndClose(string request)
    {
        Assert.Equal("", await RequestAsync(request));
    }

    [Fact]
    public async Task GetWithTrailingGarbageIsInvalid()
    {
        Assert.Equal("errno=-22\n\n", await RequestAsync("get=1\nx\n"));
    }

    [Fact]
    public async Task HugeLineIsRefusedAndClosed()
    {
        using var s = Connect();
        var line = "set=1\nfwmark=" + new string('1', 10_000) + "\n\n";
        await s.SendAsync(Encoding.ASCII.GetBytes(line));
        Assert.Equal("errno=-22\n\n", await ReadReplyAsync(s));
        Assert.Equal("", await ReadReplyAsync(s)); // closed
        Assert.Equal(0, _device.ApplyCount);
    }

    [Fact]
    public async Task HugeRequestIsRefused()
    {
        var request = new StringBuilder($"set=1\npublic_key={HexB}\n");
        for (var i = 0; i < 300; i++)
            request.Append($"allowed_ip=10.0.{i / 256}.{i % 256}/32\n");
        request.Append('\n');
        Assert.Equal("errno=-22\n\n", await RequestAsync(request.ToString()));
        Assert.Equal(0, _device.ApplyCount);
    }

    [Fact]
    public async Task NonAsciiIsRefused()
    {
        Assert.Equal("errno=-22\n\n", await RequestAsync("set=1\nfwmark=1\u00e9\n\n"));
    }

    [Fact]
    public async Task UnfinishedSetIsNotApplied()
    {
        using (var s = Connect())
        {
            await s.SendAsync(Encoding.ASCII.GetBytes("set=1\nfwmark=7\n"));
            s.Shutdown(SocketShutdown.Send);
            Assert.Equal("", await ReadReplyAsync(s));
        }
        Assert.Equal(0, _device.ApplyCount);
    }

    [Fact]
    public async Task SlowClientIsCutOff()
    {
        await using var server = new UapiServer("utest1", new InMemoryUapiDevice(), Options(TimeSpan.FromMilliseconds(300)));
        server.Start();
        using var s = Connect(server.SocketPath);
        await s.SendAsync(Encoding.ASCII.GetBytes("set=1\nfwm"));
        // No reply and a close, well before the test's own 20 s guard.
        Assert.Equal("", await ReadReplyAsync(s));
    }

    [Fact]
    public async Task LiveSocketIsNotTakenOver()
    {
        var second = new UapiServer("utest0", new InMemoryUapiDevice(), Options());
        var e = Assert.Throws<UapiServerException>(second.Start);
        Assert.Contains("in use", e.Message);
        await second.DisposeAsync();
        Assert.Equal("errno=0\n\n", await RequestAsync("get=1\n\n")); // the first still serves
    }

    [Fact]
    public async Task StaleSocketIsReplaced()
    {
        var path = Path.Combine(_dir, "wireguard", "utest2.sock");
        // A socket file left by a process that died (.NET would delete its own on Dispose).
        using (var python = System.Diagnostics.Process.Start("python3",
                   ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path]))
            await python.WaitForExitAsync();
        Assert.True(File.Exists(path));
        await using var server = new UapiServer("utest2", new InMemoryUapiDevice(), Options());
        server.Start();
        using var s = Connect(path);
        await s.SendAsync(Encoding.ASCII.GetBytes("get=1\n\n"));
        Assert.Equal("errno=0\n\n", await ReadReplyAsync(s));
    }

    [Fact]
    public async Task DisposeRemovesTheSocket()
    {
        var server = new UapiServer("utest3", new InMemoryUapiDevice(), Options());
        server.Start();
        Assert.True(File.Exists(server.SocketPath));
        using var idle = Connect(server.SocketPath);
        await server.DisposeAsync();
        Assert.False(File.Exists(server.SocketPath));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("sixteen-chars-xx")]
    [InlineData("has space")]
    [InlineData("caf\u00e9")]
    [InlineData("a:b")]
    public void BadInterfaceNamesAreRefused(string name) =>
        Assert.Throws<ArgumentException>(() => new UapiServer(name, _device, Options()));

    [Fact]
    public async Task ManyConcurrentClients()
    {
        var tasks = Enumerable.Range(0, 20).Select(i => RequestAsync($"set=1\npublic_key={i:x64}\nallowed_ip=10.9.0.{i}/32\n\n"));
        Assert.All(await Task.WhenAll(tasks), r => Assert.Equal("errno=0\n\n", r));
        Assert.Equal(20, _device.Peers.Count);
        Assert.Equal(IPNetwork.Parse("10.9.0.5/32"), _device.Peers.Single(p => p.PublicKey[31] == 5).AllowedIps.Single());
    }
}

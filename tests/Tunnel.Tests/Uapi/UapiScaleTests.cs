using System.Net.Sockets;
using System.Text;
using Tunnel.Device;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Uapi;

/// <summary>
/// Issue 12: a set of 50,000 peers (about 6 MB, past the old 4 MiB cap) goes through the real
/// server over its Unix socket into a real engine and applies whole; the same size of set with one
/// bad line near its end changes nothing at all. The default server options are used, as tunneld
/// uses them.
/// </summary>
public sealed class UapiScaleTests : IAsyncLifetime
{
    private const int Count = 50_000;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "uapi-scale-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly TunnelDevice _device = new(new DeviceOptions { Clock = new VirtualClock() }, new Device.Engine.RecordingIo());
    private UapiServer _server = null!;

    public ValueTask InitializeAsync()
    {
        _server = new UapiServer("uscale0", new DeviceUapi(_device), new UapiServerOptions { SocketDirectory = Path.Combine(_dir, "wireguard") });
        _server.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _device.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_set_of_50000_peers_applies_whole_and_one_bad_line_changes_nothing()
    {
        string first = Request(firstPeer: 0, badLineAt: -1);
        Assert.True(first.Length > 4 << 20);
        Assert.Equal("errno=0\n\n", await SendAsync(first));
        AssertPeers(0);

        // Another 50,000 peers, the 49,990th of them with a malformed allowed IP: refused whole.
        Assert.Equal("errno=-22\n\n", await SendAsync(Request(firstPeer: Count, badLineAt: Count - 10)));
        AssertPeers(0);

        // The server still serves the connection's next client, and a get lists every peer.
        byte[] psk = Enumerable.Range(1, 32).Select(b => (byte)b).ToArray();
        _device.FindPeer(Convert.FromHexString(Key(Count / 2)))!.SetPresharedKey(psk);
        string get = await SendAsync("get=1\n\n");
        Assert.EndsWith("errno=0\n\n", get);
        Assert.Equal(Count, get.Split('\n').Count(line => line.StartsWith("public_key=", StringComparison.Ordinal)));
        Assert.Contains($"public_key={Key(Count / 2)}\npreshared_key={Convert.ToHexStringLower(psk)}\n", get);
        Assert.Equal(Count - 1, get.Split('\n').Count(line => line == "preshared_key=" + new string('0', 64)));

        // Sent in pieces as it is formatted (some 15 MB here), the reply is byte for byte the
        // device's state formatted whole.
        using UapiDeviceState state = new DeviceUapi(_device).GetState();
        using var whole = new UapiReplyBuffer();
        UapiGetWriter.Write(state, whole);
        Assert.True(whole.Length > 1 << 20);
        Assert.Equal(whole + "errno=0\n\n", get);
    }

    [Fact]
    public async Task A_get_its_client_never_reads_is_cut_off_and_sets_go_on()
    {
        // A get's reply (some 6 MB here) is sent piece by piece after the snapshot, with no lock
        // held: a client that asks and never reads holds back no set, even one whose own deadline
        // (1 s) is shorter than the stalled get's. (Writing the pieces from the live device under
        // the UAPI lock, with blocking sends, failed this: the set timed out behind the get.)
        for (int i = 0; i < 20_000; i++)
            _device.AddPeer(Convert.FromHexString(Key(i)));
        await using var server = new UapiServer("uscale1", new DeviceUapi(_device), new UapiServerOptions
        {
            SocketDirectory = Path.Combine(_dir, "wireguard"),
            RequestTimeout = TimeSpan.FromSeconds(1),
        });
        server.Start();
        using var stalled = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await stalled.ConnectAsync(new UnixDomainSocketEndPoint(server.SocketPath));
        stalled.ReceiveBufferSize = 4096;
        await stalled.SendAsync(Encoding.ASCII.GetBytes("get=1\n\n"), SocketFlags.None);
        await Task.Delay(200); // the get has started and filled the socket

        using var other = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await other.ConnectAsync(new UnixDomainSocketEndPoint(server.SocketPath));
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // liveness, not a timing
        Task<string> reply = ReadReplyAsync(other, guard.Token);
        await other.SendAsync(Encoding.ASCII.GetBytes("set=1\nfwmark=7\n\n"), SocketFlags.None, guard.Token);
        Assert.Equal("errno=0\n\n", await reply);
        Assert.Equal(7u, _device.Fwmark);
    }

    private void AssertPeers(int firstPeer)
    {
        Assert.Equal(Count, _device.Peers.Count);
        Assert.Equal(Count, _device.AllowedIps.Count);
        int i = firstPeer;
        foreach (Peer peer in _device.Peers)
        {
            Assert.Equal(Key(i), Convert.ToHexStringLower(peer.PublicKey.Bytes));
            i++;
        }
        Assert.Same(_device.FindPeer(Convert.FromHexString(Key(Count - 1))), _device.AllowedIps.Lookup(Address(Count - 1)));
    }

    private async Task<string> SendAsync(string request)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(_server.SocketPath));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        Task<string> reply = ReadReplyAsync(socket, timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, timeout.Token);
        return await reply;
    }

    private static async Task<string> ReadReplyAsync(Socket socket, CancellationToken cancel)
    {
        var text = new StringBuilder();
        var buffer = new byte[64 * 1024];
        while (text.Length < 2 || text[^1] != '\n' || text[^2] != '\n')
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel);
            if (n == 0)
                break;
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        return text.ToString();
    }

    /// <summary>A set as wg setconf writes it: replace_peers, then for each peer its key,
    /// replace_allowed_ips, one /32 and a keepalive; line <paramref name="badLineAt"/>'s allowed IP is malformed.</summary>
    private static string Request(int firstPeer, int badLineAt)
    {
        var text = new StringBuilder("set=1\nprivate_key=").Append(new string('1', 64)).Append("\nreplace_peers=true\n");
        for (int i = 0; i < Count; i++)
        {
            int peer = firstPeer + i;
            byte[] address = Address(peer);
            text.Append("public_key=").Append(Key(peer)).Append("\nreplace_allowed_ips=true\nallowed_ip=")
                .Append(i == badLineAt ? "10.0.0.256" : $"{address[0]}.{address[1]}.{address[2]}.{address[3]}")
                .Append("/32\npersistent_keepalive_interval=0\n");
        }
        return text.Append('\n').ToString();
    }

    private static string Key(int peer) => $"{peer + 1:x8}".PadLeft(64, 'e');

    private static byte[] Address(int peer) => [10, (byte)(peer >> 16), (byte)(peer >> 8), (byte)peer];
}

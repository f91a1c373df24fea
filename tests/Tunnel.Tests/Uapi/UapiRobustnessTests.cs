using System.Net.Sockets;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Uapi;

/// <summary>Untrusted input: the parser never throws, the server never dies.</summary>
public sealed class UapiRobustnessTests
{
    private static readonly string[] Keys =
    [
        "private_key", "listen_port", "fwmark", "replace_peers", "public_key", "update_only", "remove",
        "preshared_key", "endpoint", "persistent_keepalive_interval", "replace_allowed_ips", "allowed_ip",
        "protocol_version", "x", "",
    ];

    [Fact]
    public void ParserNeverThrowsAndFailsOnlyWithAKnownErrno()
    {
        var line = Gen.OneOf(
            ArbMap.Default.GeneratorFor<string>().Select(s => s ?? ""),
            Gen.Elements(Keys).SelectMany(k => ArbMap.Default.GeneratorFor<string>().Select(v => $"{k}={v}")));
        Prop.ForAll(line.ArrayOf().ToArbitrary(), lines =>
        {
            var parser = new UapiSetParser();
            foreach (var l in lines)
                parser.Line(l);
            return parser.Errno is UapiErrno.Ok or UapiErrno.Invalid;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public async Task ServerSurvivesGarbage()
    {
        var dir = Path.Combine(Path.GetTempPath(), "uapi-garbage-" + Guid.NewGuid().ToString("N")[..8]);
        var device = new InMemoryUapiDevice();
        var options = new UapiServerOptions
        {
            SocketDirectory = dir,
            RequestTimeout = TimeSpan.FromSeconds(2),
        };
        try
        {
            await using var server = new UapiServer("ugarb0", device, options);
            server.Start();
            var random = new Random(1234);
            for (var i = 0; i < 60; i++)
            {
                var garbage = new byte[random.Next(1, 3000)];
                random.NextBytes(garbage);
                if (i % 3 == 0)
                    Encoding.ASCII.GetBytes("set=1\n").CopyTo(garbage, 0);
                using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new UnixDomainSocketEndPoint(server.SocketPath));
                try
                {
                    s.Send(garbage);
                    s.Shutdown(SocketShutdown.Send);
                    var sink = new byte[4096];
                    while (s.Receive(sink) > 0)
                    {
                    }
                }
                catch (SocketException)
                {
                    // The server may cut us off mid-send: that is allowed.
                }
            }
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            probe.Connect(new UnixDomainSocketEndPoint(server.SocketPath));
            probe.Send("get=1\n\n"u8);
            var reply = new byte[64];
            var n = probe.Receive(reply);
            Assert.Equal("errno=0\n\n", Encoding.ASCII.GetString(reply, 0, n));
            Assert.Equal(0, device.ApplyCount);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

using System.Net.Sockets;

namespace Tunnel.Uapi;

/// <summary>Where the UAPI socket lives and how much a client may ask of the server.</summary>
public sealed class UapiServerOptions
{
    /// <summary>wg(8) looks here (<c>/var/run/wireguard</c>); tests of the server alone may use a
    /// private directory.</summary>
    public string SocketDirectory { get; init; } = "/var/run/wireguard";

    /// <summary>Longest accepted line. The longest legal line is an endpoint with a full IPv6
    /// address and zone (well under 128 bytes); 1024 leaves room and still bounds memory.</summary>
    public int MaxLineLength { get; init; } = 1024;

    /// <summary>
    /// Largest set request in bytes. 64 MiB takes <c>wg setconf</c> of some 200,000 peers with a
    /// preshared key, an endpoint, a keepalive and two allowed IPs each (about 300 bytes a peer;
    /// 100,000 such peers are 30 MB). The request is validated whole before anything is applied,
    /// so it is held parsed until then: about 1.5 times its size (see docs/BENCHMARKS.md, issue 12).
    /// </summary>
    public long MaxRequestBytes { get; init; } = 64 << 20;

    /// <summary>Each line must be complete this soon after the server starts waiting for it (the
    /// first one counts from the connect). A client that connects and says nothing, or trickles,
    /// is cut off after about this long; wg sends its whole request at once.</summary>
    public TimeSpan LineTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A request must arrive in full within this time after the previous one finished
    /// (or the connection opened), however its lines are paced, plus <see cref="RequestTimePerMiB"/>
    /// for each MiB it has sent; so must its reply be taken once the request is applied.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How much longer a request may take for each MiB received: a set of 100,000 peers is tens of
    /// MiB that wg writes at once but the server parses line by line, and on a loaded machine that
    /// can take longer than <see cref="RequestTimeout"/>. A client that trickles earns almost
    /// nothing (a line a second is a few hundred bytes a second), so the slow-client bound stays.
    /// </summary>
    public TimeSpan RequestTimePerMiB { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Connections served at once. At the cap, a new client makes the server close the
    /// connection idle longest (no request in progress), so idle connections can never lock wg
    /// out; only when every connection is mid-request is the new one closed. Each costs about
    /// 3 KiB (line buffers) and a socket.</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>A socket already bound to the socket path and listening (made by
    /// <see cref="UapiServer.Listen"/> in a parent process and inherited); null: the server makes
    /// its own. The server owns it from <see cref="UapiServer.Start"/> on.</summary>
    public Socket? Listener { get; init; }
}

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

    /// <summary>Largest set request in bytes (about 100 000 allowed IPs).</summary>
    public long MaxRequestBytes { get; init; } = 4 << 20;

    /// <summary>A request must arrive in full within this time after the previous one finished
    /// (or the connection opened); a silent or trickling client is cut off.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections served at once; more are closed on accept.</summary>
    public int MaxConnections { get; init; } = 32;

    /// <summary>A socket already bound to the socket path and listening (made by
    /// <see cref="UapiServer.Listen"/> in a parent process and inherited); null: the server makes
    /// its own. The server owns it from <see cref="UapiServer.Start"/> on.</summary>
    public Socket? Listener { get; init; }
}

using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.Uapi;

/// <summary>
/// Formats a <see cref="UapiDeviceState"/> as the body of a <c>get=1</c> reply, line for line as
/// wireguard-go's <c>IpcGetOperation</c> writes it (the server appends <c>errno=0</c> and the
/// blank line).
/// </summary>
public static class UapiGetWriter
{
    /// <summary>Keys that wg(8) parses in a get reply (wireguard-tools ipc-uapi.h), plus the ones
    /// this UAPI uses in a set: an extra key must be none of them, or wg would misread it.</summary>
    private static readonly HashSet<string> ReservedKeys =
    [
        "private_key", "listen_port", "fwmark", "public_key", "preshared_key", "endpoint",
        "persistent_keepalive_interval", "allowed_ip", "last_handshake_time_sec",
        "last_handshake_time_nsec", "rx_bytes", "tx_bytes", "errno", "protocol_version",
        "replace_peers", "update_only", "remove", "replace_allowed_ips", "get", "set",
    ];

    /// <summary>
    /// An extra device-level key is lowercase letters, digits and '_' (wg needs <c>key=value</c>
    /// with no '=' in the key) and not a key wg understands; its value must not hold a newline.
    /// </summary>
    public static bool IsValidExtraKey(string key, string value)
    {
        if (key.Length is 0 or > 64 || ReservedKeys.Contains(key))
            return false;
        foreach (var c in key)
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
                return false;
        return !value.Contains('\n') && !value.Contains('\0');
    }

    public static void Write(UapiDeviceState state, UapiReplyBuffer output)
    {
        WriteDevice(state, output);
        foreach (var peer in state.Peers)
            WritePeer(peer, output);
    }

    /// <summary>The device's lines (everything before the first peer).</summary>
    public static void WriteDevice(UapiDeviceState state, UapiReplyBuffer output)
    {
        if (state.PrivateKey is { } privateKey && privateKey.AsSpan().ContainsAnyExcept((byte)0))
            Key(output, "private_key", privateKey);
        if (state.ListenPort != 0)
            Line(output, "listen_port", state.ListenPort.ToString(CultureInfo.InvariantCulture));
        if (state.FwMark != 0)
            Line(output, "fwmark", state.FwMark.ToString(CultureInfo.InvariantCulture));
        foreach (var (key, value) in state.ExtraKeys)
        {
            if (!IsValidExtraKey(key, value))
                throw new ArgumentException($"extra UAPI key '{key}' is reserved or malformed");
            Line(output, key, value);
        }
    }

    /// <summary>One peer's lines.</summary>
    public static void WritePeer(UapiPeerState peer, UapiReplyBuffer output)
    {
        Key(output, "public_key", peer.PublicKey);
        if (peer.PresharedKey is { } presharedKey)
            Key(output, "preshared_key", presharedKey);
        else
            output.Append("preshared_key=").Append(NoPresharedKeyHex).Append('\n');
        Line(output, "protocol_version", "1");
        if (peer.Endpoint is { } endpoint)
            Line(output, "endpoint", FormatEndpoint(endpoint));
        var seconds = peer.LastHandshakeUnixNanos / 1_000_000_000;
        var nanos = peer.LastHandshakeUnixNanos % 1_000_000_000;
        Line(output, "last_handshake_time_sec", seconds.ToString(CultureInfo.InvariantCulture));
        Line(output, "last_handshake_time_nsec", nanos.ToString(CultureInfo.InvariantCulture));
        Line(output, "tx_bytes", peer.TxBytes.ToString(CultureInfo.InvariantCulture));
        Line(output, "rx_bytes", peer.RxBytes.ToString(CultureInfo.InvariantCulture));
        Line(output, "persistent_keepalive_interval",
            peer.PersistentKeepaliveInterval.ToString(CultureInfo.InvariantCulture));
        foreach (var prefix in peer.AllowedIps)
            Line(output, "allowed_ip", prefix.ToString());
    }

    // "No preshared key" as wireguard-go writes it: 64 zeros.
    private static readonly string NoPresharedKeyHex = new('0', HexKey.KeyLength * 2);

    /// <summary>Go's netip.AddrPort form: <c>1.2.3.4:5</c>, <c>[::1]:5</c>; an IPv4-mapped IPv6
    /// address (what a dual-stack socket reports) is shown as plain IPv4.</summary>
    public static string FormatEndpoint(IPEndPoint endpoint)
    {
        var address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
        var port = endpoint.Port.ToString(CultureInfo.InvariantCulture);
        return address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";
    }

    private static void Key(UapiReplyBuffer output, string key, byte[] value)
    {
        Span<char> hex = stackalloc char[HexKey.KeyLength * 2];
        HexKey.Encode(value, hex);
        output.Append(key).Append('=').Append(hex).Append('\n');
        hex.Clear();
    }

    private static void Line(UapiReplyBuffer output, string key, string value) =>
        output.Append(key).Append('=').Append(value).Append('\n');
}

using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Tunnel.Config;

namespace Tunnel.Uapi;

/// <summary>
/// Turns the lines of one <c>set=1</c> request into a <see cref="UapiSetRequest"/>. Feed every line
/// up to (not including) the blank one with <see cref="Line"/>; after the first bad line the rest
/// are only consumed, and <see cref="Errno"/> says why. Keys, values and errno codes follow
/// wireguard-go's <c>IpcSetOperation</c>, with three deliberate differences: nothing is applied while
/// parsing (so a bad line changes nothing at all), an endpoint with port 0 is refused, and a line
/// without '=' answers -EINVAL like every other bad line (wireguard-go says -EPROTO; the issue asks
/// for one code for any bad line).
/// </summary>
public sealed class UapiSetParser
{
    private UapiPeerUpdate? _peer;

    public UapiSetRequest Request { get; } = new();

    /// <summary><see cref="UapiErrno.Ok"/>, or the errno of the first bad line.</summary>
    public int Errno { get; private set; }

    /// <summary>Why the request failed, for the log (never contains key material).</summary>
    public string? Problem { get; private set; }

    public void Line(ReadOnlySpan<char> line)
    {
        if (Errno != UapiErrno.Ok)
            return;
        var eq = line.IndexOf('=');
        if (eq < 0)
        {
            Fail(UapiErrno.Invalid, "line is not key=value");
            return;
        }
        var key = line[..eq];
        var value = line[(eq + 1)..];
        if (key.SequenceEqual("public_key"))
            PublicKey(value);
        else if (_peer is null)
            DeviceLine(key, value);
        else
            PeerLine(_peer, key, value);
    }

    private void PublicKey(ReadOnlySpan<char> value)
    {
        var key = new byte[HexKey.KeyLength];
        if (!HexKey.TryDecode(value, key))
        {
            Fail(UapiErrno.Invalid, "public_key is not 64 hex digits");
            return;
        }
        _peer = new UapiPeerUpdate(key);
        Request.Peers.Add(_peer);
    }

    private void DeviceLine(ReadOnlySpan<char> key, ReadOnlySpan<char> value)
    {
        switch (key)
        {
            case "private_key":
                var privateKey = new byte[HexKey.KeyLength];
                if (!HexKey.TryDecode(value, privateKey))
                {
                    Fail(UapiErrno.Invalid, "private_key is not 64 hex digits");
                    return;
                }
                // A key given twice in one request: the first copy is zeroed, not left to the GC.
                if (Request.PrivateKey is { } earlier)
                    System.Security.Cryptography.CryptographicOperations.ZeroMemory(earlier);
                Request.PrivateKey = privateKey;
                break;
            case "listen_port":
                if (TryNumber(value, ushort.MaxValue, out var port))
                    Request.ListenPort = (ushort)port;
                else
                    Fail(UapiErrno.Invalid, "listen_port is not a number from 0 to 65535");
                break;
            case "fwmark":
                if (TryNumber(value, uint.MaxValue, out var mark))
                    Request.FwMark = (uint)mark;
                else
                    Fail(UapiErrno.Invalid, "fwmark is not a decimal number from 0 to 4294967295");
                break;
            case "replace_peers":
                if (value.SequenceEqual("true"))
                    Request.ReplacePeers = true;
                else
                    Fail(UapiErrno.Invalid, "replace_peers must be true");
                break;
            default:
                Fail(UapiErrno.Invalid, $"invalid device key '{Printable(key)}'");
                break;
        }
    }

    private void PeerLine(UapiPeerUpdate peer, ReadOnlySpan<char> key, ReadOnlySpan<char> value)
    {
        switch (key)
        {
            case "update_only":
                if (value.SequenceEqual("true"))
                    peer.UpdateOnly = true;
                else
                    Fail(UapiErrno.Invalid, "update_only must be true");
                break;
            case "remove":
                if (value.SequenceEqual("true"))
                    peer.Remove = true;
                else
                    Fail(UapiErrno.Invalid, "remove must be true");
                break;
            case "preshared_key":
                var psk = new byte[HexKey.KeyLength];
                if (!HexKey.TryDecode(value, psk))
                {
                    Fail(UapiErrno.Invalid, "preshared_key is not 64 hex digits");
                    return;
                }
                if (peer.PresharedKey is { } earlierPsk)
                    System.Security.Cryptography.CryptographicOperations.ZeroMemory(earlierPsk);
                peer.PresharedKey = psk;
                break;
            case "endpoint":
                if (TryEndpoint(value, out var endpoint))
                    peer.Endpoint = endpoint;
                else
                    Fail(UapiErrno.Invalid, "endpoint is not IPv4:port or [IPv6]:port");
                break;
            case "persistent_keepalive_interval":
                if (TryNumber(value, ushort.MaxValue, out var interval))
                    peer.PersistentKeepaliveInterval = (ushort)interval;
                else
                    Fail(UapiErrno.Invalid, "persistent_keepalive_interval is not a number from 0 to 65535");
                break;
            case "replace_allowed_ips":
                if (value.SequenceEqual("true"))
                {
                    // Replacing drops whatever came before in this request too, as applying the
                    // lines in order on wireguard-go would.
                    peer.ReplaceAllowedIps = true;
                    peer.AllowedIps.Clear();
                }
                else
                {
                    Fail(UapiErrno.Invalid, "replace_allowed_ips must be true");
                }
                break;
            case "allowed_ip":
                var remove = value.StartsWith("-");
                if (remove)
                    value = value[1..];
                // Unlike a config file, the UAPI always writes the /cidr (netip.ParsePrefix needs it).
                if (value.Contains('/') && IpPrefix.TryParse(value, out var prefix))
                    peer.AllowedIps.Add(new UapiAllowedIpChange(prefix, remove));
                else
                    Fail(UapiErrno.Invalid, "allowed_ip is not an IP prefix");
                break;
            case "protocol_version":
                if (!value.SequenceEqual("1"))
                    Fail(UapiErrno.Invalid, "protocol_version must be 1");
                break;
            default:
                Fail(UapiErrno.Invalid, $"invalid peer key '{Printable(key)}'");
                break;
        }
    }

    /// <summary>Decimal digits only, like Go's strconv.ParseUint(value, 10, bits).</summary>
    private static bool TryNumber(ReadOnlySpan<char> value, ulong max, out ulong number)
    {
        number = 0;
        if (value.IsEmpty || value.Length > 20)
            return false;
        foreach (var c in value)
            if (!char.IsAsciiDigit(c))
                return false;
        return ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out number) && number <= max;
    }

    private static bool TryEndpoint(ReadOnlySpan<char> value, out IPEndPoint endpoint)
    {
        endpoint = null!;
        ReadOnlySpan<char> host, port;
        if (value.StartsWith("["))
        {
            var close = value.IndexOf(']');
            if (close < 0 || close + 1 >= value.Length || value[close + 1] != ':')
                return false;
            host = value[1..close];
            port = value[(close + 2)..];
            if (!host.Contains(':'))
                return false;
        }
        else
        {
            var colon = value.LastIndexOf(':');
            if (colon <= 0)
                return false;
            host = value[..colon];
            port = value[(colon + 1)..];
            if (host.Count('.') != 3 || host.Contains(':'))
                return false;
        }
        if (!IPAddress.TryParse(host, out var address) || !TryNumber(port, ushort.MaxValue, out var portNumber) ||
            portNumber == 0)
            return false;
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            return false;
        endpoint = new IPEndPoint(address, (int)portNumber);
        return true;
    }

    private void Fail(int errno, string problem)
    {
        Errno = errno;
        Problem = problem;
        _peer = null;
    }

    /// <summary>
    /// Keys come from an untrusted client and must not carry secrets into the log: a key is shown
    /// only when it looks like one (at most 32 lowercase letters and '_'), else only its length.
    /// (A line such as <c>preshared_key</c> followed by hex without the '=' would otherwise be
    /// logged with the key's digits.)
    /// </summary>
    private static string Printable(ReadOnlySpan<char> key)
    {
        if (key.Length is > 0 and <= 32)
        {
            var plain = true;
            foreach (var c in key)
                plain &= c is (>= 'a' and <= 'z') or '_';
            if (plain)
                return key.ToString();
        }
        return $"({key.Length} characters, not shown)";
    }
}

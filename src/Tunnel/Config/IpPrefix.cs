using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.Config;

/// <summary>
/// Parses <c>ADDRESS/CIDR</c> text the way wg does for allowed IPs: the host bits are masked off
/// (<c>10.0.0.7/24</c> means <c>10.0.0.0/24</c>). <see cref="IPNetwork"/> itself refuses host bits,
/// so the mask is applied here first. A missing <c>/CIDR</c> means a host route (/32 or /128).
/// </summary>
public static class IpPrefix
{
    public static bool TryParse(ReadOnlySpan<char> text, out IPNetwork prefix)
    {
        prefix = default;
        if (!TryParseAddress(text, out var address, out var length))
            return false;
        prefix = new IPNetwork(Mask(address, length), length);
        return true;
    }

    /// <summary>Parses <c>ADDRESS[/CIDR]</c> keeping the host bits (for interface addresses).</summary>
    public static bool TryParseAddress(ReadOnlySpan<char> text, out IPAddress address, out int prefixLength)
    {
        address = IPAddress.None;
        prefixLength = 0;
        var slash = text.IndexOf('/');
        var addressText = slash < 0 ? text : text[..slash];
        // IPAddress.TryParse accepts forms wg does not (scope ids, "1" as 0.0.0.1): insist on dotted
        // quads or a colon-form v6 address without a zone.
        if (addressText.Length == 0 || addressText.Contains('%'))
            return false;
        if (!addressText.Contains(':') && addressText.Count('.') != 3)
            return false;
        if (!IPAddress.TryParse(addressText, out var parsed))
            return false;
        var max = parsed.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var length = max;
        if (slash >= 0)
        {
            var lengthText = text[(slash + 1)..];
            if (lengthText.Length is 0 or > 3 || !char.IsAsciiDigit(lengthText[0]) ||
                !int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out length) ||
                length > max)
                return false;
        }
        address = parsed;
        prefixLength = length;
        return true;
    }

    private static IPAddress Mask(IPAddress address, int length)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        bytes = bytes[..written];
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(length - i * 8, 0, 8);
            bytes[i] &= (byte)(0xff00 >> keep);
        }
        return new IPAddress(bytes);
    }
}

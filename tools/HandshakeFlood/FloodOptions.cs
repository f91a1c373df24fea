using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using Tunnel.Crypto;

namespace HandshakeFlood;

/// <summary>The command line: where to, whose key, how fast, how long, from how many ports.</summary>
/// <param name="Sources">Local IPv4 addresses to send from, the ports spread over them (none: the default route's).</param>
internal sealed record FloodOptions(IPEndPoint Target, PublicKey PublicKey, int Rate, double Seconds, int Ports, IPAddress[] Sources)
{
    public static bool TryParse(string[] args, [NotNullWhen(true)] out FloodOptions? options, [NotNullWhen(false)] out string? error)
    {
        options = null;
        IPEndPoint? target = null;
        PublicKey? key = null;
        int rate = 50_000, ports = 64;
        double seconds = 10;
        IPAddress? sourceBase = null;
        int sourceCount = 1;
        for (int i = 0; i < args.Length; i++)
        {
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            bool ok = args[i] switch
            {
                "--target" => IPEndPoint.TryParse(value ?? "", out target),
                "--public-key" => TryKey(value, out key),
                "--rate" => int.TryParse(value, CultureInfo.InvariantCulture, out rate) && rate >= 0,
                "--seconds" => double.TryParse(value, CultureInfo.InvariantCulture, out seconds) && seconds > 0,
                "--ports" => int.TryParse(value, CultureInfo.InvariantCulture, out ports) && ports is >= 1 and <= 4096,
                "--source-base" => IPAddress.TryParse(value ?? "", out sourceBase),
                "--source-count" => int.TryParse(value, CultureInfo.InvariantCulture, out sourceCount) && sourceCount is >= 1 and <= 4096,
                _ => false,
            };
            if (!ok)
            {
                error = $"handshake-flood: bad argument {args[i]} {value}";
                return false;
            }
            i++;
        }
        if (target is null || key is null)
        {
            error = "handshake-flood: --target and --public-key are required";
            return false;
        }
        IPAddress[] sources = [];
        if (sourceBase is not null)
        {
            // base, base + 1, ...: addresses the caller has put on the flooder's interface.
            uint first = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(sourceBase.GetAddressBytes());
            sources = [.. Enumerable.Range(0, sourceCount).Select(i =>
            {
                var bytes = new byte[4];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, first + (uint)i);
                return new IPAddress(bytes);
            })];
        }
        options = new FloodOptions(target, key.Value, rate, seconds, ports, sources);
        error = null;
        return true;
    }

    private static bool TryKey(string? text, out PublicKey? key)
    {
        Span<byte> bytes = stackalloc byte[PublicKey.Size];
        key = text is not null && Convert.TryFromBase64String(text, bytes, out int n) && n == PublicKey.Size
            ? new PublicKey(bytes)
            : null;
        return key is not null;
    }
}

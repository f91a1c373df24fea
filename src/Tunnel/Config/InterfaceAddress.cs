using System.Net;

namespace Tunnel.Config;

/// <summary>
/// An address assigned to the tunnel interface, as wg-quick's <c>Address = 10.0.0.1/24</c>. Unlike an
/// allowed IP the host bits are the point (they are this host's address), so nothing is masked.
/// </summary>
public readonly record struct InterfaceAddress(IPAddress Address, int PrefixLength)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

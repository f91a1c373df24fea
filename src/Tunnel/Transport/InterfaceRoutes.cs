using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Tunnel.Config;

namespace Tunnel.Transport;

/// <summary>
/// The routes that send the peers' allowed IPs into the tunnel, installed once at start-up through
/// rtnetlink in batches (<see cref="RouteNetlink"/>): 100,000 routes take well under a second,
/// where one <c>ip route add</c> process each took minutes. The kernel removes them with the
/// interface, which is how they go at stop.
/// </summary>
internal static class InterfaceRoutes
{
    /// <summary>Failures named in the error before "and N more".</summary>
    private const int FailuresShown = 3;

    /// <summary>
    /// Adds the routes of <paramref name="config"/> into <paramref name="interfaceName"/>. Any route
    /// the kernel refuses (EEXIST included, as <c>ip route add</c> refuses it) fails the start with
    /// a <see cref="TunException"/> naming the routes; the ones already added go with the interface.
    /// </summary>
    public static void Install(string interfaceName, TunnelConfig config, ILogger log)
    {
        var prefixes = RoutedPrefixes(config, log, out int covered);
        if (prefixes.Count == 0)
            return;
        uint index = LibC.IfNameToIndex(interfaceName);
        if (index == 0)
            throw new TunException($"interface {interfaceName}: {LibC.Describe(LibC.LastError)}");
        var clock = Stopwatch.StartNew();
        List<RouteFailure> failures;
        using (var routes = RouteNetlink.Open())
            failures = routes.Add(index, prefixes);
        if (failures.Count > 0)
        {
            var shown = string.Join("; ", failures.Take(FailuresShown));
            var more = failures.Count > FailuresShown ? $"; and {failures.Count - FailuresShown} more" : "";
            throw new TunException($"route add ... dev {interfaceName}: {shown}{more}",
                failures.Any(f => f.Errno == LibC.EPERM));
        }
        log.LogInformation("{Routes} route(s) added to {Name} in {Ms} ms ({Covered} allowed IP(s) already routed by an address)",
            prefixes.Count, interfaceName, clock.ElapsedMilliseconds, covered);
    }

    /// <summary>
    /// One route per distinct allowed IP, less the ones an interface address's own prefix route
    /// already sends into the interface (wg-quick skips those too: it adds a route only where
    /// <c>ip route show dev NAME match PREFIX</c> finds none, and before the routes it has added
    /// only the addresses). Without this, an allowed IP equal to the address's IPv4 subnet would
    /// fail with EEXIST. Default routes (/0) are left out: routing everything into the tunnel
    /// would include the tunnel's own UDP packets, and wg-quick avoids that loop with fwmark
    /// policy routing, which tunneld does not set up (see README).
    /// </summary>
    internal static List<IPNetwork> RoutedPrefixes(TunnelConfig config, ILogger log, out int covered)
    {
        covered = 0;
        var seen = new HashSet<IPNetwork>();
        var routed = new List<IPNetwork>();
        foreach (var peer in config.Peers)
        {
            foreach (var prefix in peer.AllowedIps)
            {
                if (prefix.PrefixLength == 0)
                {
                    log.LogWarning("{Prefix}: default route not installed (needs policy routing; see README)", prefix);
                    continue;
                }
                if (!seen.Add(prefix))
                    continue;
                if (config.Interface.Addresses.Any(address => RoutesInto(address, prefix)))
                    covered++;
                else
                    routed.Add(prefix);
            }
        }
        return routed;
    }

    /// <summary>
    /// True when the kernel's prefix route for <paramref name="address"/> covers
    /// <paramref name="prefix"/>. A host address (/32, /128) gets no prefix route.
    /// </summary>
    internal static bool RoutesInto(InterfaceAddress address, IPNetwork prefix)
    {
        var family = address.Address.AddressFamily;
        int hostLength = family == AddressFamily.InterNetworkV6 ? 128 : 32;
        if (family != prefix.BaseAddress.AddressFamily || address.PrefixLength >= hostLength
            || prefix.PrefixLength < address.PrefixLength)
            return false;
        Span<byte> a = stackalloc byte[16], p = stackalloc byte[16];
        address.Address.TryWriteBytes(a, out _);
        prefix.BaseAddress.TryWriteBytes(p, out _);
        int bits = address.PrefixLength, whole = bits / 8;
        if (!a[..whole].SequenceEqual(p[..whole]))
            return false;
        int rest = bits % 8;
        if (rest == 0)
            return true;
        int mask = 0xff << (8 - rest) & 0xff;
        return (a[whole] & mask) == (p[whole] & mask);
    }
}

using System.Net;
using Microsoft.Extensions.Logging;
using Tunnel.Config;

namespace Tunnel.Transport;

/// <summary>
/// The routes that send the peers' allowed IPs into the tunnel, installed once at start-up with
/// one <c>ip route add</c> each (<see cref="InterfaceSetup.AddRoute"/>). The kernel removes them
/// with the interface. Kept apart so a batched (rtnetlink) installer can take its place.
/// </summary>
internal static class InterfaceRoutes
{
    public static void Install(InterfaceSetup setup, TunnelConfig config, ILogger log)
    {
        foreach (var prefix in RoutedPrefixes(config, log))
            setup.AddRoute(prefix);
    }

    /// <summary>
    /// One route per distinct allowed IP. Default routes (/0) are left out: routing everything
    /// into the tunnel would include the tunnel's own UDP packets, and wg-quick avoids that loop
    /// with fwmark policy routing, which tunneld does not set up (see README).
    /// </summary>
    private static IEnumerable<IPNetwork> RoutedPrefixes(TunnelConfig config, ILogger log)
    {
        var seen = new HashSet<IPNetwork>();
        foreach (var peer in config.Peers)
        {
            foreach (var prefix in peer.AllowedIps)
            {
                if (prefix.PrefixLength == 0)
                {
                    log.LogWarning("{Prefix}: default route not installed (needs policy routing; see README)", prefix);
                    continue;
                }
                if (seen.Add(prefix))
                    yield return prefix;
            }
        }
    }
}

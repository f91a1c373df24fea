using System.Diagnostics;
using System.Net;
using Tunnel.Config;

namespace Tunnel.Transport;

/// <summary>
/// Sets MTU, addresses and link state of an interface by running iproute2's <c>ip</c>, the same
/// commands wg-quick runs: a few processes at start-up whatever the number of peers, and a
/// failure reads exactly like the user's own <c>ip</c> would. Requires <c>ip</c> on PATH. The
/// peers' routes, whose number grows with the peers, go through rtnetlink in batches instead
/// (<see cref="InterfaceRoutes"/>); <see cref="AddRoute"/> is the single-route form for tests.
/// </summary>
/// <param name="interfaceName">The interface to configure.</param>
/// <param name="networkNamespace">A named network namespace (<c>ip -n NS</c>) the interface lives
/// in, or null for the caller's own.</param>
public sealed class InterfaceSetup(string interfaceName, string? networkNamespace = null)
{
    public string InterfaceName { get; } = interfaceName;
    public string? NetworkNamespace { get; } = networkNamespace;

    public void SetMtu(int mtu) => Ip("link", "set", "dev", InterfaceName, "mtu", mtu.ToString());

    public void AddAddress(InterfaceAddress address) =>
        Ip(address.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4",
            "address", "add", address.ToString(), "dev", InterfaceName);

    public void SetUp() => Ip("link", "set", "dev", InterfaceName, "up");

    /// <summary>Routes a prefix into the tunnel (like wg-quick for a non-default allowed IP).</summary>
    public void AddRoute(IPNetwork prefix) =>
        Ip(prefix.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4",
            "route", "add", prefix.ToString(), "dev", InterfaceName);

    private void Ip(params string[] args)
    {
        if (NetworkNamespace is not null)
            args = ["-n", NetworkNamespace, .. args];
        var start = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new TunException("cannot run ip");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new TunException($"cannot run 'ip' (install iproute2): {e.Message}");
        }
        using (process)
        {
            var error = process.StandardError.ReadToEnd();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                var permission = error.Contains("Operation not permitted", StringComparison.Ordinal);
                throw new TunException($"ip {string.Join(' ', args)}: {error.Trim()}", permission);
            }
        }
    }
}

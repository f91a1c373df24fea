using System.Diagnostics;
using System.Net;
using LinuxInterop;
using Tunnel.Transport;

namespace Tunnel.Bench;

/// <summary>
/// Installing N routes into a TUN device two ways, timed with a Stopwatch: tunneld's rtnetlink
/// batches (<see cref="RouteNetlink"/>) and one <c>ip -batch -</c> process fed one
/// <c>route add PREFIX dev NAME</c> line per route (the other candidate of issue 12). Then the
/// time to close the TUN, which deletes the interface and, with it, every route through it (how
/// tunneld removes them at stop). Root, in a network namespace of its own (bench/scale.sh runs it
/// under <c>ip netns exec</c>): it creates interface <c>rtbench0</c>.
/// </summary>
internal static class RouteInstall
{
    /// <summary>route-install --routes N [--ip-batch]</summary>
    public static int Run(string[] args)
    {
        int count = 0;
        bool ipBatch = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--routes" && i + 1 < args.Length && int.TryParse(args[++i], out int n) && n > 0)
                count = n;
            else if (args[i] == "--ip-batch")
                ipBatch = true;
            else
                count = -1;
        }
        if (count <= 0)
        {
            Console.Error.WriteLine("usage: Tunnel.Bench route-install --routes N [--ip-batch]   (root, in a scratch netns)");
            return 2;
        }
        // 90 % IPv4 /32 and 10 % IPv6 /128, as bench/scale.sh's peers.
        var prefixes = Enumerable.Range(0, count).Select(i => i % 10 == 9
            ? new IPNetwork(IPAddress.Parse($"fd00:64::{i >> 16:x}:{i & 0xffff:x}"), 128)
            : new IPNetwork(IPAddress.Parse($"10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"), 32)).ToList();

        var tun = LinuxTun.Create("rtbench0");
        new InterfaceSetup(tun.Name).SetUp();
        double cpu = CpuMs();
        var clock = Stopwatch.StartNew();
        if (ipBatch)
            IpBatch(tun.Name, prefixes);
        else
            Netlink(tun.Name, prefixes);
        double add = clock.Elapsed.TotalMilliseconds;
        double addCpu = CpuMs() - cpu;
        clock.Restart();
        tun.Dispose();
        double delete = clock.Elapsed.TotalMilliseconds;
        Console.WriteLine($"{(ipBatch ? "ip -batch" : "rtnetlink")}\t{count}\tadd {add:F1} ms (CPU {addCpu:F0} ms)\tlink delete {delete:F1} ms");
        return 0;
    }

    /// <summary>CPU time of this process and its waited-for children (ip), user and system, from
    /// /proc/self/stat: the kernel inserts the routes in the sender's system time, and on a loaded
    /// machine this is steadier than the wall clock.</summary>
    private static double CpuMs()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14 to 17
        long ticks = long.Parse(fields[11]) + long.Parse(fields[12]) + long.Parse(fields[13]) + long.Parse(fields[14]);
        return ticks * 1000.0 / 100; // USER_HZ
    }

    private static void Netlink(string name, List<IPNetwork> prefixes)
    {
        using var routes = RouteNetlink.Open();
        var failures = routes.Add(LibC.IfNameToIndex(name), prefixes);
        if (failures.Count > 0)
            throw new InvalidOperationException($"{failures.Count} routes refused, first {failures[0]}");
    }

    private static void IpBatch(string name, List<IPNetwork> prefixes)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardInput = true, UseShellExecute = false };
        start.ArgumentList.Add("-batch");
        start.ArgumentList.Add("-");
        using var ip = Process.Start(start)!;
        foreach (var prefix in prefixes)
            ip.StandardInput.Write($"route add {prefix} dev {name}\n");
        ip.StandardInput.Close();
        ip.WaitForExit();
        if (ip.ExitCode != 0)
            throw new InvalidOperationException($"ip -batch exited {ip.ExitCode}");
    }
}

namespace Integration.Tests;

/// <summary>
/// A tunneld that went to the background (<c>tunneld IFNAME</c>, as wg-quick starts it) has no
/// handle in the test: it is found by its UAPI socket (ss names the process that holds it)
/// and watched through /proc.
/// </summary>
public static class DaemonProcess
{
    /// <summary>
    /// The pid serving <paramref name="socketPath"/>, from <c>ss -xlp</c> in <paramref name="ns"/>
    /// (SO_PEERCRED would name the parent that called listen() and has exited since).
    /// </summary>
    public static int ServingPid(NetNs ns, string socketPath)
    {
        foreach (var line in ns.Check("ss", "-xlpn").Split('\n'))
        {
            if (!line.Contains(socketPath, StringComparison.Ordinal)) // bound as PATH.PID.tmp, then renamed
                continue;
            var match = System.Text.RegularExpressions.Regex.Match(line, @"pid=(\d+)");
            if (match.Success)
                return int.Parse(match.Groups[1].Value);
        }
        throw new InvalidOperationException($"no process listens on {socketPath}");
    }

    /// <summary>True while the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the process to be gone.</summary>
    public static bool WaitGone(int pid, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (IsAlive(pid))
        {
            if (DateTime.UtcNow > deadline)
                return false;
            Thread.Sleep(50);
        }
        return true;
    }

    /// <summary>Stops a daemon a failed test left behind (by pid, SIGKILL after SIGTERM).</summary>
    public static void Stop(int pid)
    {
        if (pid <= 0 || !IsAlive(pid))
            return;
        ProcessRunner.Kill(pid, 15);
        if (!WaitGone(pid, TimeSpan.FromSeconds(10)))
            ProcessRunner.Kill(pid, 9);
    }
}

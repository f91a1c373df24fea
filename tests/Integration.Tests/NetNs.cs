using System.Text.RegularExpressions;

namespace Integration.Tests;

/// <summary>
/// A network namespace owned by one test: a unique name, commands run inside it, background
/// processes tracked by PID, and files to remove (e.g. UAPI sockets, which live in the shared
/// /var/run/wireguard). Dispose, pass or fail, stops the processes, removes the files and deletes
/// the namespace (which deletes every interface in it); what it cannot clean up it reports by
/// throwing, after it has tried everything else.
/// </summary>
/// <remarks>
/// Names are <c>tt-PIDNS-PID-RANDOM-TAG</c>: the PID namespace and PID of the test process that
/// made it. The first <see cref="Create"/> of a run sweeps the namespaces an earlier, crashed run
/// left behind: only names of this form, only from this PID namespace, and only when that PID
/// no longer runs, so test runs going on at the same time (here or in CI) never lose theirs.
/// </remarks>
public sealed partial class NetNs : IDisposable
{
    private const string Prefix = "tt";
    internal static readonly Lazy<string> OwnPidNamespace = new(PidNamespace);
    private static readonly Lazy<IReadOnlyList<string>> Swept = new(SweepLeftovers);
    private readonly List<BackgroundProcess> _processes = [];
    private readonly List<string> _files = [];
    private bool _disposed;

    private NetNs(string name) => Name = name;

    public string Name { get; }

    /// <summary>Namespaces this run removed because their creating test process had died.</summary>
    public static IReadOnlyList<string> SweptLeftovers => Swept.Value;

    /// <summary>Creates <c>tt-PIDNS-PID-xxxxxxxx-TAG</c> with loopback up.</summary>
    public static NetNs Create(string tag = "tt")
    {
        _ = Swept.Value;
        var ns = new NetNs($"{Prefix}-{OwnPidNamespace.Value}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}-{tag}");
        ProcessRunner.Check(["ip", "netns", "add", ns.Name]);
        try
        {
            ns.Check("ip", "link", "set", "lo", "up");
        }
        catch
        {
            ns.Dispose();
            throw;
        }
        return ns;
    }

    /// <summary>A fresh interface-sized name (at most 15 characters) for use inside tests.</summary>
    public static string UniqueInterfaceName(string prefix) => prefix + Guid.NewGuid().ToString("N")[..(13 - prefix.Length)];

    /// <summary>
    /// Two namespaces joined by a veth pair (10.99.0.1/24 and 10.99.0.2/24, as the tunnel tests
    /// expect); if making the second or the link fails, what was made is removed.
    /// </summary>
    public static (NetNs A, NetNs B) CreateLinkedPair(string tagA, string tagB)
    {
        var a = Create(tagA);
        try
        {
            var b = Create(tagB);
            try
            {
                Link(a, "10.99.0.1/24", b, "10.99.0.2/24");
                return (a, b);
            }
            catch
            {
                b.Dispose();
                throw;
            }
        }
        catch
        {
            a.Dispose();
            throw;
        }
    }

    /// <summary>Joins two namespaces with a veth pair and gives each end an address (CIDR form).</summary>
    public static void Link(NetNs a, string addressA, NetNs b, string addressB, string nameA = "veth-a", string nameB = "veth-b")
    {
        // Created directly inside the namespaces, so the names never meet in the host namespace
        // and concurrent tests can all use the same ones.
        ProcessRunner.Check(["ip", "link", "add", nameA, "netns", a.Name, "type", "veth", "peer", "name", nameB, "netns", b.Name]);
        a.Check("ip", "addr", "add", addressA, "dev", nameA);
        b.Check("ip", "addr", "add", addressB, "dev", nameB);
        a.Check("ip", "link", "set", nameA, "up");
        b.Check("ip", "link", "set", nameB, "up");
    }

    public CommandResult Run(params string[] command) => ProcessRunner.Run(["ip", "netns", "exec", Name, .. command]);

    public CommandResult RunWithInput(string stdin, params string[] command) =>
        ProcessRunner.Run(["ip", "netns", "exec", Name, .. command], stdin);

    public string Check(params string[] command) => ProcessRunner.Check(["ip", "netns", "exec", Name, .. command]);

    /// <summary>Starts a command inside the namespace; it is stopped by PID on Dispose.
    /// (<c>ip netns exec</c> execs the command, so the PID is the command's own.)</summary>
    public BackgroundProcess Start(params string[] command) => StartWithEnvironment(null, command);

    /// <summary><see cref="Start"/> with extra environment variables.</summary>
    public BackgroundProcess StartWithEnvironment(IReadOnlyDictionary<string, string>? environment, params string[] command)
    {
        var process = new BackgroundProcess(["ip", "netns", "exec", Name, .. command], environment);
        lock (_processes)
            _processes.Add(process);
        return process;
    }

    /// <summary>Removes <paramref name="path"/> on Dispose (after the processes stopped).</summary>
    public void RemoveOnDispose(string path)
    {
        lock (_files)
            _files.Add(path);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        var failures = new List<Exception>();
        List<BackgroundProcess> processes;
        lock (_processes)
            processes = [.. _processes];
        foreach (var process in processes)
        {
            try
            {
                process.Dispose();
            }
            catch (Exception e)
            {
                failures.Add(e);
            }
        }
        foreach (var file in _files)
        {
            try
            {
                File.Delete(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                failures.Add(e);
            }
        }
        try
        {
            Delete(Name);
        }
        catch (Exception e)
        {
            failures.Add(e);
        }
        if (failures.Count > 0)
            throw new AggregateException($"cleanup of network namespace {Name} failed", failures);
    }

    /// <summary>
    /// <c>ip netns del</c>, and if that fails, SIGKILL to whatever still runs inside and again, a
    /// few times; throws with the last error when the namespace is still there.
    /// </summary>
    private static void Delete(string name)
    {
        CommandResult? last = null;
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            last = ProcessRunner.Run(["ip", "netns", "del", name]);
            if (last.ExitCode == 0 || !Exists(name))
                return;
            var pids = ProcessRunner.Run(["ip", "netns", "pids", name]).Output;
            foreach (var pid in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (int.TryParse(pid, out var id))
                    ProcessRunner.Kill(id, BackgroundProcess.SIGKILL);
            }
            Thread.Sleep(100 * attempt);
        }
        if (Exists(name))
            throw new InvalidOperationException($"'ip netns del {name}' failed: {last}");
    }

    private static bool Exists(string name) => NamespaceNames().Contains(name);

    private static IEnumerable<string> NamespaceNames() =>
        // "NAME" or "NAME (id: N)", one a line
        ProcessRunner.Check(["ip", "netns", "list"])
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ')[0]);

    [GeneratedRegex(@"^tt-(?<pidns>\d+)-(?<pid>\d+)-[0-9a-f]{8}-[A-Za-z0-9]+$")]
    private static partial Regex OwnName();

    /// <summary>
    /// Deletes the namespaces named by this class whose creator (same PID namespace) has exited;
    /// returns their names. A failure to delete one is reported on stderr, not thrown: a leftover
    /// must not fail the run that found it.
    /// </summary>
    internal static IReadOnlyList<string> SweepLeftovers()
    {
        var swept = new List<string>();
        foreach (var name in NamespaceNames())
        {
            var match = OwnName().Match(name);
            if (!match.Success || match.Groups["pidns"].Value != OwnPidNamespace.Value
                || !int.TryParse(match.Groups["pid"].Value, out var pid)
                || pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}"))
                continue;
            try
            {
                Delete(name);
                swept.Add(name);
                Console.Error.WriteLine($"NetNs: removed {name}, left by test process {pid} (no longer running)");
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"NetNs: cannot remove leftover {name}: {e.Message}");
            }
        }
        return swept;
    }

    /// <summary>The inode of this process's PID namespace (<c>pid:[N]</c>): a PID means something only within it.</summary>
    private static string PidNamespace()
    {
        var target = new FileInfo("/proc/self/ns/pid").LinkTarget ?? "";
        var digits = new string(target.Where(char.IsAsciiDigit).ToArray());
        return digits.Length > 0 ? digits : "0";
    }
}

namespace Integration.Tests;

/// <summary>
/// A network namespace owned by one test: a unique name, commands run inside it, background
/// processes tracked by PID, and files to remove (e.g. UAPI sockets, which live in the shared
/// /var/run/wireguard). Dispose, pass or fail, stops the processes, removes the files and deletes
/// the namespace (which deletes every interface in it).
/// </summary>
public sealed class NetNs : IDisposable
{
    private readonly List<BackgroundProcess> _processes = [];
    private readonly List<string> _files = [];
    private bool _disposed;

    private NetNs(string name) => Name = name;

    public string Name { get; }

    /// <summary>Creates <c>PREFIX-xxxxxxxx</c> with loopback up.</summary>
    public static NetNs Create(string prefix = "tt")
    {
        var ns = new NetNs($"{prefix}-{Guid.NewGuid().ToString("N")[..8]}");
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

    /// <summary>Joins two namespaces with a veth pair and gives each end an address (CIDR form).</summary>
    /// <summary>
    /// Two namespaces joined by a veth pair (10.99.0.1/24 and 10.99.0.2/24, as the tunnel tests
    /// expect); if making the second or the link fails, what was made is removed.
    /// </summary>
    public static (NetNs A, NetNs B) CreateLinkedPair(string prefixA, string prefixB)
    {
        var a = Create(prefixA);
        try
        {
            var b = Create(prefixB);
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
        List<BackgroundProcess> processes;
        lock (_processes)
            processes = [.. _processes];
        foreach (var process in processes)
            process.Dispose();
        foreach (var file in _files)
        {
            try
            {
                File.Delete(file);
            }
            catch (IOException)
            {
            }
        }
        ProcessRunner.Run(["ip", "netns", "del", Name]);
    }
}

using System.Runtime.InteropServices;
using LinuxInterop;

namespace Tunneld;

/// <summary>
/// Going to the background the way wireguard-go does, without fork() (a .NET process cannot fork:
/// its other threads would not exist in the child). The parent has already made the TUN interface
/// and the listening UAPI socket, so every failure a user can fix is reported by it; it then
/// re-executes itself with posix_spawn, the two descriptors as fd 3 and 4 (<c>WG_TUN_FD</c>,
/// <c>WG_UAPI_FD</c>), <c>WG_PROCESS_FOREGROUND=1</c>, a new session, stdin from /dev/null and
/// stdout/stderr to /dev/null unless <c>LOG_LEVEL</c> is set. It waits for the child's readiness
/// byte on a pipe (fd 5, <c>TUNNELD_READY_FD</c>, as boringtun waits for its child) and exits 0
/// once the child serves the socket, 1 if the child died first. wg-quick runs <c>wg addconf</c>
/// the moment the parent returns, so the parent must not return earlier.
/// </summary>
internal static unsafe class Background
{
    public const string TunFdVariable = "WG_TUN_FD";
    public const string UapiFdVariable = "WG_UAPI_FD";
    public const string ForegroundVariable = "WG_PROCESS_FOREGROUND";
    public const string ReadyFdVariable = "TUNNELD_READY_FD";

    private const int ChildTunFd = 3;
    private const int ChildUapiFd = 4;
    private const int ChildReadyFd = 5;

    /// <summary>How long the parent waits for the child's readiness byte.</summary>
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Spawns the daemon with the two descriptors and waits for it; the exit code for the parent.</summary>
    public static int Launch(string interfaceName, int tunFd, int uapiFd, string[] foregroundArgs)
    {
        var pipe = stackalloc int[2];
        if (LibC.Pipe2(pipe, LibC.O_CLOEXEC) < 0)
        {
            Console.Error.WriteLine($"tunneld: pipe: {LibC.Describe(Marshal.GetLastPInvokeError())}");
            return 1;
        }
        // Copies at 10 and up cannot collide with the child's 3, 4 and 5 while dup2 moves them there.
        int[] sources = [Raise(tunFd), Raise(uapiFd), Raise(pipe[1])];
        LibC.Close(pipe[1]);
        int pid;
        int error;
        try
        {
            error = Spawn(sources, foregroundArgs, out pid);
        }
        finally
        {
            foreach (var fd in sources)
                LibC.Close(fd);
        }
        if (error != 0)
        {
            LibC.Close(pipe[0]);
            Console.Error.WriteLine($"tunneld: cannot start the daemon: {LibC.Describe(error)}");
            return 1;
        }
        var ready = WaitForByte(pipe[0]);
        LibC.Close(pipe[0]);
        if (ready)
            return 0;
        Console.Error.WriteLine($"tunneld: the daemon for {interfaceName} (pid {pid}) stopped before it was ready; " +
            "run 'LOG_LEVEL=debug tunneld -f " + interfaceName + "' to see why");
        return 1;
    }

    /// <summary>Tells the parent (if there is one) that the socket is served: one byte, then close.</summary>
    public static void SignalReady()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(ReadyFdVariable), out var fd) || fd < 3)
            return;
        byte one = 1;
        LibC.Write(fd, &one, 1);
        LibC.Close(fd);
        Environment.SetEnvironmentVariable(ReadyFdVariable, null);
    }

    /// <summary>The descriptor a parent handed over in <paramref name="variable"/>, or -1.</summary>
    public static int InheritedDescriptor(string variable)
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(variable), out var fd) || fd < 3)
            return -1;
        Environment.SetEnvironmentVariable(variable, null); // not passed on to anything this process starts
        LibC.Fcntl(fd, LibC.F_SETFD, LibC.FD_CLOEXEC);
        return fd;
    }

    private static int Raise(int fd) => LibC.Fcntl(fd, LibC.F_DUPFD_CLOEXEC, 10);

    private static int Spawn(int[] sources, string[] foregroundArgs, out int pid)
    {
        pid = 0;
        var exe = Environment.ProcessPath ?? "/proc/self/exe";
        // Under 'dotnet tunneld.dll' the process is dotnet and the program is its first argument.
        string[] argv = Path.GetFileNameWithoutExtension(exe) == "dotnet"
            ? [exe, Environment.GetCommandLineArgs()[0], .. foregroundArgs]
            : [exe, .. foregroundArgs];
        var environment = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            var name = (string)entry.Key;
            if (name is not (TunFdVariable or UapiFdVariable or ForegroundVariable or ReadyFdVariable))
                environment.Add($"{name}={entry.Value}");
        }
        environment.Add($"{TunFdVariable}={ChildTunFd}");
        environment.Add($"{UapiFdVariable}={ChildUapiFd}");
        environment.Add($"{ForegroundVariable}=1");
        environment.Add($"{ReadyFdVariable}={ChildReadyFd}");

        var actions = stackalloc byte[LibC.FileActionsSize];
        var attributes = stackalloc byte[LibC.SpawnAttrSize];
        var mask = stackalloc byte[LibC.SigSetSize];
        new Span<byte>(mask, LibC.SigSetSize).Clear(); // sigemptyset
        LibC.FileActionsInit(actions);
        LibC.SpawnAttrInit(attributes);
        var strings = new List<nint>();
        try
        {
            LibC.FileActionsAddDup2(actions, sources[0], ChildTunFd);
            LibC.FileActionsAddDup2(actions, sources[1], ChildUapiFd);
            LibC.FileActionsAddDup2(actions, sources[2], ChildReadyFd);
            LibC.FileActionsAddOpen(actions, 0, "/dev/null", LibC.O_RDONLY, 0);
            var level = Environment.GetEnvironmentVariable("LOG_LEVEL");
            if (string.IsNullOrEmpty(level) || level == "silent")
            {
                LibC.FileActionsAddOpen(actions, 1, "/dev/null", LibC.O_WRONLY, 0);
                LibC.FileActionsAddOpen(actions, 2, "/dev/null", LibC.O_WRONLY, 0);
            }
            // A session of its own: the terminal's hang-up and Ctrl-C are not the daemon's. The
            // signal mask is emptied, since the runtime's threads may block some.
            LibC.SpawnAttrSetFlags(attributes, LibC.POSIX_SPAWN_SETSID | LibC.POSIX_SPAWN_SETSIGMASK);
            LibC.SpawnAttrSetSigMask(attributes, mask);

            var args = stackalloc byte*[argv.Length + 1];
            for (var i = 0; i < argv.Length; i++)
                args[i] = Utf8(argv[i], strings);
            args[argv.Length] = null;
            var env = stackalloc byte*[environment.Count + 1];
            for (var i = 0; i < environment.Count; i++)
                env[i] = Utf8(environment[i], strings);
            env[environment.Count] = null;
            int child;
            var result = LibC.Spawn(&child, args[0], actions, attributes, args, env);
            pid = child;
            return result;
        }
        finally
        {
            LibC.FileActionsDestroy(actions);
            LibC.SpawnAttrDestroy(attributes);
            foreach (var s in strings)
                Marshal.FreeCoTaskMem(s);
        }
    }

    private static byte* Utf8(string text, List<nint> owned)
    {
        var p = Marshal.StringToCoTaskMemUTF8(text);
        owned.Add(p);
        return (byte*)p;
    }

    /// <summary>True when one byte arrived; false on end of file (the child died) or time-out.</summary>
    private static bool WaitForByte(int fd)
    {
        var deadline = Environment.TickCount64 + (long)ReadyTimeout.TotalMilliseconds;
        var poll = new LibC.PollFd { Fd = fd, Events = LibC.POLLIN };
        while (true)
        {
            var left = deadline - Environment.TickCount64;
            if (left <= 0)
                return false;
            var r = LibC.Poll(&poll, 1, (int)left);
            if (r < 0 && Marshal.GetLastPInvokeError() == LibC.EINTR)
                continue;
            if (r <= 0)
                return false;
            byte b;
            var n = LibC.Read(fd, &b, 1);
            if (n < 0 && Marshal.GetLastPInvokeError() == LibC.EINTR)
                continue;
            return n == 1 && b == 1;
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LinuxInterop;

namespace Tunneld;

/// <summary>
/// What the daemon does about its own memory being read by others, before it reads any key.
/// <list type="bullet">
/// <item>The runtime's diagnostic IPC is turned off. By default .NET opens
/// <c>/tmp/dotnet-diagnostic-PID-*</c> and the <c>clr-debug-pipe</c> files, through which any
/// process of the same user can ask for a full memory dump, and leaves them behind after kill -9.
/// Only the environment variable <c>DOTNET_EnableDiagnostics</c> turns it off (the runtime reads no
/// runtimeconfig setting for it), and it is read at start-up, so when it is unset the daemon
/// re-executes itself (execve: same pid, so systemd's main pid stays right) with
/// <c>DOTNET_EnableDiagnostics=0</c>. Set <c>DOTNET_EnableDiagnostics=1</c> to debug or trace it.
/// A NativeAOT build has no diagnostic server and skips this.</item>
/// <item>The process is made non-dumpable (PR_SET_DUMPABLE 0): no core file on a crash, and
/// /proc/PID/mem and ptrace are closed to everything without CAP_SYS_PTRACE (root keeps it, so
/// gdb/gcore as root still work).</item>
/// </list>
/// </summary>
internal static unsafe class Hardening
{
    private const string DiagnosticsVariable = "DOTNET_EnableDiagnostics";

    /// <summary>Re-executes with diagnostics off when they were not set either way; returns only
    /// when there is nothing to do or the exec failed (then the daemon runs as it is).</summary>
    public static void TurnOffDiagnostics(string[] args)
    {
        if (!RuntimeFeature.IsDynamicCodeSupported) // NativeAOT
            return;
        if (Environment.GetEnvironmentVariable(DiagnosticsVariable) is not null)
            return;
        var exe = Environment.ProcessPath;
        if (exe is null)
            return;
        string[] argv = Path.GetFileNameWithoutExtension(exe) == "dotnet"
            ? [exe, Environment.GetCommandLineArgs()[0], .. args]
            : [exe, .. args];
        var environment = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            environment.Add($"{entry.Key}={entry.Value}");
        environment.Add($"{DiagnosticsVariable}=0");
        var owned = new List<nint>();
        try
        {
            var argvPointers = stackalloc byte*[argv.Length + 1];
            for (var i = 0; i < argv.Length; i++)
                argvPointers[i] = Utf8(argv[i], owned);
            argvPointers[argv.Length] = null;
            var envPointers = new nint[environment.Count + 1];
            for (var i = 0; i < environment.Count; i++)
                envPointers[i] = (nint)Utf8(environment[i], owned);
            // This runtime has already opened its IPC: remove its files, which would outlive the
            // exec under the same pid.
            RemoveDiagnosticFiles();
            fixed (nint* env = envPointers)
                LibC.Execve(argvPointers[0], argvPointers, (byte**)env);
            // Only reached when execve failed: carry on with diagnostics as they are.
        }
        finally
        {
            foreach (var p in owned)
                Marshal.FreeCoTaskMem(p);
        }
    }

    private static void RemoveDiagnosticFiles()
    {
        var pid = Environment.ProcessId;
        foreach (var pattern in new[] { $"dotnet-diagnostic-{pid}-*", $"clr-debug-pipe-{pid}-*" })
        {
            try
            {
                foreach (var file in Directory.GetFiles(Path.GetTempPath(), pattern))
                    File.Delete(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>PR_SET_DUMPABLE 0 (see the type's summary).</summary>
    public static void MakeNonDumpable() => LibC.Prctl(LibC.PR_SET_DUMPABLE, 0, 0, 0, 0);

    private static byte* Utf8(string text, List<nint> owned)
    {
        var p = Marshal.StringToCoTaskMemUTF8(text);
        owned.Add(p);
        return (byte*)p;
    }
}

using System.Diagnostics;
using LinuxInterop;

namespace Integration.Tests;

/// <summary>The outcome of a finished command.</summary>
public sealed record CommandResult(int ExitCode, string Output, string Error)
{
    public override string ToString() => $"exit {ExitCode}\n{Output}{Error}";
}

/// <summary>Runs commands to completion, and starts background ones that are tracked by PID.</summary>
public static class ProcessRunner
{
    public static CommandResult Run(IReadOnlyList<string> command, string? stdin = null, int timeoutMs = 30_000)
    {
        using var process = Process.Start(StartInfo(command, stdin is not null))!;
        if (stdin is not null)
        {
            process.StandardInput.Write(stdin);
            process.StandardInput.Close();
        }
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeoutMs))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"'{string.Join(' ', command)}' did not finish in {timeoutMs} ms");
        }
        return new CommandResult(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>Runs a command that must succeed; the exception carries its output.</summary>
    public static string Check(IReadOnlyList<string> command, string? stdin = null)
    {
        var result = Run(command, stdin);
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"'{string.Join(' ', command)}' failed: {result}");
        return result.Output;
    }

    internal static ProcessStartInfo StartInfo(IReadOnlyList<string> command, bool redirectInput)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1))
            start.ArgumentList.Add(argument);
        return start;
    }

    public static bool IsRoot => LibC.IsRoot;

    /// <summary>True when an executable is on PATH.</summary>
    public static bool OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
        .Split(':').Any(dir => File.Exists(Path.Combine(dir, name)));

    internal static int Kill(int pid, int signal) => LibC.Kill(pid, signal);
}

using System.Diagnostics;
using System.Text;

namespace Integration.Tests;

/// <summary>
/// A long-running command (a daemon in the foreground). Output is collected for failure messages.
/// Dispose stops it by PID: SIGTERM (so daemons clean up their sockets), then SIGKILL after a grace
/// period; it always releases the process handle, and throws only if the process survived.
/// </summary>
public sealed class BackgroundProcess : IDisposable
{
    private const int SIGTERM = 15;
    internal const int SIGKILL = 9;
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    public BackgroundProcess(IReadOnlyList<string> command, IReadOnlyDictionary<string, string>? environment = null)
    {
        Command = string.Join(' ', command);
        _process = new Process { StartInfo = ProcessRunner.StartInfo(command, redirectInput: false) };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            _process.StartInfo.Environment[name] = value;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Pid = _process.Id;
    }

    public string Command { get; }
    public int Pid { get; }
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    /// <summary>Waits for the process to end by itself; true when it did.</summary>
    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    /// <summary>Sends SIGTERM and waits; true when it exited within the timeout.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        if (_process.HasExited)
            return true;
        ProcessRunner.Kill(Pid, SIGTERM);
        return _process.WaitForExit(timeout);
    }

    public void Dispose()
    {
        try
        {
            Stop();
        }
        finally
        {
            _process.Dispose();
        }
    }

    private void Stop()
    {
        try
        {
            if (Terminate(TimeSpan.FromSeconds(5)))
                return;
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            return; // exited in between: nothing left to stop
        }
        catch (Exception e) when (e is AggregateException or System.ComponentModel.Win32Exception)
        {
            // Part of the tree could not be killed: SIGKILL the process itself and look below.
            ProcessRunner.Kill(Pid, SIGKILL);
        }
        if (!_process.WaitForExit(5000))
            throw new InvalidOperationException($"'{Command}' (pid {Pid}) survived SIGTERM and SIGKILL:\n{Output}");
    }
}

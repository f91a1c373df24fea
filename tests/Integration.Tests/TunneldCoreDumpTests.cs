using System.Text;
using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// "Keys zeroed" checked where it matters: a core of the daemon taken with gdb at <c>_exit</c>, after
/// SIGTERM and the clean-up, holds neither key in any encoding (raw, base64 or hex; ASCII or
/// UTF-16). The control: a core of the running daemon does hold the raw private key, so the search
/// can find what it looks for. Root: gdb attaches through CAP_SYS_PTRACE, which PR_SET_DUMPABLE 0
/// does not take from root. Each core is about 1 GB of (mostly reserved) address space, so this is
/// in the long category.
/// </summary>
[Collection(RootCollection.Name)]
[Trait("Category", "Long")]
public sealed class TunneldCoreDumpTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-core-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ACoreAfterSigtermHoldsNoKeyTextInAnyEncoding()
    {
        RootCollection.RequireRootAnd("ip", "ss", "gdb");
        var self = KeyPair.Create();
        var peer = KeyPair.Create();
        var psk = KeyPair.Create().Private;
        using var ns = NetNs.Create("tdc");
        var name = NetNs.UniqueInterfaceName("tc");
        var daemon = StartTunneld(ns, _dir, name, $"""
            [Interface]
            PrivateKey = {self.Private}
            ListenPort = 51820

            [Peer]
            PublicKey = {peer.Public}
            PresharedKey = {psk}
            AllowedIPs = 10.71.0.0/24
            """);
        var forms = Forms("private key", self.Private).Concat(Forms("preshared key", psk)).ToList();

        var running = Path.Combine(_dir, "running.core");
        Gdb(daemon.Pid, $"-ex \"gcore {running}\" -ex detach");
        var rawPrivate = Convert.FromBase64String(self.Private);
        Assert.True(Contains(running, rawPrivate), "control: the running daemon's core should hold its private key");
        File.Delete(running);

        var atExit = Path.Combine(_dir, "exit.core");
        var gdb = ns.Start("gdb", "-p", daemon.Pid.ToString(), "-batch", "-ex", "handle all nostop noprint pass",
            "-ex", "break _exit", "-ex", "continue", "-ex", $"gcore {atExit}", "-ex", "kill");
        // Attached (TracerPid set), then a moment for the breakpoint and the continue (gdb's own
        // output is buffered on a pipe, so it cannot be waited for).
        Eventually(() => TracerPid(daemon.Pid) != 0, TimeSpan.FromSeconds(60), () => "gdb did not attach: " + gdb.Output);
        Thread.Sleep(3000);
        ProcessRunner.Kill(daemon.Pid, 15);
        Assert.True(gdb.WaitForExit(TimeSpan.FromSeconds(120)), gdb.Output);
        Assert.True(File.Exists(atExit), gdb.Output + daemon.Output);
        Assert.Contains("keys zeroed", daemon.Output);
        foreach (var (what, bytes) in forms)
            Assert.False(Contains(atExit, bytes), $"{what} found in the core taken at exit");
    }

    private static void Gdb(int pid, string commands) =>
        ProcessRunner.Check(["bash", "-c", $"gdb -p {pid} -batch -ex 'handle all nostop noprint pass' {commands}"]);

    private static int TracerPid(int pid) =>
        int.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("TracerPid:", StringComparison.Ordinal))[10..].Trim());

    /// <summary>Every encoding a key could be left behind in.</summary>
    private static IEnumerable<(string, byte[])> Forms(string what, string base64)
    {
        var raw = Convert.FromBase64String(base64);
        var hex = Convert.ToHexStringLower(raw);
        yield return ($"{what} raw", raw);
        foreach (var (name, text) in new[] { ("base64", base64[..43]), ("hex", hex) })
        {
            yield return ($"{what} {name} ASCII", Encoding.ASCII.GetBytes(text));
            yield return ($"{what} {name} UTF-16", Encoding.Unicode.GetBytes(text));
        }
    }

    /// <summary>Searches a large file in chunks that overlap by the needle's length.</summary>
    private static bool Contains(string path, byte[] needle)
    {
        using var file = File.OpenRead(path);
        var buffer = new byte[(16 << 20) + needle.Length];
        var kept = 0;
        int read;
        while ((read = file.Read(buffer, kept, buffer.Length - kept)) > 0)
        {
            var filled = kept + read;
            if (buffer.AsSpan(0, filled).IndexOf(needle) >= 0)
                return true;
            kept = Math.Min(needle.Length - 1, filled);
            Array.Copy(buffer, filled - kept, buffer, 0, kept);
        }
        return false;
    }
}

using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>The daemon keeps the runtime's diagnostic IPC (a memory dump on request) shut unless
/// asked for it with DOTNET_EnableDiagnostics=1.</summary>
[Collection(RootCollection.Name)]
public sealed class TunneldHardeningTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-hard-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string[] DiagnosticFiles(int pid) =>
        Directory.GetFiles(Path.GetTempPath(), $"dotnet-diagnostic-{pid}-*")
            .Concat(Directory.GetFiles(Path.GetTempPath(), $"clr-debug-pipe-{pid}-*")).ToArray();

    [Theory]
    [InlineData(null, false)]
    [InlineData("1", true)] // the documented way back, and the control that the check can see the files
    public void DiagnosticIpcIsOffUnlessAskedFor(string? enableDiagnostics, bool expectFiles)
    {
        RootCollection.RequireRootAnd("ip", "wg");
        using var ns = NetNs.Create("tdh");
        var name = NetNs.UniqueInterfaceName("th");
        var path = Path.Combine(_dir, name + ".conf");
        File.WriteAllText(path, $"[Interface]\nPrivateKey = {KeyPair.Create().Private}\n");
        ns.RemoveOnDispose(SocketPath(name));
        var environment = new Dictionary<string, string>();
        if (enableDiagnostics is not null)
            environment["DOTNET_EnableDiagnostics"] = enableDiagnostics;
        var daemon = ns.StartWithEnvironment(environment, TunneldBinary.Path, "up", path);
        Eventually(() => File.Exists(SocketPath(name)) || daemon.HasExited, TimeSpan.FromSeconds(30), () => daemon.Output);
        Assert.False(daemon.HasExited, daemon.Output);
        Thread.Sleep(500); // the runtime opens its IPC early; give it time to show up if it will
        Assert.Equal(expectFiles, DiagnosticFiles(daemon.Pid).Length > 0);
        Assert.True(daemon.Terminate(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, daemon.ExitCode);
    }
}

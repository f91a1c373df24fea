using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Config;
using Tunnel.Transport;
using Tunnel.Uapi;

namespace Tunneld;

/// <summary>
/// <c>tunneld [-f|--foreground] IFNAME</c>: wireguard-go's command line, which wg-quick runs as
/// <c>$WG_QUICK_USERSPACE_IMPLEMENTATION IFNAME</c>. It creates the interface and its UAPI socket
/// for an empty device (no key, no peers, no addresses: wg and wg-quick configure it), then goes to
/// the background (see <see cref="Background"/>) and returns 0 once the socket is served.
/// <c>-f</c> or <c>WG_PROCESS_FOREGROUND=1</c> stays in the foreground. Fork options come from the
/// environment (<see cref="UpOptions.TryParseEnvironment"/>), since wg-quick passes no flags.
/// The daemon exits, keys zeroed and socket removed, on SIGTERM or when the interface is deleted
/// (all <c>wg-quick down</c> does).
/// </summary>
internal static class InterfaceCommand
{
    public static async Task<int> RunAsync(string interfaceName, bool foreground)
    {
        if (!UpOptions.TryParseEnvironment(interfaceName, out var options, out var problem))
        {
            Console.Error.WriteLine($"tunneld: {problem}");
            return 2;
        }
        using var signals = DaemonHost.HandleSignals(() => null);
        foreground |= Environment.GetEnvironmentVariable(Background.ForegroundVariable) == "1";
        var tunFd = Background.InheritedDescriptor(Background.TunFdVariable);
        var uapiFd = Background.InheritedDescriptor(Background.UapiFdVariable);

        LinuxTun tun;
        Socket listener;
        try
        {
            tun = tunFd >= 0 ? LinuxTun.FromDescriptor(tunFd) : LinuxTun.Create(interfaceName, offload: true);
        }
        catch (TunException e)
        {
            Console.Error.WriteLine($"tunneld: {e.Message}");
            return 1;
        }
        try
        {
            listener = uapiFd >= 0 ? new Socket(new SafeSocketHandle(uapiFd, ownsHandle: true)) : UapiServer.Listen(tun.Name);
        }
        catch (Exception e) when (e is UapiServerException or SocketException)
        {
            Console.Error.WriteLine($"tunneld: {e.Message}");
            tun.Dispose();
            return 1;
        }

        if (!foreground)
        {
            var exit = Background.Launch(tun.Name, tun.Descriptor, (int)listener.SafeHandle.DangerousGetHandle(), [tun.Name]);
            if (exit != 0)
                TryDelete(Path.Combine(new UapiServerOptions().SocketDirectory, tun.Name + ".sock"));
            // The child holds its own copies, so closing the TUN here does not delete the interface.
            // The listener is left to the exit: Socket.Dispose would unlink the path it bound,
            // which is the child's socket now.
            tun.Dispose();
            GC.KeepAlive(listener);
            return exit;
        }

        using var host = DaemonHost.Build();
        var loggers = host.Services.GetRequiredService<ILoggerFactory>();
        var forkExit = ForkSetup.TryCreate(options!, loggers, out var fork);
        if (forkExit != 0)
        {
            listener.Dispose();
            tun.Dispose();
            return forkExit;
        }
        var daemon = new TunnelInterface(TunnelConfig.Empty(tun.Name), tun.Name, loggers,
            new UapiServerOptions { Listener = listener }, fork, tun) { CryptoWorkers = options!.CryptoWorkers };
        var startExit = await DaemonHost.StartAsync(daemon, 0);
        if (startExit != 0)
            return startExit;
        Background.SignalReady();
        return await DaemonHost.RunAsync(host, daemon);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}

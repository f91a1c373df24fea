using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Transport;
using Tunnel.Uapi;

namespace Tunneld;

/// <summary>
/// The process around a running <see cref="TunnelInterface"/>, for both ways of starting one
/// (<c>tunneld up FILE</c> and <c>tunneld IFNAME</c>): logging, READY=1 / STOPPING=1, SIGTERM and
/// SIGINT stop it, the interface going away stops it, SIGHUP reloads (when there is a file) and
/// SIGUSR1 / SIGUSR2 are ignored, so none of them kills the daemon without its clean-up.
/// </summary>
internal static class DaemonHost
{
    private const int SIGUSR1 = 10;
    private const int SIGUSR2 = 12;

    /// <summary>
    /// The host, logging to stderr. <c>LOG_LEVEL</c> (wireguard-go's variable: verbose or debug,
    /// error, silent) sets the level; <c>Logging__LogLevel__Default</c> still wins where given.
    /// </summary>
    public static IHost Build()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        switch (Environment.GetEnvironmentVariable("LOG_LEVEL"))
        {
            case "verbose" or "debug":
                builder.Logging.SetMinimumLevel(LogLevel.Debug);
                break;
            case "error":
                builder.Logging.SetMinimumLevel(LogLevel.Error);
                break;
            case "silent":
                builder.Logging.SetMinimumLevel(LogLevel.None);
                break;
        }
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        return builder.Build();
    }

    /// <summary>Starts <paramref name="daemon"/>: 0, or 1 having printed why and disposed it.</summary>
    public static async Task<int> StartAsync(TunnelInterface daemon, ushort listenPort)
    {
        try
        {
            daemon.Start();
            return 0;
        }
        catch (Exception e) when (e is TunException or UapiServerException or SocketException)
        {
            var message = e is SocketException s && s.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"UDP port {listenPort} is already in use"
                : e.Message;
            Console.Error.WriteLine($"tunneld: {message}");
            await daemon.DisposeAsync();
            return 1;
        }
    }

    /// <summary>
    /// Takes SIGHUP, SIGUSR1 and SIGUSR2 from their default action (terminate, with no clean-up):
    /// SIGHUP runs <paramref name="reload"/> (null: nothing), the other two do nothing. Called
    /// before anything is created, so no signal can arrive in between; dispose at exit.
    /// </summary>
    public static IDisposable HandleSignals(Func<Action?> reload)
    {
        var registrations = new CompositeRegistration();
        registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            reload()?.Invoke();
        }));
        registrations.Add(PosixSignalRegistration.Create((PosixSignal)SIGUSR1, context => context.Cancel = true));
        registrations.Add(PosixSignalRegistration.Create((PosixSignal)SIGUSR2, context => context.Cancel = true));
        return registrations;
    }

    private sealed class CompositeRegistration : IDisposable
    {
        private readonly List<IDisposable> _items = [];

        public void Add(IDisposable item) => _items.Add(item);

        public void Dispose()
        {
            foreach (var item in _items)
                item.Dispose();
        }
    }

    /// <summary>Runs the started <paramref name="daemon"/> until it is stopped, then tears it down.</summary>
    public static async Task<int> RunAsync(IHost host, TunnelInterface daemon)
    {
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        // From the TUN reader's thread: the stop itself must run elsewhere, as it joins that thread.
        using var gone = daemon.InterfaceGone.Register(() => ThreadPool.QueueUserWorkItem(_ => lifetime.StopApplication()));
        var service = new DaemonService(daemon, lifetime);
        await service.StartAsync(CancellationToken.None);
        try
        {
            await host.RunAsync();
        }
        finally
        {
            await service.StopAsync(CancellationToken.None);
        }
        return 0;
    }
}

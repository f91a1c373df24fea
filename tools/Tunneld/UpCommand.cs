using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Config;
using Tunnel.Transport;
using Tunnel.Uapi;

namespace Tunneld;

/// <summary><c>tunneld up CONFIG [options]</c> (see <see cref="UpOptions"/>): runs in the foreground until SIGTERM/SIGINT.</summary>
internal static class UpCommand
{
    public static async Task<int> RunAsync(UpOptions options)
    {
        var configPath = options.ConfigPath;
        var interfaceName = options.InterfaceName ?? Path.GetFileNameWithoutExtension(configPath);
        if (!UapiServer.IsValidInterfaceName(interfaceName))
        {
            Console.Error.WriteLine($"tunneld: '{interfaceName}' is not a valid interface name (1-15 characters, no '/', ':' or spaces); use --interface NAME");
            return 2;
        }

        // The whole file is validated before anything is created.
        TunnelConfig config;
        try
        {
            config = new ConfigParser().ParseFile(configPath);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"tunneld: {e.Message}");
            return 2;
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        using var host = builder.Build();

        var loggers = host.Services.GetRequiredService<ILoggerFactory>();
        var log = loggers.CreateLogger("tunneld");
        foreach (var warning in config.Warnings)
            log.LogWarning("{Warning}", warning);
        WarnIfReadableByOthers(configPath, log);

        var forkExit = ForkSetup.TryCreate(options, loggers, out var fork);
        if (forkExit != 0)
        {
            config.Dispose();
            return forkExit;
        }
        var daemon = new TunnelInterface(config, interfaceName, loggers, fork: fork);
        try
        {
            daemon.Start();
        }
        catch (Exception e) when (e is TunException or UapiServerException or SocketException)
        {
            var message = e is SocketException s && s.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"UDP port {config.Interface.ListenPort} is already in use"
                : e.Message;
            Console.Error.WriteLine($"tunneld: {message}");
            await daemon.DisposeAsync();
            return 1;
        }

        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
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

    /// <summary>The file holds the private key: say so when others can read it, as wg-quick does.</summary>
    private static void WarnIfReadableByOthers(string path, ILogger log)
    {
        if (OperatingSystem.IsWindows())
            return;
        const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if ((File.GetUnixFileMode(path) & others) != 0)
            log.LogWarning("{Path} is readable by other users and holds a private key (chmod 600 it)", path);
    }
}

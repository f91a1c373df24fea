using Microsoft.Extensions.DependencyInjection;
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

        Action? reload = null;
        using var signals = DaemonHost.HandleSignals(() => reload);
        using var host = DaemonHost.Build();

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
        var listenPort = config.Interface.ListenPort;
        // The daemon owns the parsed file from here; it zeroes and lets go of it once applied.
        var daemon = new TunnelInterface(config, interfaceName, loggers, fork: fork) { CryptoWorkers = options.CryptoWorkers };
        // Before Start: a SIGHUP that comes as soon as the socket exists must find the reload.
        reload = () => Reload(daemon, configPath, log);
        var startExit = await DaemonHost.StartAsync(daemon, listenPort);
        if (startExit != 0)
            return startExit;
        return await DaemonHost.RunAsync(host, daemon);
    }

    /// <summary>
    /// SIGHUP: reads the file again and applies it as <c>wg syncconf</c> would, whole or not at all;
    /// a file that does not parse (or a port that cannot be bound) changes nothing and is logged.
    /// </summary>
    private static void Reload(TunnelInterface daemon, string path, ILogger log)
    {
        TunnelConfig config;
        try
        {
            config = new ConfigParser().ParseFile(path);
        }
        catch (ConfigException e)
        {
            log.LogError("SIGHUP: {Problem}; nothing changed", e.Message);
            return;
        }
        using (config)
        {
            foreach (var warning in config.Warnings)
                log.LogWarning("{Warning}", warning);
            int errno;
            try
            {
                errno = daemon.Sync(config);
            }
            catch (InvalidOperationException)
            {
                log.LogError("SIGHUP before the interface was up; nothing changed");
                return;
            }
            if (errno == UapiErrno.Ok)
                log.LogInformation("SIGHUP: {Path} reloaded: {Peers} peer(s)", path, config.Peers.Count);
            else
                log.LogError("SIGHUP: {Path} not applied (errno {Errno}); nothing changed", path, errno);
        }
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

using Microsoft.Extensions.Hosting;
using Tunnel.Transport;

namespace Tunneld;

/// <summary>
/// Ties the already-started daemon to the host's lifetime: READY=1 once running, STOPPING=1 and a
/// full teardown on SIGTERM / SIGINT.
/// </summary>
internal sealed class DaemonService(TunnelInterface daemon, IHostApplicationLifetime lifetime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => SdNotify.Send("READY=1"));
        lifetime.ApplicationStopping.Register(() => SdNotify.Send("STOPPING=1"));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await daemon.DisposeAsync();
}

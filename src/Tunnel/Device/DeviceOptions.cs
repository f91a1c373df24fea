using ForkNotify;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Tunnel.Device;

/// <summary>What a <see cref="TunnelDevice"/> reads time and randomness from, and logs to.</summary>
public sealed class DeviceOptions
{
    public IClock Clock { get; init; } = SystemClock.Instance;

    /// <summary>Ephemeral keys, session indexes, cookie secrets and timer jitter all come from here.</summary>
    public IRandomGenerator Random { get; init; } = OsRandomGenerator.Instance;

    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>The interface name (wg0, ...), used in logs and as the fork guard's watcher name.</summary>
    public string Name { get; init; } = "tunnel";
}

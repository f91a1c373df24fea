using Microsoft.Extensions.Logging;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// Says when a peer completes a handshake (public key shortened, no secrets). Called from the
/// timer thread only; remembers per peer the last handshake time it logged. It walks the peers
/// only after the device counted a new handshake: a hub of 100,000 idle peers would otherwise
/// spend about 1 % of a core walking them every second for nothing.
/// </summary>
internal sealed class HandshakeLog(ILogger log)
{
    private readonly Dictionary<Peer, DateTimeOffset?> _logged = new(ReferenceEqualityComparer.Instance);
    private long _seenCompleted;

    public void LogNew(TunnelDevice device)
    {
        if (!log.IsEnabled(LogLevel.Information))
            return;
        var completed = device.HandshakesCompleted;
        if (completed == _seenCompleted)
            return;
        _seenCompleted = completed;
        Span<byte> publicKey = stackalloc byte[Tunnel.Crypto.PublicKey.Size];
        var peers = device.Peers;
        if (_logged.Count > peers.Count)
            _logged.Clear(); // peers were removed: forget them (a survivor may log once more)
        foreach (var peer in peers)
        {
            var when = peer.LastHandshakeTime;
            if (when is null || _logged.TryGetValue(peer, out var logged) && logged == when)
                continue;
            _logged[peer] = when;
            peer.CopyPublicKey(publicKey);
            var text = Convert.ToBase64String(publicKey);
            log.LogInformation("peer {Peer}: handshake completed, endpoint {Endpoint}",
                $"{text[..4]}...{text[^5..^1]}", peer.Endpoint?.ToString() ?? "none");
        }
    }
}

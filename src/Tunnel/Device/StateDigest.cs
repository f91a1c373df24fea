using System.Security.Cryptography;

namespace Tunnel.Device;

public sealed partial class TunnelDevice
{
    /// <summary>
    /// A SHA-256 over every piece of protocol state the device holds: per peer the handshake (stage,
    /// indexes, last timestamps received and sent, generation, a hash of the Noise state), the
    /// cookie generator, the keypairs (indexes, send counters, replay windows, sendability,
    /// generation), the timers, the endpoint, the counters and staged packets; and the device's
    /// index count, rate-limiter size and stale-key drops. Two equal digests
    /// mean no input changed anything; tests use it to prove bad input is dropped without effect.
    /// Key material enters only hashed, and the digest never leaves the assembly.
    /// </summary>
    internal byte[] StateDigest()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            // The load window is left out on purpose: it is traffic accounting, and every handshake
            // message with a valid mac1 must count towards it, good or bad.
            writer.Write(Indexes.Count);
            writer.Write(_rateLimiter.Count);
            writer.Write(Fork.StaleKeyDrops);
            foreach (Peer peer in Volatile.Read(ref _peerList))
                peer.WriteState(writer);
        }
        return SHA256.HashData(stream.ToArray());
    }
}

public sealed partial class Peer
{
    internal void WriteState(BinaryWriter writer)
    {
        writer.Write(_publicKey.Bytes);
        lock (_lock)
        {
            writer.Write(_handshakeIndex);
            writer.Write(_handshakeGeneration);
            writer.Write(_handshakeDeferred);
            writer.Write(_lastSentTimestamp.Seconds);
            writer.Write(_lastSentTimestamp.Nanoseconds);
            writer.Write(_hasEndpoint);
            writer.Write(_endpoint.ToString());
            writer.Write(_removed);
            if (_handshake is { } handshake)
            {
                lock (handshake.SyncRoot)
                {
                    writer.Write((int)handshake.StageUnlocked);
                    writer.Write(handshake.LocalIndexUnlocked);
                    writer.Write(handshake.RemoteIndexUnlocked);
                    writer.Write(handshake.LastTimestampUnlocked.Seconds);
                    writer.Write(handshake.LastTimestampUnlocked.Nanoseconds);
                    writer.Write(handshake.LastInitiationConsumedUnlocked?.Ticks ?? -1);
                    writer.Write(SHA256.HashData(handshake.NoiseStateOrZeros));
                }
            }
            WriteKeypair(writer, Keypairs.Previous);
            WriteKeypair(writer, Keypairs.Current);
            WriteKeypair(writer, Keypairs.Next);
        }
        if (Volatile.Read(ref _cookieGenerator) is { } generator)
            generator.WriteState(writer);
        else
            CookieGenerator.WriteInitialState(writer);
        WriteTimerState(writer);
        writer.Write(RxBytes);
        writer.Write(TxBytes);
        writer.Write(Volatile.Read(ref _lastHandshakeUtcTicks));
        writer.Write(_staged.Count);
    }

    private static void WriteKeypair(BinaryWriter writer, Keypair? keypair)
    {
        if (keypair is null)
        {
            writer.Write(false);
            return;
        }
        writer.Write(true);
        writer.Write(keypair.LocalIndex);
        writer.Write(keypair.RemoteIndex);
        writer.Write(keypair.IsInitiator);
        writer.Write(keypair.CreatedNanos);
        writer.Write(keypair.CreatedGeneration);
        writer.Write(keypair.SendNonce);
        writer.Write(keypair.CanSend);
        writer.Write(keypair.IsZeroed);
        keypair.ReplayFilter.WriteState(writer);
    }
}

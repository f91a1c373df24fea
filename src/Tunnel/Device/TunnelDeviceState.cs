using System.Net;
using System.Security.Cryptography;
using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// Everything a VM snapshot copies of a <see cref="TunnelDevice"/>, made by
/// <see cref="TunnelDevice.CaptureState"/>: the private key, the peers with their configuration,
/// handshakes, keypairs (keys, send counters, replay windows, creation time and generation,
/// indexes), cookie state, timers, endpoints, counters and staged packets, the index table, the
/// rate limiter, and the fork seam's reseed gate. Immutable once made, so any
/// number of devices may be restored from it. Key material sits in pinned buffers that
/// <see cref="Dispose"/> zeroes; the object never prints it.
/// </summary>
public sealed class TunnelDeviceState : IDisposable
{
    private readonly List<byte[]> _secrets = [];
    private bool _disposed;

    internal TunnelDeviceState() { }

    /// <summary>Peers in the snapshot.</summary>
    public int PeerCount => Peers.Length;

    public bool IsDisposed => _disposed;

    // ---- device ----
    internal byte[]? PrivateKey;
    internal byte[]? CookieSecret;
    internal TimeSpan? CookieSecretSet;
    internal ushort ListenPort;
    internal uint Fwmark;
    internal int Mtu;
    internal bool ForceUnderLoad;
    internal long LoadWindowStart;
    internal int LoadWindowCount;
    internal long UnderLoadUntil;
    internal ForkSeamState Fork;
    internal RateLimiterState RateLimiter = null!;
    internal PeerCapture[] Peers = [];
    internal IndexCapture[] Indexes = [];

    /// <summary>A pinned copy of <paramref name="secret"/>, zeroed when this state is disposed.</summary>
    internal byte[] Secret(ReadOnlySpan<byte> secret)
    {
        byte[] copy = GC.AllocateArray<byte>(secret.Length, pinned: true);
        secret.CopyTo(copy);
        _secrets.Add(copy);
        return copy;
    }

    internal byte[] NewSecret(int length) => Secret(stackalloc byte[length]);

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Zeroes every key, cookie and handshake state held; the object is unusable afterwards.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (byte[] secret in _secrets)
            CryptographicOperations.ZeroMemory(secret);
    }

    /// <summary>
    /// A SHA-256 over the whole state, secrets included: equal for two captures exactly when a
    /// restore reproduced everything. For tests; never leaves the assembly.
    /// </summary>
    internal byte[] Digest()
    {
        ThrowIfDisposed();
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream))
        {
            WriteBytes(w, PrivateKey);
            WriteBytes(w, CookieSecret);
            w.Write(CookieSecretSet?.Ticks ?? -1);
            w.Write(ListenPort);
            w.Write(Fwmark);
            w.Write(Mtu);
            w.Write(ForceUnderLoad);
            w.Write(LoadWindowStart);
            w.Write(LoadWindowCount);
            w.Write(UnderLoadUntil);
            w.Write(Fork.StaleKeyDrops);
            w.Write(Fork.Gate);
            w.Write(Fork.ReseededGeneration);
            w.Write(Fork.Held);
            foreach (var b in RateLimiter.V4.OrderBy(b => b.Key))
                w.Write($"{b.Key}/{b.LastNanos}/{b.Tokens}");
            foreach (var b in RateLimiter.V6.OrderBy(b => b.Key))
                w.Write($"{b.Key}/{b.LastNanos}/{b.Tokens}");
            w.Write(RateLimiter.LastCollection);
            foreach (PeerCapture p in Peers)
                p.Write(w);
            foreach (IndexCapture i in Indexes.OrderBy(i => i.Index))
                w.Write($"{i.Index}/{i.Peer}/{i.Slot}");
        }
        return SHA256.HashData(stream.ToArray());
    }

    internal static void WriteBytes(BinaryWriter w, byte[]? bytes)
    {
        w.Write(bytes?.Length ?? -1);
        if (bytes is not null)
            w.Write(bytes);
    }

    public override string ToString() => $"TunnelDeviceState({PeerCount} peers{(_disposed ? ", disposed" : "")})";
}

/// <summary>Which keypair slot of a peer.</summary>
internal enum KeypairSlot
{
    None = -1,
    Previous = 0,
    Current = 1,
    Next = 2,
}

/// <summary>One index-table entry: a peer's pending handshake (<see cref="KeypairSlot.None"/>) or one of its keypairs.</summary>
internal readonly record struct IndexCapture(uint Index, int Peer, KeypairSlot Slot);

internal sealed class HandshakeCapture
{
    public HandshakeStage Stage;
    public uint LocalIndex;
    public uint RemoteIndex;
    public Tai64N LastTimestamp;
    public TimeSpan? LastInitiationConsumed;
    public byte[] NoiseState = null!;
}

internal sealed class KeypairCapture
{
    public byte[] SendKey = null!;
    public byte[] ReceiveKey = null!;
    public bool IsInitiator;
    public uint LocalIndex;
    public uint RemoteIndex;
    public long CreatedNanos;
    public ulong CreatedGeneration;
    public ulong SendNonce;
    public bool CanSend;
    public ReplayFilter ReplayFilter = null!;

    public void Write(BinaryWriter w)
    {
        TunnelDeviceState.WriteBytes(w, SendKey);
        TunnelDeviceState.WriteBytes(w, ReceiveKey);
        w.Write($"{IsInitiator}/{LocalIndex}/{RemoteIndex}/{CreatedNanos}/{CreatedGeneration}/{SendNonce}/{CanSend}");
        ReplayFilter.WriteState(w);
    }
}

internal sealed class PeerCapture
{
    public PublicKey PublicKey;
    public byte[] PresharedKey = null!;
    public HandshakeCapture? Handshake;
    public uint HandshakeIndex;
    public ulong HandshakeGeneration;
    public bool HandshakeDeferred;
    public Tai64N LastSentTimestamp;
    public Endpoint Endpoint;
    public bool HasEndpoint;
    public long RxBytes;
    public long TxBytes;
    public long LastHandshakeUtcTicks;
    public ushort PersistentKeepaliveInterval;
    public KeypairCapture? Previous;
    public KeypairCapture? Current;
    public KeypairCapture? Next;
    public IPNetwork[] AllowedIps = [];

    // cookie generator
    public byte[] Cookie = null!;
    public byte[] LastMac1 = null!;
    public bool HasLastMac1;
    public TimeSpan? CookieSet;

    // timers
    public long RetransmitHandshakeDeadline;
    public long SendKeepaliveDeadline;
    public long NewHandshakeDeadline;
    public long ZeroKeyMaterialDeadline;
    public long PersistentKeepaliveDeadline;
    public int HandshakeAttempts;
    public bool NeedAnotherKeepalive;
    public bool SentLastMinuteHandshake;
    public long LastSentHandshakeNanos;
    public bool HasSentHandshake;
    public long InitiationNotBeforeNanos;
    public long LastTrafficNanos;

    public byte[][] Staged = [];

    public KeypairCapture? this[KeypairSlot slot] => slot switch
    {
        KeypairSlot.Previous => Previous,
        KeypairSlot.Current => Current,
        KeypairSlot.Next => Next,
        _ => null,
    };

    public void Write(BinaryWriter w)
    {
        w.Write(PublicKey.Bytes);
        TunnelDeviceState.WriteBytes(w, PresharedKey);
        if (Handshake is { } h)
        {
            w.Write($"{h.Stage}/{h.LocalIndex}/{h.RemoteIndex}/{h.LastTimestamp}/{h.LastInitiationConsumed?.Ticks}");
            TunnelDeviceState.WriteBytes(w, h.NoiseState);
        }
        w.Write($"{HandshakeIndex}/{HandshakeGeneration}/{HandshakeDeferred}/{LastSentTimestamp}/{Endpoint}/{HasEndpoint}/{RxBytes}/{TxBytes}/{LastHandshakeUtcTicks}/{PersistentKeepaliveInterval}");
        foreach (KeypairCapture? k in new[] { Previous, Current, Next })
        {
            w.Write(k is not null);
            k?.Write(w);
        }
        foreach (IPNetwork n in AllowedIps)
            w.Write(n.ToString());
        TunnelDeviceState.WriteBytes(w, Cookie);
        TunnelDeviceState.WriteBytes(w, LastMac1);
        w.Write($"{HasLastMac1}/{CookieSet?.Ticks}");
        w.Write($"{RetransmitHandshakeDeadline}/{SendKeepaliveDeadline}/{NewHandshakeDeadline}/{ZeroKeyMaterialDeadline}/{PersistentKeepaliveDeadline}");
        w.Write($"{HandshakeAttempts}/{NeedAnotherKeepalive}/{SentLastMinuteHandshake}/{LastSentHandshakeNanos}/{HasSentHandshake}/{InitiationNotBeforeNanos}/{LastTrafficNanos}");
        foreach (byte[] packet in Staged)
            TunnelDeviceState.WriteBytes(w, packet);
    }
}

using System.Buffers.Binary;
using System.Diagnostics;
using ForkNotify;
using Microsoft.Extensions.Logging;
using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// What the benchmarked device emits: every datagram is dropped after its type and time are noted
/// (no copy, no allocation), so only the engine's own work is measured. While
/// <see cref="Capture"/> is set (handshake set-up only) datagrams are copied into
/// <see cref="Captured"/> so that they can be delivered to the other side.
/// </summary>
internal sealed class DiscardingIo : IDeviceIo
{
    public bool Capture { get; set; }
    public List<byte[]> Captured { get; } = [];

    /// <summary>Datagrams handed over since the last <see cref="ResetCounts"/>.</summary>
    public int Sent { get; private set; }

    /// <summary>Stopwatch time of the first and the last handshake initiation since the last reset (0: none).</summary>
    public long FirstInitiationTicks { get; private set; }
    public long LastInitiationTicks { get; private set; }
    public int Initiations { get; private set; }

    public void ResetCounts()
    {
        Sent = 0;
        Initiations = 0;
        FirstInitiationTicks = 0;
        LastInitiationTicks = 0;
    }

    /// <summary>The engine's call for a checked message (the daemon's InterfaceIo implements it too).</summary>
    public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to, ulong generation) => SendDatagram(datagram, to);

    public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        Sent++;
        if (datagram.Length == MessageInitiation.Size && datagram[0] == (byte)MessageType.Initiation)
        {
            long now = Stopwatch.GetTimestamp();
            if (Initiations++ == 0)
                FirstInitiationTicks = now;
            LastInitiationTicks = now;
        }
        if (Capture)
            Captured.Add(datagram.ToArray());
    }

    public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from)
    {
    }
}

/// <summary>
/// Notes the moment the fork guard reports "cleared every session": it logs that line right
/// after <see cref="TunnelDevice.ClearAllSessions"/> returns and before the first new initiation,
/// so it marks "all keys zeroed" on the fork-reaction timeline. Formats nothing.
/// </summary>
internal sealed class ClearedMarkLogger : ILogger
{
    public long ClearedTicks { get; set; }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel == LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
        Func<TState, Exception?, string> formatter)
    {
        if (logLevel == LogLevel.Information && ClearedTicks == 0)
            ClearedTicks = Stopwatch.GetTimestamp();
    }
}

/// <summary>
/// The device under test for the fork-guard benchmarks: device A in a guest kernel
/// (<see cref="ForkKernel"/>, whose fork-safe generator is A's randomness) under a
/// <see cref="ForkGuard"/> of the given mode, on a <see cref="VirtualClock"/> that only moves when
/// told (so REKEY_AFTER_TIME never fires in the middle of a measurement), emitting into a
/// <see cref="DiscardingIo"/>. The hot-path modes read a <see cref="VmGeneration"/> as the pull
/// counter: one volatile load behind the interface, like a mapped vmgenid CTRA word.
/// </summary>
internal sealed class GuardedDevice : IDisposable
{
    public static readonly Endpoint EndpointA = Parse("192.0.2.1:51820");
    public static readonly Endpoint EndpointB = Parse("192.0.2.2:51821");
    public static readonly byte[] AddressA = [10, 9, 0, 1];
    public static readonly byte[] AddressB = [10, 9, 0, 2];

    private uint _vmId = 1;

    public GuardedDevice(ForkGuardMode mode)
    {
        Kernel = new ForkKernel(RandomBytes(32));
        Kernel.SetBootVmId(VmId(_vmId));
        A = new TunnelDevice(new DeviceOptions { Clock = Clock, Random = Kernel.Random, Name = "bench" }, Io);
        A.SetPrivateKey(RandomBytes(32));
        bool hotPath = mode is ForkGuardMode.HotPath or ForkGuardMode.Both;
        Guard = new ForkGuard(A, Kernel, mode, hotPath ? Counter : null, Logger);
    }

    public VirtualClock Clock { get; } = new();
    public DiscardingIo Io { get; } = new();
    public ClearedMarkLogger Logger { get; } = new();
    public ForkKernel Kernel { get; }
    public VmGeneration Counter { get; } = new(7);
    public TunnelDevice A { get; }
    public ForkGuard Guard { get; }

    /// <summary>
    /// A real handshake with a second device B (B's datagrams delivered in memory), so that A has
    /// one established peer whose current keypair can send. Returns A's peer for B.
    /// </summary>
    public Peer EstablishWithB()
    {
        var ioB = new DiscardingIo { Capture = true };
        using var b = new TunnelDevice(new DeviceOptions { Clock = Clock }, ioB);
        b.SetPrivateKey(RandomBytes(32));
        byte[] publicA = new byte[PublicKey.Size], publicB = new byte[PublicKey.Size];
        A.CopyPublicKey(publicA);
        b.CopyPublicKey(publicB);
        Peer peerB = A.AddPeer(publicB);
        peerB.Endpoint = EndpointB;
        A.AllowedIps.Insert(AddressB, 32, peerB);
        Peer peerA = b.AddPeer(publicA);
        b.AllowedIps.Insert(AddressA, 32, peerA);

        Io.Capture = true;
        A.SendPacket(Packet(64));
        for (int round = 0; round < 4 && (Io.Captured.Count > 0 || ioB.Captured.Count > 0); round++)
        {
            foreach (byte[] d in Io.Captured)
                b.ReceiveDatagram(d, EndpointA);
            Io.Captured.Clear();
            foreach (byte[] d in ioB.Captured)
                A.ReceiveDatagram(d, EndpointB);
            ioB.Captured.Clear();
        }
        Io.Capture = false;
        Io.ResetCounts();
        if (peerB.Keypairs.Current is not { CanSend: true } || peerA.Keypairs.Current is null)
            throw new InvalidOperationException("the handshake with B did not complete");
        return peerB;
    }

    /// <summary>
    /// <paramref name="count"/> peers with random public keys, each with an endpoint and one
    /// /32 route (10.x.y.z). Adding a peer precomputes its static-static DH: ~30 us each.
    /// </summary>
    public Peer[] AddPeers(int count)
    {
        var peers = new Peer[count];
        byte[] key = new byte[PublicKey.Size];
        byte[] address = new byte[4];
        for (int i = 0; i < count; i++)
        {
            OsRandomGenerator.Instance.Fill(key);
            peers[i] = A.AddPeer(key);
            peers[i].Endpoint = EndpointB;
            BinaryPrimitives.WriteUInt32BigEndian(address, 0x0A000000u + 0x100u + (uint)i);
            A.AllowedIps.Insert(address, 32, peers[i]);
        }
        return peers;
    }

    /// <summary>
    /// Gives every peer a current keypair (random keys, an index in A's table, generation = the
    /// counter now) without a handshake: the engine's own derivation path minus the Noise work,
    /// so that 100,000 sessions take well under a second to set up instead of a minute.
    /// </summary>
    public void InstallKeypairs(Peer[] peers)
    {
        Span<byte> send = stackalloc byte[32];
        Span<byte> receive = stackalloc byte[32];
        Span<byte> remote = stackalloc byte[4];
        long now = Clock.MonotonicNanos;
        ulong generation = A.Fork.Counter?.Read() ?? 0;
        foreach (Peer peer in peers)
        {
            OsRandomGenerator.Instance.Fill(send);
            OsRandomGenerator.Instance.Fill(receive);
            OsRandomGenerator.Instance.Fill(remote);
            uint local = A.Indexes.Insert(peer);
            var keys = new SessionKeys(send, receive, isInitiator: true, local, BinaryPrimitives.ReadUInt32LittleEndian(remote));
            var keypair = new Keypair(keys, peer, now, generation);
            if (!A.Indexes.Replace(local, peer, keypair))
                throw new InvalidOperationException("index table refused the keypair");
            peer.Keypairs.Add(keypair, out Keypair? retiredA, out Keypair? retiredB);
            if (retiredA is not null || retiredB is not null)
                throw new InvalidOperationException("a peer still had a keypair");
        }
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(send);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(receive);
    }

    /// <summary>
    /// What the VMM does to a restored clone before its vCPUs run: a second later (past the
    /// responder's initiation flood limit, so every initiation may leave at once), the pull
    /// counter moves. The notification itself is <see cref="Notify"/>.
    /// </summary>
    public void ResumeAsClone()
    {
        Clock.Advance(TimeSpan.FromSeconds(1));
        Counter.Advance();
        Logger.ClearedTicks = 0;
        Io.ResetCounts();
    }

    /// <summary>The clone's vmgenid driver sees a new VM ID: the kernel's fork path (reseed, generation, PM chain).</summary>
    public void Notify()
    {
        if (!Kernel.AddVmForkRandomness(VmId(++_vmId)))
            throw new InvalidOperationException("the kernel did not take the new VM ID");
    }

    /// <summary>
    /// The host's timer thread once the notification woke it: ticks the device until the paced
    /// rekey is done, moving the virtual clock straight to each next slot (so the wall time is the
    /// engine's work alone, not the pacing's waits).
    /// </summary>
    public void DrainRekey()
    {
        while (true)
        {
            A.Tick();
            if (A.Rekey.Pending == 0)
                return;
            long wait = A.Rekey.NextDue - Clock.MonotonicNanos;
            if (wait > 0)
                Clock.AdvanceNanos(wait);
        }
    }

    public static byte[] Packet(int totalLength)
    {
        byte[] packet = new byte[totalLength];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)totalLength);
        packet[8] = 64;
        packet[9] = 17;
        AddressA.CopyTo(packet, 12);
        AddressB.CopyTo(packet, 16);
        for (int i = 20; i < totalLength; i++)
            packet[i] = (byte)i;
        return packet;
    }

    private static byte[] VmId(uint n)
    {
        byte[] id = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(id, n);
        id[4] = 0xbe;
        return id;
    }

    private static byte[] RandomBytes(int n)
    {
        byte[] bytes = new byte[n];
        OsRandomGenerator.Instance.Fill(bytes);
        return bytes;
    }

    private static Endpoint Parse(string text) =>
        Endpoint.TryParse(text, out Endpoint ep) ? ep : throw new ArgumentException(text);

    public void Dispose()
    {
        Guard.Dispose();
        A.Dispose();
    }
}

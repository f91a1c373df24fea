using System.Buffers.Binary;
using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Tests.Noise;

namespace Tunnel.Tests.Device.Engine;

/// <summary>A datagram or packet an in-memory device emitted.</summary>
internal readonly record struct Datagram(byte[] Bytes, Endpoint To)
{
    public MessageType Type => MessageHeader.ReadType(Bytes);
}

/// <summary>Records what a device emits, for the test to inspect and deliver.</summary>
internal sealed class RecordingIo : IDeviceIo
{
    public List<Datagram> Sent { get; } = [];
    public List<byte[]> Delivered { get; } = [];

    /// <summary>Runs inside the device's send or deliver call, after recording (for tests that act mid-packet).</summary>
    public Action? During { get; set; }

    public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        Sent.Add(new Datagram(datagram.ToArray(), to));
        During?.Invoke();
    }

    public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from)
    {
        Delivered.Add(ipPacket.ToArray());
        During?.Invoke();
    }

    /// <summary>Takes (and forgets) everything sent so far.</summary>
    public List<Datagram> TakeSent()
    {
        var sent = new List<Datagram>(Sent);
        Sent.Clear();
        return sent;
    }
}

/// <summary>
/// Two devices, A (10.9.0.1) and B (10.9.0.2), each the other's peer, in virtual time with seeded
/// randomness. A knows B's endpoint; B learns A's from the first authenticated packet.
/// </summary>
internal sealed class DevicePair : IDisposable
{
    public static readonly Endpoint EndpointA = Parse("192.0.2.1:51820");
    public static readonly Endpoint EndpointB = Parse("192.0.2.2:51821");
    public static readonly byte[] AddressA = [10, 9, 0, 1];
    public static readonly byte[] AddressB = [10, 9, 0, 2];

    public VirtualClock Clock { get; } = new();
    public RecordingIo IoA { get; } = new();
    public RecordingIo IoB { get; } = new();
    public TunnelDevice A { get; }
    public TunnelDevice B { get; }
    /// <summary>A's peer object for B, and B's for A.</summary>
    public Peer PeerB { get; }
    public Peer PeerA { get; }
    public byte[] PublicA { get; } = new byte[32];
    public byte[] PublicB { get; } = new byte[32];
    /// <summary>Every datagram <see cref="Pump"/> delivered, in order, for tests that replay or mutate them.</summary>
    public List<Datagram> History { get; } = [];

    /// <param name="randomA">A's randomness (default: seeded from <paramref name="seed"/>), e.g. a guest kernel's.</param>
    public DevicePair(int seed = 1, bool bKnowsA = false, ForkNotify.IRandomGenerator? randomA = null)
    {
        A = new TunnelDevice(new DeviceOptions
        {
            Clock = Clock, Random = randomA ?? new SeededRandom(seed), Name = "a",
        }, IoA);
        B = new TunnelDevice(new DeviceOptions { Clock = Clock, Random = new SeededRandom(seed + 1000) }, IoB);
        var keys = new SeededRandom(seed + 2000);
        byte[] secret = new byte[32];
        keys.Fill(secret);
        A.SetPrivateKey(secret);
        keys.Fill(secret);
        B.SetPrivateKey(secret);
        A.CopyPublicKey(PublicA);
        B.CopyPublicKey(PublicB);
        PeerB = A.AddPeer(PublicB);
        PeerA = B.AddPeer(PublicA);
        PeerB.Endpoint = EndpointB;
        if (bKnowsA)
            PeerA.Endpoint = EndpointA;
        A.AllowedIps.Insert(AddressB, 32, PeerB);
        B.AllowedIps.Insert(AddressA, 32, PeerA);
    }

    public static Endpoint Parse(string text) =>
        Endpoint.TryParse(text, out Endpoint ep) ? ep : throw new ArgumentException(text);

    /// <summary>Delivers everything both sides sent (A's as from <see cref="EndpointA"/>) until quiet.</summary>
    public int Pump(Endpoint? fromA = null)
    {
        int delivered = 0;
        while (IoA.Sent.Count > 0 || IoB.Sent.Count > 0)
        {
            foreach (Datagram d in IoA.TakeSent())
            {
                History.Add(d);
                B.ReceiveDatagram(d.Bytes, fromA ?? EndpointA);
                delivered++;
            }
            foreach (Datagram d in IoB.TakeSent())
            {
                History.Add(d);
                A.ReceiveDatagram(d.Bytes, EndpointB);
                delivered++;
            }
        }
        return delivered;
    }

    /// <summary>A sends one packet to B and the handshake runs to completion.</summary>
    public void Handshake()
    {
        A.SendPacket(Packet(AddressA, AddressB, 0, 64));
        Pump();
        if (PeerB.Keypairs.Current is null || PeerA.Keypairs.Current is null)
            throw new InvalidOperationException("handshake did not complete");
        IoA.Delivered.Clear();
        IoB.Delivered.Clear();
    }

    /// <summary>Moves virtual time forward in steps, firing timers and delivering between steps.</summary>
    public void Advance(TimeSpan total, TimeSpan? step = null, bool pump = true)
    {
        TimeSpan stepSize = step ?? TimeSpan.FromMilliseconds(250);
        for (TimeSpan done = TimeSpan.Zero; done < total; done += stepSize)
        {
            Clock.Advance(TimeSpan.FromTicks(Math.Min(stepSize.Ticks, (total - done).Ticks)));
            A.Tick();
            B.Tick();
            if (pump)
                Pump();
        }
    }

    /// <summary>An IPv4 packet whose payload carries a sequence number then a pattern derived from it.</summary>
    public static byte[] Packet(byte[] source, byte[] destination, uint sequence, int totalLength)
    {
        byte[] packet = new byte[totalLength];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)totalLength);
        packet[8] = 64;
        packet[9] = 17;
        source.CopyTo(packet, 12);
        destination.CopyTo(packet, 16);
        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(20), sequence);
        for (int i = 24; i < totalLength; i++)
            packet[i] = (byte)(sequence * 31 + i);
        return packet;
    }

    /// <summary>The sequence number of a packet made by <see cref="Packet"/>, or null if its content is not intact.</summary>
    public static uint? ReadIntact(byte[] packet)
    {
        if (packet.Length < 24 || BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2)) != packet.Length)
            return null;
        uint sequence = BinaryPrimitives.ReadUInt32BigEndian(packet.AsSpan(20));
        for (int i = 24; i < packet.Length; i++)
        {
            if (packet[i] != (byte)(sequence * 31 + i))
                return null;
        }
        return sequence;
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}

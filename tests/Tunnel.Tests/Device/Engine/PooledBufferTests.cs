using System.Buffers;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>
/// Plaintext the engine held in a buffer from <see cref="ArrayPool{T}.Shared"/> must not be readable
/// by the next renter: any code in the process can rent from the shared pool.
/// </summary>
public sealed class PooledBufferTests
{
    [Fact]
    public void Decrypted_plaintext_is_cleared_before_its_buffer_goes_back_to_the_pool()
    {
        using var pair = new DevicePair(seed: 50);
        pair.Handshake();
        byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0x5EC2E7, 100);
        pair.A.SendPacket(packet);
        pair.Pump(); // B decrypts on this thread
        Assert.Single(pair.IoB.Delivered);
        Assert.False(SharedPoolHolds(packet.AsSpan(20), packet.Length), "plaintext left in a pooled buffer");
    }

    [Fact]
    public void Staged_packet_is_cleared_before_its_buffer_goes_back_to_the_pool()
    {
        using var pair = new DevicePair(seed: 51);
        byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0x57A6ED, 100);
        pair.A.SendPacket(packet); // staged while the handshake runs
        pair.B.ReceiveDatagram(Assert.Single(pair.IoA.TakeSent()).Bytes, DevicePair.EndpointA);
        pair.A.ReceiveDatagram(Assert.Single(pair.IoB.TakeSent()).Bytes, DevicePair.EndpointB);
        // The flush sent it (not delivered, so nothing else on this thread held the plaintext).
        Assert.Equal(MessageType.Transport, Assert.Single(pair.IoA.Sent).Type);
        Assert.Equal(0, pair.PeerB.StagedCount);
        Assert.False(SharedPoolHolds(packet.AsSpan(20), packet.Length), "staged plaintext left in a pooled buffer");
    }

    [Fact]
    public void Dropped_staged_packets_are_cleared_too()
    {
        using var pair = new DevicePair(seed: 52);
        byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0xD209, 100);
        pair.A.SendPacket(packet);
        for (int i = 0; i < Constants.MaxStagedPackets; i++) // the oldest, ours, is dropped
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, (uint)i, 100));
        Assert.False(SharedPoolHolds(packet.AsSpan(20), packet.Length), "dropped staged plaintext left in a pooled buffer");
        pair.PeerB.ClearSessions();
        pair.A.RemovePeer(pair.PublicB); // clears the staged queue
        Assert.False(SharedPoolHolds(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 5, 100).AsSpan(20), 100));
    }

    /// <summary>
    /// Rents, from this thread, every buffer the shared pool holds in the size class of
    /// <paramref name="size"/> (its thread-local one first, then the per-core stacks), looks for
    /// <paramref name="secret"/> in each, and gives them all back.
    /// </summary>
    private static bool SharedPoolHolds(ReadOnlySpan<byte> secret, int size)
    {
        var rented = new List<byte[]>();
        try
        {
            bool found = false;
            for (int i = 0; i < 512; i++)
            {
                byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
                rented.Add(buffer);
                found |= buffer.AsSpan().IndexOf(secret) >= 0;
            }
            return found;
        }
        finally
        {
            foreach (byte[] buffer in rented)
            {
                buffer.AsSpan().Clear();
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}

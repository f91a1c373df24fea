using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

public sealed class KeypairTests
{
    [Fact]
    public void REJECT_AFTER_MESSAGES_refuses_to_send_and_starts_a_handshake()
    {
        using var pair = new DevicePair(seed: 41);
        pair.Handshake();
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        Keypair keypair = pair.PeerA.Keypairs.Current!;
        keypair.SendNonce = Constants.RejectAfterMessages - 1;

        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 1, 100));
        // The last counter goes out (and, being past REKEY_AFTER_MESSAGES, starts a handshake).
        Assert.Equal([MessageType.Transport, MessageType.Initiation], pair.IoB.Sent.Select(d => d.Type));
        Assert.Equal(Constants.RejectAfterMessages - 1, MessageTransport.Counter(pair.IoB.Sent[0].Bytes));

        // Nothing more under this keypair: the next packet waits for the new session.
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 100));
        Assert.Equal(2, pair.IoB.Sent.Count);
        Assert.False(keypair.CanSend);
        Assert.Equal(1, pair.PeerA.StagedCount);
        pair.Pump();
        Assert.Equal([1u, 2u], pair.IoA.Delivered.Select(p => DevicePair.ReadIntact(p)!.Value));
    }

    [Fact]
    public void Staged_packet_put_back_when_the_keypair_runs_out_keeps_its_place()
    {
        using var pair = new DevicePair(seed: 48);
        // B (no endpoint yet, so its own initiation goes nowhere) stages three packets.
        for (uint i = 1; i <= 3; i++)
            pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, i, 100));
        Assert.Equal(3, pair.PeerA.StagedCount);
        pair.PeerB.InitiateHandshake();
        foreach (Datagram d in pair.IoA.TakeSent())
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);
        // B's new keypair has one counter left: the flush sends packet 1, and packet 2 must wait
        // for the next session, still ahead of packet 3.
        pair.PeerA.Keypairs.Next!.SendNonce = Constants.RejectAfterMessages - 1;
        pair.Pump();
        Assert.Equal([1u], pair.IoA.Delivered.Select(p => DevicePair.ReadIntact(p)!.Value));
        Assert.Equal(2, pair.PeerA.StagedCount);

        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 4, 100));
        pair.Pump();
        Assert.Equal([1u, 2u, 3u, 4u], pair.IoA.Delivered.Select(p => DevicePair.ReadIntact(p)!.Value));
    }

    [Fact]
    public void REKEY_AFTER_MESSAGES_starts_a_handshake_on_either_side()
    {
        using var pair = new DevicePair(seed: 42);
        pair.Handshake();
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerA.Keypairs.Current!.SendNonce = Constants.RekeyAfterMessages;
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 1, 100));
        Assert.Equal([MessageType.Transport, MessageType.Initiation], pair.IoB.Sent.Select(d => d.Type));
    }

    [Fact]
    public void Nonces_are_unique_across_threads()
    {
        using var pair = new DevicePair(seed: 43);
        pair.Handshake();
        Keypair keypair = pair.PeerB.Keypairs.Current!;
        ulong start = keypair.SendNonce;
        var taken = new ulong[4][];
        Parallel.For(0, 4, t =>
        {
            taken[t] = new ulong[10_000];
            for (int i = 0; i < 10_000; i++)
                Assert.True(keypair.TryTakeNonce(out taken[t][i]));
        });
        var all = taken.SelectMany(x => x).ToHashSet();
        Assert.Equal(40_000, all.Count);
        Assert.Equal(start, all.Min());
        Assert.Equal(start + 39_999, all.Max());
    }

    [Fact]
    public void Responder_keypair_waits_in_next_until_the_first_packet_then_rotates()
    {
        using var pair = new DevicePair(seed: 44);
        pair.Handshake();
        Keypair first = pair.PeerA.Keypairs.Current!;

        // A second handshake: B's new keypair waits in next, current is untouched.
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerB.InitiateHandshake();
        foreach (Datagram d in pair.IoA.TakeSent())
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);
        Keypair second = pair.PeerA.Keypairs.Next!;
        Assert.NotNull(second);
        Assert.Same(first, pair.PeerA.Keypairs.Current);

        // The response reaches A, whose keepalive confirms: next -> current, current -> previous.
        pair.Pump();
        Assert.Same(second, pair.PeerA.Keypairs.Current);
        Assert.Same(first, pair.PeerA.Keypairs.Previous);
        Assert.Null(pair.PeerA.Keypairs.Next);
        Assert.False(first.IsZeroed);

        // A third rotation retires the first: zeroed and its index freed.
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerB.InitiateHandshake();
        pair.Pump();
        Assert.True(first.IsZeroed);
        Assert.Null(pair.B.Indexes.Lookup(first.LocalIndex));
        Assert.Equal(2, pair.B.Indexes.Count); // previous and current
    }

    [Fact]
    public void Responder_puts_previous_to_rest_when_a_new_handshake_arrives()
    {
        using var pair = new DevicePair(seed: 47);
        pair.Handshake();
        Keypair first = pair.PeerA.Keypairs.Current!;
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerB.InitiateHandshake();
        pair.Pump();
        Assert.Same(first, pair.PeerA.Keypairs.Previous);

        // A third initiation reaches B: the new keypair waits in next and previous goes at once
        // (kernel add_new_keypair, wireguard-go: "the responder clears previous").
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerB.InitiateHandshake();
        foreach (Datagram d in pair.IoA.TakeSent())
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);
        Assert.NotNull(pair.PeerA.Keypairs.Next);
        Assert.Null(pair.PeerA.Keypairs.Previous);
        Assert.True(first.IsZeroed);
        Assert.Null(pair.B.Indexes.Lookup(first.LocalIndex));
    }

    [Fact]
    public void A_keypair_cleared_while_a_packet_is_sealed_under_it_is_zeroed_when_the_send_returns()
    {
        using var pair = new DevicePair(seed: 53);
        pair.Handshake();
        Keypair keypair = pair.PeerB.Keypairs.Current!;
        bool wholeWhileSending = false;
        pair.IoA.During = () =>
        {
            // Inside A's send path (its read-side section): the fork guard clears the sessions.
            pair.PeerB.ClearSessions();
            wholeWhileSending = keypair.IsZeroed && !keypair.KeysZeroed && keypair.SendKey.IndexOfAnyExcept((byte)0) >= 0;
            pair.IoA.During = null;
        };
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        Assert.True(wholeWhileSending, "the keypair was zeroed under a sender");
        Assert.True(keypair.KeysZeroed && keypair.SendKey.IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void A_keypair_cleared_while_a_packet_is_opened_under_it_is_zeroed_when_the_receive_returns()
    {
        using var pair = new DevicePair(seed: 54);
        pair.Handshake();
        Keypair keypair = pair.PeerA.Keypairs.Current!;
        bool wholeWhileReceiving = false;
        pair.IoB.During = () =>
        {
            pair.PeerA.ClearSessions();
            wholeWhileReceiving = keypair.IsZeroed && !keypair.KeysZeroed && keypair.ReceiveKey.IndexOfAnyExcept((byte)0) >= 0;
            pair.IoB.During = null;
        };
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        pair.Pump();
        Assert.Single(pair.IoB.Delivered);
        Assert.True(wholeWhileReceiving, "the keypair was zeroed under a receiver");
        Assert.True(keypair.KeysZeroed && keypair.ReceiveKey.IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Packets_in_flight_under_the_previous_keypair_are_still_accepted()
    {
        using var pair = new DevicePair(seed: 45);
        pair.Handshake();
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 1, 100));
        Datagram old = Assert.Single(pair.IoB.TakeSent());
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerB.InitiateHandshake();
        pair.Pump();
        pair.A.ReceiveDatagram(old.Bytes, DevicePair.EndpointB);
        Assert.Equal(1u, DevicePair.ReadIntact(Assert.Single(pair.IoA.Delivered)));
    }

    [Fact]
    public void Simultaneous_initiations_end_in_one_working_session()
    {
        using var pair = new DevicePair(seed: 46, bKnowsA: true);
        pair.PeerB.InitiateHandshake();
        pair.PeerA.InitiateHandshake();
        pair.Pump();
        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 100));
        pair.Pump();
        pair.Advance(TimeSpan.FromSeconds(10));
        Assert.Contains(pair.IoB.Delivered, p => DevicePair.ReadIntact(p) == 1);
        Assert.Contains(pair.IoA.Delivered, p => DevicePair.ReadIntact(p) == 2);
    }
}

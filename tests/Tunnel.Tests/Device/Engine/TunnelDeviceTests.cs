using Xunit;
using Tunnel.Device;

namespace Tunnel.Tests.Device.Engine;

public sealed class TunnelDeviceTests
{
    [Fact]
    public void Handshake_then_staged_packet_is_delivered_and_both_sides_hold_one_session()
    {
        using var pair = new DevicePair();
        byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 7, 100);
        pair.A.SendPacket(packet);

        // Nothing can be encrypted yet: the packet waits and an initiation goes out.
        Datagram initiation = Assert.Single(pair.IoA.Sent);
        Assert.Equal(MessageType.Initiation, initiation.Type);
        Assert.Equal(DevicePair.EndpointB, initiation.To);

        pair.Pump();
        Assert.Equal(packet, Assert.Single(pair.IoB.Delivered));
        Keypair a = Assert.IsType<Keypair>(pair.PeerB.Keypairs.Current);
        Keypair b = Assert.IsType<Keypair>(pair.PeerA.Keypairs.Current);
        Assert.True(a.IsInitiator);
        Assert.False(b.IsInitiator);
        Assert.Equal(a.LocalIndex, b.RemoteIndex);
        Assert.Equal(a.RemoteIndex, b.LocalIndex);
        Assert.Null(pair.PeerA.Keypairs.Next);
        Assert.NotNull(pair.PeerB.LastHandshakeTime);
        Assert.Equal(DevicePair.EndpointA, pair.PeerA.Endpoint);
    }

    [Fact]
    public void Responder_does_not_send_before_the_initiator_confirms_the_session()
    {
        using var pair = new DevicePair(seed: 3, bKnowsA: true);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 60));
        foreach (Datagram d in pair.IoA.TakeSent())
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);

        // B answered, its keypair waits in "next"; a packet from B is staged, not sent.
        Assert.NotNull(pair.PeerA.Keypairs.Next);
        Assert.Null(pair.PeerA.Keypairs.Current);
        pair.IoB.Sent.Clear();
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 60));
        Assert.DoesNotContain(pair.IoB.Sent, d => d.Type == MessageType.Transport);
        Assert.Equal(1, pair.PeerA.StagedCount);
    }

    [Fact]
    public void Ten_thousand_packets_each_way_through_a_lossy_reordering_duplicating_network()
    {
        const int Count = 10_000;
        const int Size = 120;
        using var pair = new DevicePair(seed: 11);
        pair.Handshake();
        var network = new Random(12345);

        var sentAtoB = new HashSet<uint>();   // sequences of which at least one copy reached B
        var sentBtoA = new HashSet<uint>();
        var inFlightToB = new List<(byte[] Bytes, uint Seq)>();
        var inFlightToA = new List<(byte[] Bytes, uint Seq)>();
        int dropped = 0, duplicated = 0;

        void Transmit(RecordingIo io, uint seq, List<(byte[], uint)> inFlight, HashSet<uint> reached)
        {
            foreach (Datagram d in io.TakeSent())
            {
                uint tag = d.Bytes.Length == MessageTransport.MinimumSize || d.Type != MessageType.Transport ? uint.MaxValue : seq;
                double roll = network.NextDouble();
                if (roll < 0.05)
                {
                    dropped++;
                    continue;
                }
                inFlight.Add((d.Bytes, tag));
                if (roll > 0.95)
                {
                    inFlight.Add(((byte[])d.Bytes.Clone(), tag));
                    duplicated++;
                }
                if (tag != uint.MaxValue)
                    reached.Add(tag);
            }
        }

        void Deliver(List<(byte[] Bytes, uint Seq)> inFlight, TunnelDevice to, Endpoint from)
        {
            // Fisher-Yates within the batch: reordering up to the batch size (far below the replay window).
            for (int i = inFlight.Count - 1; i > 0; i--)
            {
                int j = network.Next(i + 1);
                (inFlight[i], inFlight[j]) = (inFlight[j], inFlight[i]);
            }
            foreach ((byte[] bytes, _) in inFlight)
                to.ReceiveDatagram(bytes, from);
            inFlight.Clear();
        }

        for (uint seq = 0; seq < Count; seq++)
        {
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, seq, Size + (int)(seq % 7)));
            Transmit(pair.IoA, seq, inFlightToB, sentAtoB);
            pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, seq, Size + (int)(seq % 5)));
            Transmit(pair.IoB, seq, inFlightToA, sentBtoA);
            if (seq % 64 == 63 || seq == Count - 1)
            {
                Deliver(inFlightToB, pair.B, DevicePair.EndpointA);
                Deliver(inFlightToA, pair.A, DevicePair.EndpointB);
            }
        }

        Assert.True(dropped > 500 && duplicated > 500, $"the network must really drop ({dropped}) and duplicate ({duplicated})");
        AssertDeliveredExactly(pair.IoB.Delivered, sentAtoB);
        AssertDeliveredExactly(pair.IoA.Delivered, sentBtoA);
    }

    private static void AssertDeliveredExactly(List<byte[]> delivered, HashSet<uint> expected)
    {
        var seen = new HashSet<uint>();
        foreach (byte[] packet in delivered)
        {
            uint? seq = DevicePair.ReadIntact(packet);
            Assert.NotNull(seq);
            Assert.True(seen.Add(seq.Value), $"sequence {seq} delivered twice");
        }
        Assert.True(seen.SetEquals(expected),
            $"delivered {seen.Count}, expected {expected.Count}: lost beyond the network's drops or invented");
    }

    [Fact]
    public void Replayed_transport_packet_is_refused_and_changes_nothing()
    {
        using var pair = new DevicePair(seed: 5);
        pair.Handshake();
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 9, 80));
        Datagram data = Assert.Single(pair.IoA.TakeSent());
        pair.B.ReceiveDatagram(data.Bytes, DevicePair.EndpointA);
        Assert.Single(pair.IoB.Delivered);

        byte[] before = pair.B.StateDigest();
        pair.B.ReceiveDatagram(data.Bytes, DevicePair.EndpointA);
        Assert.Single(pair.IoB.Delivered);
        Assert.Equal(before, pair.B.StateDigest());
    }

    [Fact]
    public void Replayed_initiation_gets_no_response_and_keeps_the_session()
    {
        using var pair = new DevicePair(seed: 6);
        pair.PeerB.InitiateHandshake();
        Datagram initiation = Assert.Single(pair.IoA.TakeSent());
        pair.B.ReceiveDatagram(initiation.Bytes, DevicePair.EndpointA);
        Assert.Equal(MessageType.Response, Assert.Single(pair.IoB.TakeSent()).Type);
        Keypair? next = pair.PeerA.Keypairs.Next;
        Assert.NotNull(next);

        // Even long after (past the 50/s flood limit), the same TAI64N is not newer: refused.
        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        pair.B.ReceiveDatagram(initiation.Bytes, DevicePair.EndpointA);
        Assert.Empty(pair.IoB.Sent);
        Assert.Same(next, pair.PeerA.Keypairs.Next);
        Assert.False(next.IsZeroed);
    }

    [Fact]
    public void Initiation_with_a_wrong_mac1_is_dropped_silently()
    {
        using var pair = new DevicePair(seed: 7);
        pair.PeerB.InitiateHandshake();
        byte[] initiation = Assert.Single(pair.IoA.TakeSent()).Bytes;
        initiation[MessageInitiation.Mac1Offset] ^= 1;
        byte[] before = pair.B.StateDigest();
        pair.B.ReceiveDatagram(initiation, DevicePair.EndpointA);
        Assert.Empty(pair.IoB.Sent);
        Assert.Equal(before, pair.B.StateDigest());
    }

    [Fact]
    public void Under_load_an_initiation_without_mac2_gets_a_cookie_reply_and_the_retry_succeeds()
    {
        using var pair = new DevicePair(seed: 8);
        pair.B.UnderLoad = true;
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 64));
        Datagram initiation = Assert.Single(pair.IoA.TakeSent());
        Assert.True(initiation.Bytes.AsSpan(MessageInitiation.Mac2Offset).IndexOfAnyExcept((byte)0) < 0, "no cookie yet: mac2 is zero");
        pair.B.ReceiveDatagram(initiation.Bytes, DevicePair.EndpointA);

        Datagram reply = Assert.Single(pair.IoB.TakeSent());
        Assert.Equal(MessageType.CookieReply, reply.Type);
        Assert.Equal(DevicePair.EndpointA, reply.To);
        Assert.Null(pair.PeerA.Keypairs.Next);
        pair.A.ReceiveDatagram(reply.Bytes, DevicePair.EndpointB);

        // The retransmission (REKEY_TIMEOUT + jitter later) carries mac2 and is answered.
        pair.Advance(TimeSpan.FromSeconds(6), pump: false);
        Datagram retry = Assert.Single(pair.IoA.TakeSent());
        Assert.Equal(MessageType.Initiation, retry.Type);
        Assert.True(retry.Bytes.AsSpan(MessageInitiation.Mac2Offset).IndexOfAnyExcept((byte)0) >= 0, "retry carries mac2");
        pair.B.ReceiveDatagram(retry.Bytes, DevicePair.EndpointA);
        Assert.Equal(MessageType.Response, Assert.Single(pair.IoB.Sent).Type);
        pair.Pump();
        Assert.Single(pair.IoB.Delivered);
    }

    [Fact]
    public void Cookie_reply_to_our_response_makes_the_next_response_carry_mac2()
    {
        // A, the initiator, is under load: it answers our (B's) response with a cookie reply
        // addressed to the response's sender index, which by then names B's new keypair.
        using var pair = new DevicePair(seed: 10);
        pair.A.UnderLoad = true;
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 64));
        pair.B.ReceiveDatagram(Assert.Single(pair.IoA.TakeSent()).Bytes, DevicePair.EndpointA);
        Datagram response = Assert.Single(pair.IoB.TakeSent());
        Assert.Equal(MessageType.Response, response.Type);
        pair.A.ReceiveDatagram(response.Bytes, DevicePair.EndpointB);
        Datagram reply = Assert.Single(pair.IoA.TakeSent());
        Assert.Equal(MessageType.CookieReply, reply.Type);
        Assert.Equal(MessageResponse.SenderIndex(response.Bytes), MessageCookieReply.ReceiverIndex(reply.Bytes));
        Assert.Same(pair.PeerA.Keypairs.Next, pair.B.Indexes.Lookup(MessageCookieReply.ReceiverIndex(reply.Bytes)));
        Assert.Null(pair.PeerB.Keypairs.Current);
        pair.B.ReceiveDatagram(reply.Bytes, DevicePair.EndpointA);

        // A's retransmitted initiation; B's second response must carry mac2 under A's cookie,
        // which A, still under load, checks before it takes the response.
        pair.Advance(TimeSpan.FromSeconds(6), pump: false);
        Datagram retry = Assert.Single(pair.IoA.TakeSent());
        Assert.Equal(MessageType.Initiation, retry.Type);
        pair.B.ReceiveDatagram(retry.Bytes, DevicePair.EndpointA);
        Datagram second = Assert.Single(pair.IoB.TakeSent());
        Assert.Equal(MessageType.Response, second.Type);
        Assert.True(second.Bytes.AsSpan(MessageResponse.Mac2Offset).IndexOfAnyExcept((byte)0) >= 0, "second response carries mac2");
        pair.A.ReceiveDatagram(second.Bytes, DevicePair.EndpointB);
        Assert.NotNull(pair.PeerB.Keypairs.Current);
    }

    [Fact]
    public void Flood_of_initiations_turns_on_under_load_by_itself()
    {
        using var pair = new DevicePair(seed: 9);
        pair.PeerB.InitiateHandshake();
        byte[] initiation = Assert.Single(pair.IoA.TakeSent()).Bytes;
        for (int i = 0; i <= TunnelDevice.UnderLoadHandshakesPerSecond; i++)
            pair.B.ReceiveDatagram(initiation, DevicePair.EndpointA);
        pair.IoB.Sent.Clear();
        pair.B.ReceiveDatagram(initiation, DevicePair.EndpointA);
        Assert.Equal(MessageType.CookieReply, Assert.Single(pair.IoB.Sent).Type);

        // A quiet second later the device is no longer under load.
        pair.Clock.Advance(TimeSpan.FromSeconds(2.5));
        pair.IoB.Sent.Clear();
        pair.B.ReceiveDatagram(initiation, DevicePair.EndpointA); // a replay now: refused, but no cookie reply
        Assert.Empty(pair.IoB.Sent);
    }

    [Fact]
    public void Decrypted_packet_from_outside_the_peers_allowed_ips_is_dropped()
    {
        using var pair = new DevicePair(seed: 10);
        pair.Handshake();
        byte[] spoofed = DevicePair.Packet([10, 9, 0, 99], DevicePair.AddressB, 1, 80);
        pair.A.SendPacket(spoofed);
        pair.Pump();
        Assert.Empty(pair.IoB.Delivered);

        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 2, 80));
        pair.Pump();
        Assert.Single(pair.IoB.Delivered);
    }

    [Fact]
    public void Packet_to_an_address_no_peer_owns_is_dropped()
    {
        using var pair = new DevicePair(seed: 12);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, [10, 9, 0, 77], 1, 80));
        pair.A.SendPacket([0x60, 1, 2]); // truncated IPv6
        pair.A.SendPacket([]);
        Assert.Empty(pair.IoA.Sent);
    }

    [Fact]
    public void Roaming_replies_go_to_the_address_of_the_last_authenticated_packet()
    {
        using var pair = new DevicePair(seed: 13);
        pair.Handshake();
        Endpoint moved = DevicePair.Parse("[2001:db8::7]:40000");
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 80));
        pair.Pump(fromA: moved);
        Assert.Equal(moved, pair.PeerA.Endpoint);

        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 80));
        Assert.Equal(moved, Assert.Single(pair.IoB.Sent).To);

        // A forged packet from elsewhere does not move it.
        pair.IoB.Sent.Clear();
        byte[] junk = new byte[64];
        junk[0] = 4;
        BitConverter.TryWriteBytes(junk.AsSpan(4), pair.PeerA.Keypairs.Current!.LocalIndex);
        pair.B.ReceiveDatagram(junk, DevicePair.EndpointA);
        Assert.Equal(moved, pair.PeerA.Endpoint);
    }

    [Fact]
    public void Byte_counters_count_whole_messages_as_the_kernel()
    {
        using var pair = new DevicePair(seed: 14);
        // Ten 84-byte pings, as netns.sh's stats check: initiator tx 148 + 10 x 128, rx 92 + 10 x 128.
        for (uint i = 0; i < 10; i++)
        {
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, i, 84));
            pair.Pump();
            foreach (byte[] request in pair.IoB.Delivered)
                pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, i, 84));
            pair.IoB.Delivered.Clear();
            pair.Pump();
        }
        Assert.Equal(1428UL, pair.PeerB.TxBytes);
        Assert.Equal(1372UL, pair.PeerB.RxBytes);
        Assert.Equal(1372UL, pair.PeerA.TxBytes);
        Assert.Equal(1428UL, pair.PeerA.RxBytes);
    }

    [Fact]
    public void Clearing_sessions_zeroes_keys_and_frees_indexes()
    {
        using var pair = new DevicePair(seed: 15);
        pair.Handshake();
        Keypair keypair = pair.PeerB.Keypairs.Current!;
        pair.A.ClearAllSessions();
        Assert.True(keypair.IsZeroed);
        Assert.True(keypair.SendKey.IndexOfAnyExcept((byte)0) < 0);
        Assert.True(keypair.ReceiveKey.IndexOfAnyExcept((byte)0) < 0);
        Assert.Null(pair.PeerB.Keypairs.Current);
        Assert.Equal(0, pair.A.Indexes.Count);

        // The next packet starts a new handshake (once REKEY_TIMEOUT after the last one) and gets through.
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 80));
        pair.Pump();
        Assert.Single(pair.IoB.Delivered);
    }

    [Fact]
    public void Removing_a_peer_zeroes_its_keys_and_its_routes()
    {
        using var pair = new DevicePair(seed: 16);
        pair.Handshake();
        Keypair keypair = pair.PeerB.Keypairs.Current!;
        Assert.True(pair.A.RemovePeer(pair.PublicB));
        Assert.True(keypair.IsZeroed);
        Assert.Null(pair.A.FindPeer(pair.PublicB));
        Assert.Empty(pair.A.Peers);
        Assert.Null(pair.A.AllowedIps.Lookup(DevicePair.AddressB));
        Assert.Equal(0, pair.A.Indexes.Count);
        Assert.False(pair.A.RemovePeer(pair.PublicB));
    }

    [Fact]
    public void Expired_current_keypair_stops_sending_but_still_receives()
    {
        using var pair = new DevicePair(seed: 17);
        pair.Handshake();
        pair.Clock.Advance(TimeSpan.FromSeconds(6)); // past REKEY_TIMEOUT, so a new initiation may go
        Keypair old = pair.PeerB.Keypairs.Current!;
        pair.PeerB.ExpireCurrentKeypairs();
        Assert.False(old.CanSend);

        // B still sends under its keypair and A still accepts it.
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 1, 80));
        Datagram fromB = Assert.Single(pair.IoB.TakeSent());
        pair.A.ReceiveDatagram(fromB.Bytes, DevicePair.EndpointB);
        Assert.Single(pair.IoA.Delivered);

        // A's next packet is staged behind a new handshake.
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 2, 80));
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
        pair.Pump();
        Assert.Single(pair.IoB.Delivered);
        Assert.NotSame(old, pair.PeerB.Keypairs.Current);
    }

    [Fact]
    public void Changing_the_private_key_drops_sessions_and_an_all_zero_key_removes_it()
    {
        using var pair = new DevicePair(seed: 18);
        pair.Handshake();
        Keypair keypair = pair.PeerB.Keypairs.Current!;
        pair.A.SetPrivateKey(new byte[32]);
        Assert.False(pair.A.HasPrivateKey);
        Assert.True(keypair.IsZeroed);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 80));
        Assert.Empty(pair.IoA.Sent);
    }

    [Fact]
    public void IPv6_packets_are_routed_and_their_padding_stripped()
    {
        using var pair = new DevicePair(seed: 19);
        byte[] a6 = System.Net.IPAddress.Parse("fd00::1").GetAddressBytes();
        byte[] b6 = System.Net.IPAddress.Parse("fd00::2").GetAddressBytes();
        pair.A.AllowedIps.Insert(b6, 128, pair.PeerB);
        pair.B.AllowedIps.Insert(a6, 128, pair.PeerA);
        pair.Handshake();

        static byte[] Ip6(byte[] src, byte[] dst, int payload, int claimed)
        {
            byte[] p = new byte[40 + payload];
            p[0] = 0x60;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)claimed);
            p[6] = 59; // no next header
            p[7] = 64;
            src.CopyTo(p, 8);
            dst.CopyTo(p, 24);
            for (int i = 40; i < p.Length; i++)
                p[i] = (byte)i;
            return p;
        }

        byte[] packet = Ip6(a6, b6, 27, 27);
        pair.A.SendPacket(packet);
        Assert.Equal(MessageTransport.MessageSize(80), Assert.Single(pair.IoA.Sent).Bytes.Length); // 67 padded to 80
        pair.Pump();
        Assert.Equal(packet, Assert.Single(pair.IoB.Delivered));

        // A header that claims more than arrived is not delivered.
        pair.A.SendPacket(Ip6(a6, b6, 10, 200));
        pair.Pump();
        Assert.Single(pair.IoB.Delivered);
    }
}

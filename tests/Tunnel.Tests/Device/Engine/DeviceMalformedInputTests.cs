using System.Buffers.Binary;
using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>
/// Every message type, broken every way: dropped silently, nothing emitted, and the device's whole
/// protocol state (its digest) unchanged.
/// </summary>
public sealed class DeviceMalformedInputTests
{
    /// <summary>Two devices with a session, and A with a handshake pending (so every index kind exists).</summary>
    private static (DevicePair Pair, Datagram Initiation, Datagram Response, Datagram Transport, Datagram Keepalive) Setup()
    {
        var pair = new DevicePair(seed: 31);
        pair.Handshake();
        Datagram response = pair.History.First(d => d.Type == MessageType.Response);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 5, 90));
        Datagram transport = Assert.Single(pair.IoA.TakeSent());
        pair.PeerB.SendKeepalive();
        Datagram keepalive = Assert.Single(pair.IoA.TakeSent());
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        pair.PeerB.InitiateHandshake();
        Datagram initiation = Assert.Single(pair.IoA.TakeSent());
        Assert.NotEqual(0u, pair.PeerB.HandshakeIndex);
        return (pair, initiation, response, transport, keepalive);
    }

    private static IEnumerable<byte[]> Mutations(byte[] valid, PublicKey? mac1Key, uint realIndex, int indexOffset)
    {
        yield return [];
        yield return valid[..1];
        yield return valid[..4];
        yield return valid[..^1];                       // truncated
        yield return [.. valid, 0];                     // oversized
        yield return [.. valid, .. new byte[1500]];
        foreach (uint type in new uint[] { 0, 1, 2, 3, 4, 5, 255, 0x0100_0001, 0x0000_0104 })
        {
            byte[] retyped = (byte[])valid.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(retyped, type);
            if (type != BinaryPrimitives.ReadUInt32LittleEndian(valid))
                yield return retyped;                   // wrong type, nonzero reserved bytes
        }
        var random = new Random(valid.Length);
        for (int i = 0; i < 20; i++)
        {
            byte[] noise = new byte[random.Next(0, 200)];
            random.NextBytes(noise);
            yield return noise;                         // random bytes
            if (noise.Length >= 4)
            {
                noise[0] = valid[0];
                noise[1] = noise[2] = noise[3] = 0;
                yield return noise;                     // random bytes behind a valid type
            }
        }
        // mac2 is only checked under load, so a flip there is not malformed for a handshake message.
        int end = mac1Key is null ? valid.Length : CookieConstants.Mac2Offset(valid.Length);
        for (int at = 4; at < end; at += 7)
        {
            byte[] flipped = (byte[])valid.Clone();
            flipped[at] ^= 0x40;
            yield return flipped;                       // bad tag / bad mac
            if (mac1Key is { } key && at >= 8 && at < CookieConstants.Mac1Offset(valid.Length))
            {
                // Re-sign mac1 so the flip reaches the AEAD (a peer that knows our public key). Not the
                // sender index: only mac1 covers it, so a re-signed change there is a valid message.
                byte[] resigned = (byte[])flipped.Clone();
                new CookieGenerator(key).AddMacs(resigned, TimeSpan.Zero);
                yield return resigned;
            }
        }
        if (indexOffset > 0)
        {
            byte[] unknown = (byte[])valid.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(unknown.AsSpan(indexOffset), realIndex ^ 0x5a5a5a5a);
            yield return unknown;                       // unknown receiver index
        }
    }

    [Fact]
    public void Every_malformed_message_is_dropped_and_changes_no_state()
    {
        var (pair, initiation, response, transport, keepalive) = Setup();
        using var _ = pair;
        var publicA = new PublicKey(pair.PublicA);
        var publicB = new PublicKey(pair.PublicB);

        // A pending cookie reply has a valid header and the right receiver index but a bad tag.
        byte[] cookieReply = new byte[MessageCookieReply.Size];
        new SeededRandom(3).Fill(cookieReply);
        BinaryPrimitives.WriteUInt32LittleEndian(cookieReply, (uint)MessageType.CookieReply);
        BinaryPrimitives.WriteUInt32LittleEndian(cookieReply.AsSpan(MessageCookieReply.ReceiverOffset), pair.PeerB.HandshakeIndex);

        var cases = new List<(TunnelDevice Target, byte[] Message)>();
        foreach (byte[] m in Mutations(initiation.Bytes, publicB, 0, 0))
            cases.Add((pair.B, m));
        foreach (byte[] m in Mutations(response.Bytes, publicA, MessageResponse.ReceiverIndex(response.Bytes), MessageResponse.ReceiverOffset))
            cases.Add((pair.A, m));
        foreach (byte[] m in Mutations(cookieReply, null, pair.PeerB.HandshakeIndex, MessageCookieReply.ReceiverOffset))
            cases.Add((pair.A, m));
        cases.Add((pair.A, cookieReply));
        foreach (byte[] m in Mutations(transport.Bytes, null, MessageTransport.ReceiverIndex(transport.Bytes), MessageTransport.ReceiverOffset))
            cases.Add((pair.B, m));
        foreach (byte[] m in Mutations(keepalive.Bytes, null, MessageTransport.ReceiverIndex(keepalive.Bytes), MessageTransport.ReceiverOffset))
            cases.Add((pair.B, m));
        // The old response again: stale (A's handshake moved on), so also refused.
        cases.Add((pair.A, response.Bytes));
        Assert.True(cases.Count > 300);

        byte[] digestA = pair.A.StateDigest();
        byte[] digestB = pair.B.StateDigest();
        foreach ((TunnelDevice target, byte[] message) in cases)
        {
            target.ReceiveDatagram(message, ReferenceEquals(target, pair.B) ? DevicePair.EndpointA : DevicePair.EndpointB);
            if (pair.IoA.Sent.Count + pair.IoB.Sent.Count > 0)
                Assert.Fail($"emitted after {Convert.ToHexString(message)}: {string.Join(",", pair.IoA.Sent.Concat(pair.IoB.Sent).Select(d => d.Type + "/" + d.Bytes.Length))}");
            Assert.Empty(pair.IoA.Sent);
            Assert.Empty(pair.IoB.Sent);
            Assert.Empty(pair.IoA.Delivered);
            Assert.Empty(pair.IoB.Delivered);
            Assert.Equal(digestA, pair.A.StateDigest());
            Assert.Equal(digestB, pair.B.StateDigest());
        }

        // Control: the untouched messages do change state, so the digest would have noticed.
        pair.B.ReceiveDatagram(transport.Bytes, DevicePair.EndpointA);
        Assert.NotEqual(digestB, pair.B.StateDigest());
        pair.B.ReceiveDatagram(initiation.Bytes, DevicePair.EndpointA);
        Assert.Equal(MessageType.Response, Assert.Single(pair.IoB.Sent).Type);
    }

    [Fact]
    public void Digest_sees_a_change_in_each_part_of_the_state()
    {
        using var pair = new DevicePair(seed: 32);
        pair.Handshake();
        byte[] d0 = pair.A.StateDigest();
        pair.PeerB.Endpoint = DevicePair.Parse("192.0.2.99:1");
        byte[] d1 = pair.A.StateDigest();
        Assert.NotEqual(d0, d1);
        pair.PeerB.PersistentKeepaliveInterval = 5;
        byte[] d2 = pair.A.StateDigest();
        Assert.NotEqual(d1, d2);
        pair.PeerB.Keypairs.Current!.ReplayFilter.ValidateCounter(77, Constants.RejectAfterMessages);
        byte[] d3 = pair.A.StateDigest();
        Assert.NotEqual(d2, d3);
    }
}

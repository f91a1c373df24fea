using System.Buffers.Binary;
using System.Security.Cryptography;
using Tunnel.Device;

namespace ForkSim;

/// <summary>
/// A passive observer on the wire: it sees only what an eavesdropper sees (cleartext headers and
/// ciphertext), and from that finds the failures a VM fork causes.
/// <list type="bullet">
/// <item>Every transport message towards peer B is keyed by (receiver index, counter): the
/// receiver index is B's index for one of its keypairs, hence names the sender's key, and the
/// counter is the AEAD nonce. The same pair with a different ciphertext is REUSE (the XOR of two
/// plaintexts and the Poly1305 key leak); byte-identical copies are counted apart as resends (a
/// replay). B's own messages are not judged: B is never copied, and the index its messages carry
/// is A's, which clones with copied random state share, so it would not name B's key.</item>
/// <item>Every initiation's unencrypted ephemeral public key, by sender: one sent by two guests
/// means their random generators were copies. Two such initiations that differ in their encrypted
/// timestamp reused a handshake (key, nonce) too: the timestamp is sealed under a key that
/// depends only on the ephemeral and the two static keys, with nonce 0.</item>
/// <item>After <see cref="MarkEvent"/>: transport packets towards peer B under keys B announced
/// before the event are stale (those keys were copied into every clone), and per sender the first
/// initiation and the first packet under a new key.</item>
/// </list>
/// </summary>
public sealed class WireObserver
{
    private readonly Dictionary<(uint Receiver, ulong Counter), NonceUse> _nonces = new();
    private readonly Dictionary<UInt256Key, (string Sender, byte[] SealedTimestamp)> _ephemeralSender = new();
    private readonly HashSet<UInt256Key> _reusedHandshakeKeys = new();
    private readonly IncrementalHash _digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly HashSet<UInt256Key> _sharedEphemerals = new();
    private readonly HashSet<uint> _peerBIndexes = new();
    private readonly Dictionary<string, SenderStats> _senders = new();
    private HashSet<uint>? _preEventIndexes;

    /// <summary>When not null, one line per datagram (time, sender, type, indexes, counter): for debugging a scenario.</summary>
    public List<string>? Log { get; set; }

    /// <summary>Peer B's endpoint (outside the VM): it tells the direction of a message.</summary>
    public Endpoint PeerB { get; set; }

    public TimeSpan? EventAt { get; private set; }

    public long TransportPackets { get; private set; }

    public int ReusedPairs { get; private set; }

    public long ReusedPackets { get; private set; }

    public long IdenticalResends { get; private set; }

    public long StalePackets { get; private set; }

    /// <summary>Ephemeral public keys that two or more senders put in an initiation.</summary>
    public int IdenticalEphemerals => _sharedEphemerals.Count;

    /// <summary>Shared ephemerals whose initiations sealed different timestamps under the same
    /// handshake key and nonce.</summary>
    public int HandshakeNonceReuse => _reusedHandshakeKeys.Count;

    /// <summary>SHA-256 over every datagram so far (time, sender, bytes): two runs of one scenario
    /// must agree on it.</summary>
    public string Digest => Convert.ToHexString(_digest.GetCurrentHash());

    /// <summary>From now on, keys peer B announced so far are pre-event keys.</summary>
    public void MarkEvent(TimeSpan now)
    {
        EventAt = now;
        _preEventIndexes = new HashSet<uint>(_peerBIndexes);
    }

    /// <summary>What one sender did after the event (zeros if it sent nothing).</summary>
    public SenderStats StatsOf(string sender) =>
        _senders.TryGetValue(sender, out SenderStats? s) ? s : new SenderStats();

    internal void Record(TimeSpan now, string sender, in Endpoint from, ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        bool fromB = from == PeerB;
        Log?.Add(Describe(now, sender, datagram, to));
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(header, now.Ticks);
        _digest.AppendData(header);
        _digest.AppendData(System.Text.Encoding.UTF8.GetBytes(sender));
        _digest.AppendData(datagram);
        bool afterEvent = EventAt is { } at && now >= at;
        switch (MessageHeader.ReadType(datagram))
        {
            case MessageType.Initiation when MessageInitiation.IsWellFormed(datagram):
                if (fromB)
                    _peerBIndexes.Add(MessageInitiation.SenderIndex(datagram));
                RecordEphemeral(sender, datagram);
                if (afterEvent && !fromB)
                    Stats(sender).FirstInitiationAt ??= now;
                break;
            case MessageType.Response when MessageResponse.IsWellFormed(datagram):
                if (fromB)
                    _peerBIndexes.Add(MessageResponse.SenderIndex(datagram));
                break;
            case MessageType.Transport when MessageTransport.IsWellFormed(datagram):
                RecordTransport(now, sender, fromB, afterEvent, datagram, to);
                break;
        }
    }

    private void RecordTransport(TimeSpan now, string sender, bool fromB, bool afterEvent,
        ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        TransportPackets++;
        if (fromB)
            return;
        uint receiver = MessageTransport.ReceiverIndex(datagram);
        var key = (receiver, MessageTransport.Counter(datagram));
        if (!_nonces.TryGetValue(key, out NonceUse? use))
        {
            _nonces[key] = new NonceUse(datagram.ToArray());
        }
        else if (datagram.SequenceEqual(use.FirstCiphertext))
        {
            IdenticalResends++;
        }
        else
        {
            if (!use.Reused)
            {
                use.Reused = true;
                ReusedPairs++;
            }
            ReusedPackets++;
        }

        if (!afterEvent)
        {
            _peerBIndexes.Add(receiver);
            return;
        }
        SenderStats stats = Stats(sender);
        stats.TransportPackets++;
        if (_preEventIndexes!.Contains(receiver))
        {
            stats.StalePackets++;
            StalePackets++;
        }
        else
        {
            stats.FirstNewKeyPacketAt ??= now;
        }
    }

    private static string Describe(TimeSpan now, string sender, ReadOnlySpan<byte> d, in Endpoint to)
    {
        string what = MessageHeader.ReadType(d) switch
        {
            MessageType.Initiation when d.Length == MessageInitiation.Size =>
                $"initiation sender {MessageInitiation.SenderIndex(d):x8} ephemeral {Convert.ToHexString(d.Slice(MessageInitiation.EphemeralOffset, 4))}..",
            MessageType.Response when d.Length == MessageResponse.Size =>
                $"response sender {MessageResponse.SenderIndex(d):x8} receiver {MessageResponse.ReceiverIndex(d):x8}",
            MessageType.CookieReply => "cookie reply",
            MessageType.Transport when d.Length >= MessageTransport.MinimumSize =>
                $"transport receiver {MessageTransport.ReceiverIndex(d):x8} counter {MessageTransport.Counter(d)}",
            _ => $"{d.Length} bytes",
        };
        return $"{now.TotalMilliseconds,10:0.000} ms {sender} -> {to}: {what}";
    }

    private void RecordEphemeral(string sender, ReadOnlySpan<byte> initiation)
    {
        var key = new UInt256Key(initiation.Slice(MessageInitiation.EphemeralOffset, 32));
        ReadOnlySpan<byte> sealedTimestamp = initiation[MessageInitiation.TimestampOffset..MessageInitiation.Mac1Offset];
        if (!_ephemeralSender.TryGetValue(key, out var first))
        {
            _ephemeralSender[key] = (sender, sealedTimestamp.ToArray());
            return;
        }
        if (first.Sender != sender)
            _sharedEphemerals.Add(key);
        if (!sealedTimestamp.SequenceEqual(first.SealedTimestamp))
            _reusedHandshakeKeys.Add(key);
    }

    private SenderStats Stats(string sender)
    {
        if (!_senders.TryGetValue(sender, out SenderStats? s))
            _senders[sender] = s = new SenderStats();
        return s;
    }

    private sealed class NonceUse(byte[] firstCiphertext)
    {
        public byte[] FirstCiphertext { get; } = firstCiphertext;
        public bool Reused { get; set; }
    }

    /// <summary>A 32-byte public key as a dictionary key.</summary>
    private readonly record struct UInt256Key(UInt128 Low, UInt128 High)
    {
        public UInt256Key(ReadOnlySpan<byte> bytes)
            : this(BinaryPrimitives.ReadUInt128LittleEndian(bytes), BinaryPrimitives.ReadUInt128LittleEndian(bytes[16..])) { }
    }
}

/// <summary>One sender's traffic after the event, as the wire saw it.</summary>
public sealed class SenderStats
{
    public long TransportPackets { get; internal set; }
    public long StalePackets { get; internal set; }
    public TimeSpan? FirstInitiationAt { get; internal set; }
    public TimeSpan? FirstNewKeyPacketAt { get; internal set; }
}

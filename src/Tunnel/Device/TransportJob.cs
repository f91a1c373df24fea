namespace Tunnel.Device;

/// <summary>
/// One outgoing transport message split into the three steps a host may run on different threads
/// (wireguard-go's QueueOutboundElement): <see cref="TunnelDevice.PrepareTransport"/> routes it,
/// takes the keypair and its nonce and writes the header and padding, on the reading thread, in
/// order; <see cref="TunnelDevice.SealTransport"/> encrypts it, on any thread, in any order;
/// <see cref="TunnelDevice.CommitTransport"/> runs the hot-path check and hands it to the network,
/// in the order the messages were prepared. The engine itself never runs them concurrently: it
/// keeps no thread. A plain value: the host keeps these in preallocated arrays (no allocation).
/// </summary>
public struct OutboundTransport
{
    internal Peer? Peer;
    internal Keypair? Keypair;
    internal Endpoint To;
    internal ulong Counter;
    internal int PlaintextLength; // padded
    internal bool HasEndpoint;
    internal bool IsData;
    internal bool Sealed;

    /// <summary>The whole message (header, sealed content, tag), in bytes.</summary>
    public readonly int MessageLength => MessageTransport.MessageSize(PlaintextLength);
}

/// <summary>
/// One incoming transport message split the same way: <see cref="TunnelDevice.PrepareReceive"/>
/// finds its keypair, <see cref="TunnelDevice.OpenTransport"/> decrypts it in place on any thread,
/// <see cref="TunnelDevice.CommitReceive"/> checks the replay window and delivers it, in the order
/// the messages arrived (wireguard-go's QueueInboundElement and RoutineSequentialReceiver).
/// </summary>
public struct InboundTransport
{
    internal Keypair? Keypair;
    internal ulong Counter;
    internal int MessageLength;
    internal bool Opened;

    /// <summary>The plaintext <see cref="TunnelDevice.OpenTransport"/> left in the message, once opened.</summary>
    public readonly int PlaintextLength => Opened ? MessageLength - MessageTransport.MinimumSize : 0;
}

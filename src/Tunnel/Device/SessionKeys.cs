using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// The transport keys a completed handshake yields (Split), with the indexes that route packets to
/// them. The keypair layer owns this object and disposes it (zeroing both keys) when the session ends.
/// </summary>
public sealed class SessionKeys : IDisposable
{
    internal SessionKeys(ReadOnlySpan<byte> send, ReadOnlySpan<byte> receive, bool isInitiator, uint localIndex, uint remoteIndex)
    {
        Send = new SymmetricKey(send);
        Receive = new SymmetricKey(receive);
        IsInitiator = isInitiator;
        LocalIndex = localIndex;
        RemoteIndex = remoteIndex;
    }

    public SymmetricKey Send { get; }
    public SymmetricKey Receive { get; }

    /// <summary>True on the side that sent the initiation (it may send data at once; the responder
    /// waits for the first packet from the initiator as confirmation).</summary>
    public bool IsInitiator { get; }

    /// <summary>Our index: the receiver index of incoming transport messages.</summary>
    public uint LocalIndex { get; }

    /// <summary>The peer's index: the receiver index we write on outgoing transport messages.</summary>
    public uint RemoteIndex { get; }

    public void Dispose()
    {
        Send.Dispose();
        Receive.Dispose();
    }

    public override string ToString() => $"SessionKeys(local {LocalIndex:x8}, remote {RemoteIndex:x8}, {(IsInitiator ? "initiator" : "responder")})";
}

using System.Buffers.Binary;
using Tunnel.Crypto;
using Tunnel.Device;

namespace HandshakeFlood;

/// <summary>
/// Makes handshake initiations that pass a responder's mac1 check and nothing else: type 1, a
/// random sender index, random bytes where the ephemeral, encrypted static and timestamp go, mac1
/// from the responder's public key, mac2 zero (no cookie). Each one costs the responder its cheap
/// checks and, until it is under load, a Diffie-Hellman.
/// </summary>
internal sealed class InitiationMaker(PublicKey responder)
{
    public const int Size = MessageInitiation.Size;

    private readonly CookieGenerator _macs = new(responder);

    public void Make(Span<byte> message)
    {
        Random.Shared.NextBytes(message);
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)MessageType.Initiation);
        _macs.AddMacs(message, TimeSpan.Zero); // mac1; mac2 zero, as it holds no cookie
    }
}
